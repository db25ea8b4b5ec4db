package ini

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// refValue is one option as fail2ban's reader sees it.
type refValue struct {
	Raw   string `json:"raw"`
	Value string `json:"value,omitempty"`
	Error string `json:"error,omitempty"`
}

type refDump struct {
	Error    string                         `json:"error,omitempty"`
	Sections map[string]map[string]refValue `json:"sections,omitempty"`
	Order    []string                       `json:"order,omitempty"`
}

// needFail2ban skips the test when python3 or the fail2ban library is
// missing.
func needFail2ban(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed: no fail2ban reference")
	}
	if _, err := os.Stat("/usr/lib/python3/dist-packages/fail2ban/client/configreader.py"); err != nil {
		t.Skip("fail2ban python package not installed: no reference")
	}
}

// pythonDumps runs fail2ban's own ConfigReader over dir/name for names.
func pythonDumps(t testing.TB, dir string, names ...string) map[string]refDump {
	t.Helper()
	script, err := filepath.Abs("testdata/f2b_dump.py")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("python3", append([]string{script, dir}, names...)...).Output()
	if err != nil {
		t.Fatalf("reference reader on %s: %v", dir, err)
	}
	d := map[string]refDump{}
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("reference output: %v", err)
	}
	return d
}

// goDump reads dir/name with this package in the reference's shape.
func goDump(dir, name string) refDump {
	l := &Loader{Layers: []Layer{DirLayer(dir)}}
	c, err := l.Read(name)
	if err != nil {
		return refDump{Error: err.Error()}
	}
	d := refDump{Sections: map[string]map[string]refValue{}}
	dump := func(sec string, s *Section) {
		m := map[string]refValue{}
		for _, k := range s.keys {
			rv := refValue{Raw: s.vals[k].Text}
			v, err := c.Get(sec, k, nil)
			if err != nil {
				var ie *InterpolationError
				if errors.As(err, &ie) {
					rv.Error = "interpolation"
				} else {
					rv.Error = err.Error()
				}
			} else {
				rv.Value = v
			}
			m[k] = rv
		}
		d.Sections[sec] = m
	}
	dump(DefaultSection, c.defaults)
	for _, n := range c.order {
		dump(n, c.sections[n])
	}
	d.Order = append(d.Order, c.order...)
	return d
}

// normalize maps Python exception names onto the Go classes compared.
func normalize(d refDump) refDump {
	for _, s := range d.Sections {
		for k, v := range s {
			if v.Error != "" {
				v.Error = "interpolation"
				v.Value = ""
				s[k] = v
			}
		}
	}
	if d.Error != "" {
		d.Error = "error"
	}
	return d
}

func compareWithFail2ban(t *testing.T, dir, name string, ref refDump) {
	t.Helper()
	want := normalize(ref)
	got := normalize(goDump(dir, name))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s/%s: fail2ban (-) vs palisade (+):\n%s", dir, name, diff)
	}
}

// stockNames lists the configuration names of the installed fail2ban.
func stockNames(t *testing.T) []string {
	t.Helper()
	names := []string{"jail", "fail2ban"}
	for _, sub := range []string{"filter.d", "action.d"} {
		ents, err := os.ReadDir(filepath.Join("/etc/fail2ban", sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if n, ok := strings.CutSuffix(e.Name(), ".conf"); ok {
				names = append(names, sub+"/"+n)
			}
		}
	}
	sort.Strings(names)
	return names
}

// TestStockFilesLikeFail2ban reads every stock file of /etc/fail2ban and
// compares every raw and interpolated value with fail2ban's own reader.
func TestStockFilesLikeFail2ban(t *testing.T) {
	if _, err := os.Stat("/etc/fail2ban/jail.conf"); err != nil {
		t.Skip("/etc/fail2ban not installed")
	}
	for _, name := range stockNames(t) {
		l := &Loader{Layers: []Layer{DirLayer("/etc/fail2ban")}}
		c, err := l.Read(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(c.Files()) == 0 {
			t.Errorf("%s: no files read", name)
		}
	}
	needFail2ban(t)
	names := stockNames(t)
	refs := pythonDumps(t, "/etc/fail2ban", names...)
	for _, name := range names {
		d := refs[name]
		if d.Error != "" || len(d.Sections) < 2 {
			t.Errorf("%s: fail2ban reference read nothing: %q", name, d.Error)
		}
		compareWithFail2ban(t, "/etc/fail2ban", name, d)
	}
}

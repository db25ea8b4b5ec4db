package ini

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var extractTests = []struct {
	in      string
	name    string
	opts    []Option
	wantErr string
}{
	{in: "sshd", name: "sshd"},
	{in: "sshd[]", name: "sshd"},
	{in: "sshd[mode=aggressive]", name: "sshd", opts: opts("mode", "aggressive")},
	{in: `sshd[mode=aggressive, logtype="journal", x='a, b]c']`, name: "sshd", opts: opts("mode", "aggressive", "logtype", "journal", "x", "a, b]c")},
	{in: "act[a=1][b=2]", name: "act", opts: opts("a", "1", "b", "2")},
	{in: "act[ a = 1 , b=2 ,]", wantErr: "expected option"},
	{in: "act[ a=1 , b=2 ,]", name: "act", opts: opts("a", "1", "b", "2")},
	{in: "act[a=1, a=2, b=3]", name: "act", opts: opts("a", "2", "b", "3")},
	{in: "act[name=x-y.z, port=\"ssh,sftp\", protocol=tcp]", name: "act", opts: opts("name", "x-y.z", "port", "ssh,sftp", "protocol", "tcp")},
	{in: "act[a=\"unterminated]", name: "act", opts: opts("a", "\"unterminated")},
	{in: "act[a=\"x\" b=1]", wantErr: "unexpected syntax"},
	{in: "act[junk]", wantErr: "expected option"},
	{in: "act[a=1]junk", wantErr: "unexpected option syntax"},
	{in: "[a=1]", wantErr: "unexpected option syntax"},
	{in: "sshd ", name: "sshd "},
	{in: "act[a=b]c]", wantErr: "unexpected syntax"},
	{in: "act[\na=1,\n b=2\n]", name: "act", opts: opts("a", "1", "b", "2")},
}

func TestExtractOptions(t *testing.T) {
	for _, tc := range extractTests {
		name, got, err := ExtractOptions(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || name != tc.name || !cmp.Equal(tc.opts, got) {
			t.Errorf("%q = %q %v, %v; want %q %v", tc.in, name, got, err, tc.name, tc.opts)
		}
	}
}

var splitTests = []struct {
	in   string
	want []string
}{
	{"a b", []string{"a ", "b"}},
	{"iptables[name=SSH, port=ssh]\n  sendmail[dest=\"x y\", name=SSH]", []string{"iptables[name=SSH, port=ssh]", "sendmail[dest=\"x y\", name=SSH]"}},
	{"%(action_)s\n  mail", []string{"%(action_)s", "mail"}},
	{"", nil},
}

func TestSplitWithOptions(t *testing.T) {
	for _, tc := range splitTests {
		got, err := SplitWithOptions(tc.in)
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		var trimmed []string
		for _, g := range got {
			trimmed = append(trimmed, strings.TrimRight(g, " \n"))
		}
		want := tc.want
		for i := range want {
			want[i] = strings.TrimRight(want[i], " \n")
		}
		if !cmp.Equal(want, trimmed) {
			t.Errorf("%q = %q, want %q", tc.in, got, want)
		}
	}
}

func TestOptionsLikeFail2ban(t *testing.T) {
	var cases []map[string]any
	for _, tc := range extractTests {
		cases = append(cases, map[string]any{"extract": tc.in})
	}
	for _, tc := range splitTests {
		cases = append(cases, map[string]any{"split": tc.in})
	}
	refs := fail2banHelpers(t, cases)
	for i, tc := range extractTests {
		name, got, err := ExtractOptions(tc.in)
		if (err != nil) != (refs[i].Error != "") {
			t.Errorf("extract %q: palisade err %v, fail2ban err %q", tc.in, err, refs[i].Error)
			continue
		}
		if err != nil {
			continue
		}
		var want []json.RawMessage
		if err := json.Unmarshal(refs[i].Result, &want); err != nil || len(want) != 2 {
			t.Fatalf("reference: %v", err)
		}
		var wname string
		var wopts [][2]string
		_ = json.Unmarshal(want[0], &wname)
		_ = json.Unmarshal(want[1], &wopts)
		if wname != name || !cmp.Equal(wopts, optPairs(got)) {
			t.Errorf("extract %q: fail2ban %q %v, palisade %q %v", tc.in, wname, wopts, name, optPairs(got))
		}
	}
	for j, tc := range splitTests {
		r := refs[len(extractTests)+j]
		var want []string
		if err := json.Unmarshal(r.Result, &want); err != nil {
			t.Fatalf("reference: %v %s", err, r.Error)
		}
		got, err := SplitWithOptions(tc.in)
		if err != nil || !cmp.Equal(want, got, cmp.Comparer(func(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") })) {
			t.Errorf("split %q: fail2ban %q, palisade %q, %v", tc.in, want, got, err)
		}
	}
}

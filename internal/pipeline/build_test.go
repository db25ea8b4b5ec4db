package pipeline

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	defaults "github.com/palisade-project/palisade/config"
	"github.com/palisade-project/palisade/filters"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/config/ini"
	"github.com/palisade-project/palisade/internal/firewall"
)

var services = firewall.Services{"ssh/tcp": 22, "http/tcp": 80, "https/tcp": 443}

// load writes files (relative path → text) under a new configuration
// directory and loads it.
func load(t *testing.T, files map[string]string) *config.Config {
	t.Helper()
	etc := filepath.Join(t.TempDir(), "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range files {
		p := filepath.Join(etc, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(etc, config.LoadOptions{Builtin: defaults.FS(), Services: services})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// journalDir is a directory holding a journal file, for testEnv (made by
// TestMain).
var journalDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "pipeline-journal-")
	if err == nil {
		err = os.WriteFile(filepath.Join(d, "system.journal"), nil, 0o644)
	}
	if err != nil {
		panic(err)
	}
	journalDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// testEnv has the built-in filters, journalctl and a journal with files.
func testEnv() Env {
	return Env{Filters: filters.FS(), LookPath: func(string) (string, error) { return "/usr/bin/journalctl", nil },
		JournalDirs: []string{journalDir}}
}

func buildOne(t *testing.T, cfg *config.Config, name string) *Plan {
	t.Helper()
	j, ok := cfg.Jail(name)
	if !ok {
		t.Fatalf("no jail %s", name)
	}
	p, err := Build(cfg, j, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSourceChoice(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "present.log")
	if err := os.WriteFile(present, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.log")
	for _, tc := range []struct {
		name     string
		jail     string
		journal  bool
		watching string
		warning  string
		head     bool
	}{
		{"auto, file present", "backend = auto\nlogpath = " + present, false, present, "", true},
		{"auto, file missing: watched, not the journal", "backend = auto\nlogpath = " + missing, false, missing, "does not exist", true},
		{"polling, tail", "backend = polling\nlogpath = " + present + " tail", false, present, "", false},
		{"systemd", "backend = systemd", true, "journal: BUILTIN", "", false},
		{"systemd with journalmatch", "backend = systemd\njournalmatch = _SYSTEMD_UNIT=x.service", true, "journal: _SYSTEMD_UNIT=x.service", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := load(t, map[string]string{"jail.local": "[sshd]\nenabled = true\n" + tc.jail + "\n"})
			p := buildOne(t, cfg, "sshd")
			// the built-in sshd jail's journalmatch
			want := strings.Replace(tc.watching, "BUILTIN", strings.Join(strings.Fields(p.Jail.Source.JournalMatch), " "), 1)
			if p.Jail.Source.JournalMatch == "" || p.Source.Journal != tc.journal || strings.Join(p.Source.Watch(), ",") != want || p.Source.Head != tc.head {
				t.Fatalf("source %+v watching %q", p.Source, p.Source.Watch())
			}
			got := strings.Join(p.Warnings, "; ")
			if (tc.warning == "") != (got == "") || !strings.Contains(got, tc.warning) {
				t.Fatalf("warnings %q, want %q", got, tc.warning)
			}
			if tc.journal && p.Source.JournalSpec.Lookback != p.Jail.FindTime {
				t.Fatalf("journal lookback %v, want findtime", p.Source.JournalSpec.Lookback)
			}
		})
	}
}

// TestNoConfigDefaultFallsBackToJournal: palisade's own default (backend
// and logpath from the built-in jail.conf) reads the journal when there is
// no auth.log, and auth.log when it exists; the same with a user's logpath
// watches it.
func TestNoConfigDefaultFallsBackToJournal(t *testing.T) {
	root := t.TempDir()
	cfg := load(t, map[string]string{})
	env := testEnv()
	env.Root = root
	j, _ := cfg.Jail("sshd")
	p, err := Build(cfg, j, env)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Source.Journal || !strings.Contains(p.Source.Why, "palisade's default") {
		t.Fatalf("no auth.log: source %+v", p.Source)
	}
	if err := os.MkdirAll(filepath.Join(root, "var", "log"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "var", "log", "auth.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err = Build(cfg, j, env); err != nil || p.Source.Journal || p.Source.Files[0] != filepath.Join(root, "var/log/auth.log") {
		t.Fatalf("with auth.log: %+v %v", p.Source, err)
	}
	// A logpath of the user's is fail2ban's auto: watched.
	cfg = load(t, map[string]string{"jail.local": "[sshd]\nenabled = true\nlogpath = /var/log/secure\n"})
	j, _ = cfg.Jail("sshd")
	if p, err = Build(cfg, j, env); err != nil || p.Source.Journal {
		t.Fatalf("user logpath: %+v %v", p.Source, err)
	}
}

func TestJournalWarnings(t *testing.T) {
	cfg := load(t, map[string]string{"jail.local": "[sshd]\nenabled = true\nbackend = systemd\n"})
	j, _ := cfg.Jail("sshd")
	env := testEnv()
	env.LookPath = func(string) (string, error) { return "", os.ErrNotExist }
	env.JournalDirs = []string{t.TempDir()}
	p, err := Build(cfg, j, env)
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(p.Warnings, "; ")
	if !strings.Contains(w, "journalctl not found") || !strings.Contains(w, "no journal files") {
		t.Fatalf("warnings %q", w)
	}
	// journal files present: that warning goes.
	mid := filepath.Join(env.JournalDirs[0], "0123456789abcdef")
	os.MkdirAll(mid, 0o755)
	os.WriteFile(filepath.Join(mid, "system.journal"), nil, 0o644)
	if w := strings.Join(p.SourceWarnings(env), "; "); strings.Contains(w, "no journal files") {
		t.Fatalf("warnings with a journal file: %q", w)
	}
}

func TestBuildErrorsCarryFileLine(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"missing filter", map[string]string{"jail.local": "[web]\nenabled = true\nfilter = nosuch\nlogpath = /dev/null\n"},
			[]string{"jail.local:2", "nosuch"}},
		{"broken filter file", map[string]string{"jail.local": "[web]\nenabled = true\nfilter = bad\nlogpath = /dev/null\n",
			"filter.d/bad.conf": "[Definition]\nfailregex = ^(unclosed <HOST>\n"}, []string{"jail.local:2", "failregex"}},
		{"filter without host", map[string]string{"jail.local": "[web]\nenabled = true\nfilter = nohost\nlogpath = /dev/null\n",
			"filter.d/nohost.conf": "[Definition]\nfailregex = ^just text$\n"}, []string{"jail.local:2", "failure-id"}},
		{"bad journalmatch in filter", map[string]string{"jail.local": "[web]\nenabled = true\nfilter = jm\nbackend = systemd\n",
			"filter.d/jm.conf": "[Definition]\nfailregex = ^x <HOST>$\njournalmatch = _COMM='unterminated\n"}, []string{"jail.local:2", "journalmatch"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := load(t, tc.files)
			_, errs := BuildAll(cfg, testEnv())
			if len(errs) == 0 {
				t.Fatal("built")
			}
			msg := errs.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Fatalf("error %q does not name %q", msg, w)
				}
			}
		})
	}
}

// TestBuiltinFiltersAreRE2: a built-in filter is held to RE2, a filter of
// the same name on disk is not.
func TestBuiltinFiltersAreRE2(t *testing.T) {
	cfg := load(t, map[string]string{"jail.local": "[sshd]\nenabled = true\nlogpath = /dev/null\n"})
	if p := buildOne(t, cfg, "sshd"); !p.Filter.RE2 || !p.Settings.RE2 {
		t.Fatal("built-in sshd not RE2")
	}
	// A backreference needs the backtracking engine: accepted from disk.
	cfg = load(t, map[string]string{"jail.local": "[sshd]\nenabled = true\nlogpath = /dev/null\n",
		"filter.d/sshd.conf": "[Definition]\nfailregex = ^(a)\\1 from <HOST>$\n"})
	if p := buildOne(t, cfg, "sshd"); p.Filter.RE2 {
		t.Fatal("disk filter held to RE2")
	}
	bf, err := BuildFilter(FilterInput{Spec: config.FilterSpec{Name: "sshd"}, Builtin: filters.FS()})
	if err != nil || !bf.RE2 {
		t.Fatalf("BuildFilter of the built-in: %+v %v", bf, err)
	}
}

// jailFields maps every config.Jail field to what consumes it in a plan:
// the test mutates the field (prep is applied to both sides first) and
// requires the plan to differ. A field added to config.Jail without a row
// fails the test.
var jailFields = map[string]struct {
	consumer string
	prep     func(*config.Jail)
	mut      func(*config.Jail)
}{
	"Name":     {"every part (jail logic, scope)", nil, func(j *config.Jail) { j.Name = "other" }},
	"Enabled":  {"BuildAll builds enabled jails only (TestDisabledNotBuilt)", nil, nil},
	"Filter":   {"filter", nil, func(j *config.Jail) { j.Filter.Args = []ini.Option{{Name: "mode", Value: "aggressive"}} }},
	"Source":   {"source", nil, func(j *config.Jail) { j.Source.Files[0].Tail = true }},
	"PortSpec": {"route: the action.d port tag", withAction, func(j *config.Jail) { j.PortSpec = "2222" }},
	"Ports":    {"firewall scope", nil, func(j *config.Jail) { j.Ports = []firewall.PortRange{{From: 2222, To: 2222}} }},
	"Protocol": {"firewall scope", nil, func(j *config.Jail) { j.Protocol = "udp" }},
	"MaxRetry": {"jail logic", nil, func(j *config.Jail) { j.MaxRetry = 9 }},
	"FindTime": {"jail logic", nil, func(j *config.Jail) { j.FindTime = time.Hour }},
	"BanTime":  {"jail logic", nil, func(j *config.Jail) { j.BanTime = time.Hour }},
	"Increment": {"jail logic (bantime.formula: a warning)", nil, func(j *config.Jail) {
		j.Increment.Enabled, j.Increment.Factor = true, 3
	}},
	"IgnoreIP": {"jail logic (networks), stage (host names)", nil, func(j *config.Jail) {
		j.IgnoreIP = append(j.IgnoreIP, config.IgnoreEntry{Host: "admin.example.org", Text: "admin.example.org"})
	}},
	"IgnoreSelf":    {"jail logic", nil, func(j *config.Jail) { j.IgnoreSelf = !j.IgnoreSelf }},
	"IgnoreCommand": {"stage", nil, func(j *config.Jail) { j.IgnoreCommand = []string{"/bin/true", "<ip>"} }},
	"MaxMatches":    {"jail logic", nil, func(j *config.Jail) { j.MaxMatches = 1 }},
	"UseDNS":        {"stage and filter (<HOST>)", nil, func(j *config.Jail) { j.UseDNS = "no" }},
	"BanAction": {"route (when action is empty)", func(j *config.Jail) { j.Actions = nil }, func(j *config.Jail) {
		j.BanAction = &config.ActionRef{Name: "nftables-allports"}
	}},
	"Actions":       {"route", nil, func(j *config.Jail) { j.Actions = []config.ActionRef{{Name: "ufw"}} }},
	"BlockType":     {"firewall scope", nil, func(j *config.Jail) { j.BlockType = firewall.Drop }},
	"FailTableSize": {"jail logic", nil, func(j *config.Jail) { j.FailTableSize = 10 }},
	"MaxBans":       {"the ban manager's bound (Plan.Bans)", nil, func(j *config.Jail) { j.MaxBans = 10 }},
	"IPv4Prefix":    {"jail logic", nil, func(j *config.Jail) { j.IPv4Prefix = 24 }},
	"IPv6Prefix":    {"jail logic", nil, func(j *config.Jail) { j.IPv6Prefix = 64 }},
	"DatePattern":   {"filter", nil, func(j *config.Jail) { j.DatePattern = "%%Y-%%m-%%d %%H:%%M:%%S" }},
	"LogEncoding":   {"filter settings (the running jail decodes lines)", nil, func(j *config.Jail) { j.LogEncoding = config.EncodingLatin1 }},
	"LogTimezone":   {"filter settings", nil, func(j *config.Jail) { j.LogTimezone = time.FixedZone("X", 3600) }},
	"Options":       {"filter (the jail's options in interpolation)", nil, func(j *config.Jail) { j.Options["failregex"] = "^extra <HOST>$" }},
	"Where":         {"error messages (TestBuildErrorsCarryFileLine)", nil, nil},
	"File":          {"error messages (TestBuildErrorsCarryFileLine)", nil, nil},
	"Line":          {"error messages (TestBuildErrorsCarryFileLine)", nil, nil},
}

func withAction(j *config.Jail) { j.Actions = []config.ActionRef{{Name: "mark"}} }

// TestEveryJailFieldReachesThePlan walks config.Jail's fields: each one
// must change the built plan when it changes.
func TestEveryJailFieldReachesThePlan(t *testing.T) {
	files := map[string]string{
		"jail.local":         "[sshd]\nenabled = true\nlogpath = /dev/null\nport = ssh\n",
		"action.d/mark.conf": "[Definition]\nactionban = /bin/echo <port> <ip>\n",
	}
	cfg := load(t, files)
	base, _ := cfg.Jail("sshd")
	typ := reflect.TypeOf(base)
	for i := range typ.NumField() {
		f := typ.Field(i).Name
		row, ok := jailFields[f]
		if !ok {
			t.Errorf("config.Jail.%s reaches nothing known: add it to jailFields with the consumer that reads it", f)
			continue
		}
		if row.mut == nil {
			continue
		}
		t.Run(f, func(t *testing.T) {
			a, b := clone(base), clone(base)
			if row.prep != nil {
				row.prep(&a)
				row.prep(&b)
			}
			row.mut(&b)
			pa, err := Build(cfg, a, testEnv())
			if err != nil {
				t.Fatal(err)
			}
			pb, err := Build(cfg, b, testEnv())
			if err != nil {
				t.Fatal(err)
			}
			if pa.Parts() == pb.Parts() && strings.Join(pa.Warnings, ";") == strings.Join(pb.Warnings, ";") {
				t.Fatalf("changing %s changes nothing in the plan (consumer: %s)", f, row.consumer)
			}
		})
	}
	for f := range jailFields {
		if _, ok := typ.FieldByName(f); !ok {
			t.Errorf("jailFields names %s, which config.Jail does not have", f)
		}
	}
}

func clone(j config.Jail) config.Jail {
	j.Source.Files = append([]config.LogPath(nil), j.Source.Files...)
	opts := make(map[string]string, len(j.Options))
	for k, v := range j.Options {
		opts[k] = v
	}
	j.Options = opts
	j.IgnoreIP = append([]config.IgnoreEntry(nil), j.IgnoreIP...)
	j.Actions = append([]config.ActionRef(nil), j.Actions...)
	return j
}

func TestDisabledNotBuilt(t *testing.T) {
	cfg := load(t, map[string]string{"jail.local": "[sshd]\nenabled = false\n[web]\nenabled = true\nfilter = sshd\nlogpath = /dev/null\n"})
	plans, errs := BuildAll(cfg, testEnv())
	if len(errs) != 0 || len(plans) != 1 || plans[0].Name() != "web" {
		t.Fatalf("plans %v, errors %v", plans, errs)
	}
	j, _ := cfg.Jail("sshd")
	if _, err := Build(cfg, j, testEnv()); err == nil {
		t.Fatal("a disabled jail was built")
	}
}

// TestBanactionAllports: banaction_allports reaches the route through
// interpolation (banaction = %(banaction_allports)s, as the recidive jail
// does): every port is blocked.
func TestBanactionAllports(t *testing.T) {
	cfg := load(t, map[string]string{"jail.local": "[DEFAULT]\nbanaction_allports = iptables-allports\n" +
		"[recidive]\nenabled = true\nlogpath = /dev/null\nport = ssh\n" +
		"[sshd]\nenabled = true\nlogpath = /dev/null\nport = ssh\n"})
	r := buildOne(t, cfg, "recidive")
	if r.Route.Kind != "ipset" || !r.Route.AllPorts || r.Spec.Scope.Ports != nil {
		t.Fatalf("recidive route %+v scope %+v, want ipset, all ports", r.Route, r.Spec.Scope)
	}
	s := buildOne(t, cfg, "sshd")
	if s.Route.Kind != "nftables" || s.Route.AllPorts || len(s.Spec.Scope.Ports) != 1 {
		t.Fatalf("sshd route %+v scope %+v, want nftables port 22", s.Route, s.Spec.Scope)
	}
}

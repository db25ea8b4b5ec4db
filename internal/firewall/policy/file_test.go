package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `# my server's firewall
enable
default deny incoming
default allow outgoing

# ssh, limited
limit 22/tcp --conn 2 --rate 1/1s   # the guide's rules
allow 80,443/tcp comment 'web'
deny from 203.0.113.0/24
`

func TestFileKeepsCommentsAndLayout(t *testing.T) {
	f, err := Parse("firewall.rules", []byte(sample), testNames)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(f.Bytes()); got != sample {
		t.Fatalf("unchanged file rendered differently:\n%s", got)
	}
	p := f.Policy()
	if !p.Enabled || p.Default != DefaultDeny || len(p.Rules) != 3 {
		t.Fatalf("policy = %+v", p)
	}
	if p.Rules[0].Limit.Conn != 2 || p.Rules[0].Limit.Rate != 1 {
		t.Errorf("limit rule = %+v", p.Rules[0])
	}

	// Edits touch only their lines.
	r, given, err := ParseRule(Allow, []string{"25/tcp"}, testNames)
	if err != nil {
		t.Fatal(err)
	}
	if out, n := f.Add(r, given); out != Added || n != 4 {
		t.Errorf("Add = %s %d", out, n)
	}
	if f.SetDefault(DefaultReject) != true {
		t.Error("SetDefault reported no change")
	}
	if _, err := f.DeleteNumber(3); err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(sample, "default deny incoming", "default reject incoming", 1)
	want = strings.Replace(want, "deny from 203.0.113.0/24\n", "allow 25/tcp\n", 1)
	if got := string(f.Bytes()); got != want {
		t.Errorf("after edits:\n%s\nwant:\n%s", got, want)
	}
}

func TestFileAddUpdatesLikeUFW(t *testing.T) {
	f := NewFile("x")
	add := func(a Action, rule string) (Outcome, int) {
		t.Helper()
		r, given, err := ParseRule(a, strings.Fields(rule), testNames)
		if err != nil {
			t.Fatal(err)
		}
		return f.Add(r, given)
	}
	steps := []struct {
		a    Action
		rule string
		out  Outcome
		n    int
	}{
		{Allow, "22/tcp", Added, 1},
		{Allow, "22/tcp", Exists, 1},
		{Allow, "ssh", Exists, 1},
		{Allow, "proto tcp to any port 22", Exists, 1},
		{Allow, "80/tcp", Added, 2},
		{Limit, "22/tcp", Updated, 1},
		{Limit, "22/tcp --conn 2", Updated, 1},
		{Limit, "22/tcp --rate 1/1s", Updated, 1},
		{Limit, "22/tcp", Exists, 1},
		{Deny, "80/tcp", Updated, 2},
	}
	for _, s := range steps {
		if out, n := add(s.a, s.rule); out != s.out || n != s.n {
			t.Errorf("%s %s: %s %d, want %s %d", s.a, s.rule, out, n, s.out, s.n)
		}
	}
	p := f.Policy()
	if got := p.Rules[0].String(); got != "limit 22/tcp --conn 2 --rate 1/1s" {
		t.Errorf("rule 1 = %q", got)
	}
	if got := p.Rules[1].String(); got != "deny 80/tcp" {
		t.Errorf("rule 2 = %q", got)
	}
	// Delete by rule: options must match when given.
	r, given, _ := ParseRule(Limit, strings.Fields("22/tcp --conn 3"), testNames)
	if _, err := f.Delete(r, given); !errors.Is(err, ErrNoRule) {
		t.Errorf("delete with other options: %v", err)
	}
	r, given, _ = ParseRule(Limit, strings.Fields("22/tcp"), testNames)
	if n, err := f.Delete(r, given); err != nil || n != 1 {
		t.Errorf("delete limit 22/tcp: %d %v", n, err)
	}
	if _, err := f.DeleteNumber(5); err == nil {
		t.Error("deleting rule 5 of 1 succeeded")
	}
}

func TestFileErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		text string
		want []string
	}{
		{"allow 22/tcp\nallow 99999\n", []string{"firewall.rules:2:", "99999"}},
		{"enable\nbogus 1\n", []string{"firewall.rules:2:", "bogus"}},
		{"enable\ndisable\n", []string{"firewall.rules:2:", "given twice (first at line 1)"}},
		{"default deny\ndefault allow\n", []string{"firewall.rules:2:"}},
		{"default deny outgoing\n", []string{"firewall.rules:1:", "outgoing"}},
		{"default deny routed\n", []string{"routed"}},
		{"limit 22/tcp --conn 2\nlimit 22/tcp --rate 1/1s\n", []string{"firewall.rules:2:", "same rule as line 1"}},
		{"allow 22/tcp\nallow 80/tcp comment 'x\n", []string{"firewall.rules:2:", "unterminated quote"}},
		{"deny from 10.0.0.0/8\nallow from 2001:db8::/129\n", []string{"firewall.rules:2:", "2001:db8::/129"}},
	}
	for _, tt := range tests {
		_, err := Parse("firewall.rules", []byte(tt.text), testNames)
		if err == nil {
			t.Errorf("%q: accepted", tt.text)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q lacks %q", tt.text, err, w)
			}
		}
	}
	// Two bad lines: both reported.
	_, err := Parse("f", []byte("allow 0\ndeny from x\n"), testNames)
	if err == nil || !strings.Contains(err.Error(), "f:1:") || !strings.Contains(err.Error(), "f:2:") {
		t.Errorf("both errors: %v", err)
	}
}

func TestNewFileParsesBack(t *testing.T) {
	f := NewFile("firewall.rules")
	data := f.Bytes()
	if !strings.HasPrefix(string(data), "# palisade firewall policy") || !strings.Contains(string(data), "\ndisable\ndefault deny incoming\n") {
		t.Fatalf("new file:\n%s", data)
	}
	g, err := Parse("firewall.rules", data, testNames)
	if err != nil {
		t.Fatal(err)
	}
	if p := g.Policy(); p.Enabled || p.Default != DefaultDeny || len(p.Rules) != 0 {
		t.Errorf("%+v", p)
	}
	// An empty file is a disabled policy.
	e, err := Parse("e", nil, testNames)
	if err != nil || e.Policy().Enabled || e.Policy().Default != DefaultDeny {
		t.Errorf("empty: %+v %v", e, err)
	}
	e.SetEnabled(true)
	if string(e.Bytes()) != "enable\n" {
		t.Errorf("enable on an empty file: %q", e.Bytes())
	}
}

func TestImportUFW(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Tuples as ufw 0.36 writes them above each rule.
	write(UFWRules4, `*filter
### RULES ###

### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in
-A ufw-user-input -p tcp --dport 22 -j ACCEPT

### tuple ### limit tcp 2222 0.0.0.0/0 any 0.0.0.0/0 in
### tuple ### allow tcp 80,443 0.0.0.0/0 any 0.0.0.0/0 in
### tuple ### deny any any 0.0.0.0/0 any 203.0.113.0/24 in
### tuple ### allow tcp 8080 0.0.0.0/0 any 198.51.100.0/24 in comment=7765622074657374
### tuple ### reject any 25 0.0.0.0/0 any 0.0.0.0/0 in
### tuple ### allow udp 53 0.0.0.0/0 any 0.0.0.0/0 in_eth0
### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 OpenSSH - in
### tuple ### allow_log udp 6000:6007 0.0.0.0/0 any 0.0.0.0/0 in
### tuple ### allow tcp 3306 0.0.0.0/0 any 0.0.0.0/0 in
### tuple ### allow any any 0.0.0.0/0 any 0.0.0.0/0 out
### tuple ### route:allow tcp 80 10.0.0.2 any 0.0.0.0/0 in_eth0!out_docker0
COMMIT
`)
	write(UFWRules6, `### tuple ### allow tcp 22 ::/0 any ::/0 in
### tuple ### limit tcp 2222 ::/0 any ::/0 in
### tuple ### allow tcp 80,443 ::/0 any ::/0 in
### tuple ### reject any 25 ::/0 any ::/0 in
### tuple ### allow udp 53 ::/0 any ::/0 in_eth0
### tuple ### allow tcp 9000 ::/0 any 2001:db8::/32 in
### tuple ### allow tcp 22 ::/0 any ::/0 OpenSSH - in
### tuple ### allow_log udp 6000:6007 ::/0 any ::/0 in
`)
	write(UFWConf, "ENABLED=yes\nLOGLEVEL=low\n")
	write(UFWDefault, "IPV6=yes\nDEFAULT_INPUT_POLICY=\"REJECT\"\nDEFAULT_OUTPUT_POLICY=\"ACCEPT\"\n")
	imp, err := ImportUFW(root)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range imp.Rules {
		got = append(got, r.String())
	}
	want := []string{
		"allow 22/tcp",
		"limit 2222/tcp",
		"allow 80,443/tcp",
		"deny from 203.0.113.0/24",
		"allow from 198.51.100.0/24 to any port 8080 proto tcp comment 'web test'",
		"reject 25",
		"allow in on eth0 from any to any port 53 proto udp",
		"allow from 2001:db8::/32 to any port 9000 proto tcp",
		"allow 6000:6007/udp",
		"allow from 0.0.0.0/0 to any port 3306 proto tcp",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("imported:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if imp.Default != DefaultReject || !imp.Enabled {
		t.Errorf("default %s enabled %v", imp.Default, imp.Enabled)
	}
	for _, w := range []string{"same rule as imported rule 1", "logging is not imported", "outgoing rule", "route rules"} {
		if !strings.Contains(strings.Join(imp.Warnings, "\n"), w) {
			t.Errorf("no warning %q in %q", w, imp.Warnings)
		}
	}
	// The file it makes parses back to the same policy.
	f := imp.File("firewall.rules", false, "imported from ufw")
	g, err := Parse("firewall.rules", f.Bytes(), testNames)
	if err != nil {
		t.Fatalf("%v\n%s", err, f.Bytes())
	}
	if p := g.Policy(); p.Enabled || p.Default != DefaultReject || len(p.Rules) != len(want) {
		t.Errorf("%+v\n%s", p, f.Bytes())
	}
	if !strings.Contains(string(f.Bytes()), "# imported from ufw\n") {
		t.Errorf("no note:\n%s", f.Bytes())
	}
	if _, err := ImportUFW(t.TempDir()); err == nil {
		t.Error("import without ufw files succeeded")
	}
}

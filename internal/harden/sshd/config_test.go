package sshd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitLine(t *testing.T) {
	tests := []struct {
		in   string
		kw   string
		args []string
	}{
		{"Port 22\n", "Port", []string{"22"}},
		{"  PasswordAuthentication=no\n", "PasswordAuthentication", []string{"no"}},
		{"Port = 2222\n", "Port", []string{"2222"}},
		{"# Port 22\n", "", nil},
		{"\t\n", "", nil},
		{`AuthorizedKeysFile ".ssh/my keys" .ssh/b` + "\n", "AuthorizedKeysFile", []string{".ssh/my keys", ".ssh/b"}},
		{"Match User bob #comment\n", "Match", []string{"User", "bob"}},
	}
	for _, tc := range tests {
		kw, args, err := splitLine(tc.in)
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if kw != tc.kw || !cmp.Equal(args, tc.args) {
			t.Errorf("%q: got %q %q, want %q %q", tc.in, kw, args, tc.kw, tc.args)
		}
	}
	if _, _, err := splitLine(`Banner "unterminated` + "\n"); err == nil {
		t.Error("unterminated quote accepted")
	}
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(strings.ReplaceAll(c, "{ROOT}", dir)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadIncludeGlobAndMatch(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"etc/ssh/sshd_config": "# header\nInclude {ROOT}/etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication no\nMaxAuthTries 5\n" +
			"Match User bob\n  PasswordAuthentication yes\n",
		"etc/ssh/sshd_config.d/50-cloud-init.conf": "PasswordAuthentication yes\n",
		"etc/ssh/sshd_config.d/10-first.conf":      "MaxAuthTries 3\nInclude sub/*.conf\n",
		"etc/ssh/sub/x.conf":                       "X11Forwarding no\n",
		"etc/ssh/sshd_config.d/ignored.txt":        "Port 1\n",
	})
	main := filepath.Join(dir, "etc/ssh/sshd_config")
	c, err := Load(dir, main)
	if err != nil {
		t.Fatal(err)
	}
	wantOrder := []string{main, filepath.Join(dir, "etc/ssh/sshd_config.d/10-first.conf"), filepath.Join(dir, "etc/ssh/sub/x.conf"), filepath.Join(dir, "etc/ssh/sshd_config.d/50-cloud-init.conf")}
	if d := cmp.Diff(wantOrder, c.Order); d != "" {
		t.Errorf("file order (-want +got):\n%s", d)
	}
	for kw, where := range map[string]string{
		"passwordauthentication": filepath.Join(dir, "etc/ssh/sshd_config.d/50-cloud-init.conf") + ":1",
		"maxauthtries":           filepath.Join(dir, "etc/ssh/sshd_config.d/10-first.conf") + ":1",
		"x11forwarding":          filepath.Join(dir, "etc/ssh/sub/x.conf") + ":1",
	} {
		d, ok := c.First(kw)
		if !ok || d.Where() != where {
			t.Errorf("First(%s) = %v %v, want %s", kw, d.Where(), ok, where)
		}
	}
	if _, ok := c.First("port"); ok {
		t.Error("a file outside the Include glob was read")
	}
	ms := c.Matches()
	if len(ms) != 1 || ms[0].Line != 5 || len(c.InMatch(ms[0])) != 1 {
		t.Fatalf("matches = %+v", ms)
	}
}

func TestLoadIncludeLoop(t *testing.T) {
	dir := writeTree(t, map[string]string{"etc/ssh/sshd_config": "Include {ROOT}/etc/ssh/sshd_config\n"})
	if _, err := Load(dir, filepath.Join(dir, "etc/ssh/sshd_config")); err == nil || !strings.Contains(err.Error(), "deeply") {
		t.Fatalf("include loop: err = %v", err)
	}
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		s     Settings
		want  map[string]string // path -> new content
	}{
		{
			name:  "in place in the main file",
			files: map[string]string{"etc/ssh/sshd_config": "# comment\nPort 22\n\n#PasswordAuthentication yes\nPasswordAuthentication yes\nUsePAM yes\n"},
			s:     Settings{KeysOnly: true, Port: 2222},
			want: map[string]string{"etc/ssh/sshd_config": "# Set by palisade ssh harden (first value wins in sshd_config).\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitEmptyPasswords no\n\n" +
				"# comment\nPort 2222\n\n#PasswordAuthentication yes\nPasswordAuthentication no\nUsePAM yes\n"},
		},
		{
			name: "drop-in that sorts first wins over cloud-init",
			files: map[string]string{
				"etc/ssh/sshd_config":                      "Include {ROOT}/etc/ssh/sshd_config.d/*.conf\nUsePAM yes\n",
				"etc/ssh/sshd_config.d/50-cloud-init.conf": "PasswordAuthentication yes\n",
			},
			s: Settings{KeysOnly: true},
			want: map[string]string{"etc/ssh/sshd_config.d/00-palisade.conf": "# Written by palisade ssh harden: these values win over later files.\n" +
				"PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitEmptyPasswords no\n"},
		},
		{
			name: "settings before the include go to the top of the main file",
			files: map[string]string{
				"etc/ssh/sshd_config":            "#header\n\nPort 22\nInclude {ROOT}/etc/ssh/sshd_config.d/*.conf\n",
				"etc/ssh/sshd_config.d/a.conf":   "PermitRootLogin yes\nPort 2200\n",
				"etc/ssh/sshd_config.d/b.conf":   "Match User x\n PermitRootLogin yes\n",
				"etc/ssh/sshd_config.d/zz.other": "unread\n",
			},
			s: Settings{NoRootPassword: true, Port: 4022},
			want: map[string]string{
				"etc/ssh/sshd_config":          "#header\n\n# Set by palisade ssh harden (first value wins in sshd_config).\nPermitRootLogin prohibit-password\n\nPort 4022\nInclude {ROOT}/etc/ssh/sshd_config.d/*.conf\n",
				"etc/ssh/sshd_config.d/a.conf": "PermitRootLogin yes\n#Port 2200 # palisade: replaced by Port 4022\n",
				"etc/ssh/sshd_config.d/b.conf": "Match User x\n PermitRootLogin prohibit-password\n",
			},
		},
		{
			name:  "match block passwords are switched off too",
			files: map[string]string{"etc/ssh/sshd_config": "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitEmptyPasswords no\nMatch Address 192.0.2.0/24\n\tPasswordAuthentication yes\n"},
			s:     Settings{KeysOnly: true},
			want:  map[string]string{"etc/ssh/sshd_config": "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitEmptyPasswords no\nMatch Address 192.0.2.0/24\n\tPasswordAuthentication no\n"},
		},
		{
			name:  "nothing to do",
			files: map[string]string{"etc/ssh/sshd_config": "PermitRootLogin no\n"},
			s:     Settings{NoRootPassword: true},
			want:  map[string]string{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeTree(t, tc.files)
			c, err := Load(dir, filepath.Join(dir, "etc/ssh/sshd_config"))
			if err != nil {
				t.Fatal(err)
			}
			changes, err := Plan(c, tc.s)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, ch := range changes {
				rel, _ := filepath.Rel(dir, ch.Path)
				got[rel] = string(ch.New)
			}
			want := map[string]string{}
			for k, v := range tc.want {
				want[k] = strings.ReplaceAll(v, "{ROOT}", dir)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("changes (-want +got):\n%s", d)
			}
		})
	}
}

func TestPlanRefusesListenAddressWithPort(t *testing.T) {
	dir := writeTree(t, map[string]string{"etc/ssh/sshd_config": "ListenAddress 192.0.2.1:22\n"})
	c, err := Load(dir, filepath.Join(dir, "etc/ssh/sshd_config"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Plan(c, Settings{Port: 2222}); err == nil || !strings.Contains(err.Error(), "ListenAddress") {
		t.Fatalf("err = %v", err)
	}
}

func TestCountKeys(t *testing.T) {
	good := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host"
	tests := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"# " + good, 0},
		{good, 1},
		{`from="192.0.2.0/24",no-pty ` + good + "\n" + good, 2},
		{"ssh-ed25519 notbase64!", 0},
		{"ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl", 0}, // blob names another type
	}
	for _, tc := range tests {
		if got := CountKeys([]byte(tc.in)); got != tc.want {
			t.Errorf("CountKeys(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestKeyFiles(t *testing.T) {
	u := User{Name: "alice", UID: "1000", Home: "/home/alice"}
	got := KeyFiles("/r", []string{".ssh/authorized_keys", "/etc/ssh/keys/%u", "%h/k_%U", "none"}, u)
	want := []string{"/r/home/alice/.ssh/authorized_keys", "/r/etc/ssh/keys/alice", "/r/home/alice/k_1000"}
	if d := cmp.Diff(want, got); d != "" {
		t.Error(d)
	}
}

func FuzzSplitLine(f *testing.F) {
	for _, s := range []string{"Port 22", `Banner "a b" c`, "Match User x,y", "a=b", `"`, "#x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kw, args, err := splitLine(s)
		if err != nil {
			return
		}
		if kw == "" && len(args) > 0 {
			t.Fatalf("args without keyword: %q", s)
		}
	})
}

package ports

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/palisade-project/palisade/internal/firewall/nstest"
	"github.com/palisade-project/palisade/internal/harden/hardentest"
	"github.com/palisade-project/palisade/internal/sysexec"
)

const procTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: 0100007F:9C40 0100007F:08AE 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
`

const procTCP6 = `  sl  local_address                         rem_address                           st
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A
   1: 00000000000000000000000001000000:0FA0 00000000000000000000000000000000:0000 0A
`

func TestParseListeners(t *testing.T) {
	tests := []struct {
		data string
		port int
		want []string
	}{
		{procTCP, 22, []string{"tcp 0.0.0.0:22"}},
		{procTCP, 2222, []string{"tcp 127.0.0.1:2222"}},
		{procTCP, 40000, nil}, // an established connection's local port, not a listener
		{procTCP6, 22, []string{"tcp [::]:22"}},
		{procTCP6, 4000, []string{"tcp [::1]:4000"}},
		{"garbage\n  0: zz:zz 0 0A\n", 22, nil},
	}
	for _, tc := range tests {
		if got := ParseListeners([]byte(tc.data), tc.port); !cmp.Equal(got, tc.want) {
			t.Errorf("port %d: got %q, want %q", tc.port, got, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	r := hardentest.New(t)
	r.Write("/proc/net/tcp", procTCP)
	r.Write("/proc/net/tcp6", procTCP6)
	r.Write("/etc/services", "ssh 22/tcp\nmysql 3306/tcp\nmysql 3306/udp\nmy-alias 3306/tcp mysql-alias\n")
	tests := []struct {
		port      int
		ignore    []int
		usable    bool
		codes     []string
		forceable bool
	}{
		{port: 2200, usable: true},
		{port: 22, codes: []string{CodeRange, CodeListening, CodeServices}},
		{port: 22, ignore: []int{22}, codes: []string{CodeRange, CodeServices}},
		{port: 2222, codes: []string{CodeListening}},
		{port: 3306, codes: []string{CodeServices}, forceable: true},
		{port: 65536, codes: []string{CodeRange}},
		{port: 0, codes: []string{CodeRange}},
	}
	for _, tc := range tests {
		c := (&Checker{Root: r.Dir, Ignore: tc.ignore}).Check(tc.port)
		var codes []string
		for _, p := range c.Problems {
			codes = append(codes, p.Code)
		}
		if c.Usable != tc.usable || !cmp.Equal(codes, tc.codes) {
			t.Errorf("port %d: usable %v codes %v, want %v %v", tc.port, c.Usable, codes, tc.usable, tc.codes)
		}
		if tc.forceable && c.Error(true) != nil {
			t.Errorf("port %d: --force does not override: %v", tc.port, c.Error(true))
		}
		if !tc.usable && c.Error(false) == nil {
			t.Errorf("port %d: no error", tc.port)
		}
	}
	if c := (&Checker{Root: r.Dir}).Check(3306); !cmp.Equal(c.Services, []string{"my-alias/tcp", "mysql-alias/tcp", "mysql/tcp", "mysql/udp"}) {
		t.Errorf("services = %v", c.Services)
	}
}

// Without /proc files under the root the port is probed by binding it.
func TestCheckBindProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	r := hardentest.New(t)
	c := (&Checker{Root: r.Dir}).Check(port)
	if c.Usable || len(c.Listening) == 0 {
		t.Errorf("bound port %d reported usable: %+v", port, c)
	}
}

func TestSetJailPort(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"replace", "[DEFAULT]\nport = 1\n\n[sshd]\nenabled = true\nport    = ssh\nmaxretry = 3\n", "[DEFAULT]\nport = 1\n\n[sshd]\nenabled = true\nport    = 2222\nmaxretry = 3\n"},
		{"continuation lines", "[sshd]\nport = ssh,\n       2200\nenabled = true\n", "[sshd]\nport = 2222\nenabled = true\n"},
		{"colon separator", "[sshd]\nport: ssh\n", "[sshd]\nport: 2222\n"},
		{"add to section", "[sshd]\nenabled = true\n\n[nginx]\nport = http\n", "[sshd]\nport = 2222\nenabled = true\n\n[nginx]\nport = http\n"},
		{"add section", "[DEFAULT]\nbantime = 1h", "[DEFAULT]\nbantime = 1h\n\n[sshd]\nport = 2222\n"},
		{"new file", "", "# Local jail settings (palisade).\n[sshd]\nport = 2222\n"},
		{"commented port is kept", "[sshd]\n# port = 22\n", "[sshd]\nport = 2222\n# port = 22\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(SetJailPort([]byte(tc.in), "sshd", "2222")); got != tc.want {
				t.Errorf("got:\n%q\nwant:\n%q", got, tc.want)
			}
		})
	}
}

func TestUFW(t *testing.T) {
	f := &sysexec.Fake{}
	f.On("ufw allow 2222/tcp", sysexec.Result{}, nil)
	f.On("ufw delete allow 22/tcp", sysexec.Result{}, nil)
	f.On("ufw status", sysexec.Result{Stdout: []byte("Status: active\n\nTo                         Action      From\n--                         ------      ----\n2222/tcp                   ALLOW       Anywhere\n")}, nil)
	ctx := context.Background()
	if Detect(ctx, f) != ViaUFW {
		t.Fatal("active ufw not detected")
	}
	u := UFW{Runner: f}
	if err := u.Open(ctx, 2222, "tcp"); err != nil {
		t.Fatal(err)
	}
	if err := u.Close(ctx, 22, "tcp"); err != nil {
		t.Fatal(err)
	}
	if open, err := u.IsOpen(ctx, 2222, "tcp"); !open || err != nil {
		t.Errorf("IsOpen(2222) = %v %v", open, err)
	}
	if open, _ := u.IsOpen(ctx, 22, "tcp"); open {
		t.Error("IsOpen(22) = true")
	}
	if err := u.Open(ctx, 1, "icmp"); err == nil {
		t.Error("bad protocol accepted")
	}
}

// Kernel test: the nftables opener in a fresh network namespace.
func TestNFTOpener(t *testing.T) {
	ns := nstest.New(t)
	n := &NFT{NetNSFd: ns.Fd()}
	ctx := context.Background()
	list := func() string {
		res, err := (nstest.Runner{NS: ns, Inner: sysexec.NewExec(0)}).Run(ctx, sysexec.Cmd{Name: "nft", Args: []string{"list", "table", "inet", "palisade"}})
		if err != nil {
			return ""
		}
		return string(res.Stdout)
	}
	nstest.RequireProgram(t, "nft")
	for _, p := range []int{2222, 2222, 2022} { // opening twice is one rule
		if err := n.Open(ctx, p, "tcp"); err != nil {
			t.Fatal(err)
		}
	}
	out := list()
	if strings.Count(out, "dport 2222 accept") != 1 || !strings.Contains(out, "dport 2022 accept") || !strings.Contains(out, `comment "palisade:open:2222/tcp"`) {
		t.Fatalf("ruleset:\n%s", out)
	}
	if open, err := n.IsOpen(ctx, 2222, "tcp"); !open || err != nil {
		t.Errorf("IsOpen = %v %v", open, err)
	}
	if err := n.Close(ctx, 2222, "tcp"); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(ctx, 4000, "tcp"); err != nil {
		t.Errorf("closing a closed port: %v", err)
	}
	out = list()
	if strings.Contains(out, "2222") || !strings.Contains(out, "dport 2022 accept") {
		t.Errorf("after close:\n%s", out)
	}
}

func TestTargetInAndPlanJailPorts(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("jail.conf", "[sshd]\nport = ssh\n[web]\nport = http\n[DEFAULT]\nport = 1\n")
	write("jail.local", "[sshd]\nenabled = true\n")
	write("jail.d/10-web.conf", "[web]\nport = 8080\n")   // read before jail.local: jail.local wins
	write("jail.d/50-ssh.local", "[sshd]\nport = 2200\n") // read after jail.local: it wins
	for _, tc := range []struct{ jail, want string }{
		{"sshd", "jail.d/50-ssh.local"},
		{"web", "jail.local"},
		{"other", "jail.local"},
	} {
		if got := TargetIn(dir, tc.jail); got.File != filepath.Join(dir, tc.want) || got.Name != tc.jail {
			t.Errorf("TargetIn(%s) = %+v, want file %s", tc.jail, got, tc.want)
		}
	}
	targets := []JailTarget{TargetIn(dir, "sshd"), TargetIn(dir, "web"), TargetIn(dir, "sshd-ddos")}
	changes, err := PlanJailPorts(dir, targets, "2222")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range changes {
		got[strings.TrimPrefix(c.Path, dir+"/")] = string(c.New)
	}
	want := map[string]string{
		"jail.d/50-ssh.local": "[sshd]\nport = 2222\n",
		"jail.local":          "[sshd]\nenabled = true\n\n[web]\nport = 2222\n\n[sshd-ddos]\nport = 2222\n",
	}
	if len(got) != len(want) {
		t.Fatalf("changed files %q, want %q", got, want)
	}
	for f, w := range want {
		if got[f] != w {
			t.Errorf("%s:\n%s\nwant:\n%s", f, got[f], w)
		}
	}
	if again, _ := PlanJailPorts(dir, targets[:1], "2200"); len(again) != 0 {
		t.Errorf("setting the port it already has changed %d file(s)", len(again))
	}
}

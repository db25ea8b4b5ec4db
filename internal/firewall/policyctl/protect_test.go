package policyctl

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palisade-project/palisade/internal/sysexec"
)

func TestProtectorEndpoints(t *testing.T) {
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
	write("/etc/ssh/sshd_config", "Port 22\nPort 2022\n")
	// ssh.socket enabled, with a drop-in moving it to 2222.
	write("/etc/systemd/system/sockets.target.wants/ssh.socket", "")
	write("/lib/systemd/system/ssh.socket", "[Socket]\nListenStream=22\nAccept=yes\n")
	write("/etc/systemd/system/ssh.socket.d/port.conf", "[Socket]\nListenStream=\nListenStream=[::]:2222\n")
	f := &sysexec.Fake{}
	f.On("sshd -T", sysexec.Result{Stdout: []byte("port 22\nport 2022\npasswordauthentication no\n")}, nil)
	p := &Protector{
		Root: root, Runner: f,
		Getenv: func(k string) string {
			if k == "SSH_CONNECTION" {
				return "::ffff:203.0.113.9 51234 192.0.2.1 2022"
			}
			return ""
		},
		IgnoreIP: func() ([]netip.Prefix, error) {
			return []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("198.51.100.0/24")}, nil
		},
	}
	eps, warns := p.Endpoints(context.Background())
	if len(warns) != 0 {
		t.Errorf("warnings %v", warns)
	}
	var got []string
	for _, e := range eps {
		got = append(got, e.String())
	}
	want := []string{
		"port 22/tcp (sshd port 22)", "port 2022/tcp (sshd port 2022)", "port 2222/tcp (sshd port 2222)",
		"port 2022/tcp from 203.0.113.9 (your SSH session from 203.0.113.9)",
		"port 22/tcp from 203.0.113.9 (your SSH session from 203.0.113.9)",
		"port 2222/tcp from 203.0.113.9 (your SSH session from 203.0.113.9)",
		"port 22/tcp from 198.51.100.0/24 (ignoreip 198.51.100.0/24)",
		"port 2022/tcp from 198.51.100.0/24 (ignoreip 198.51.100.0/24)",
		"port 2222/tcp from 198.51.100.0/24 (ignoreip 198.51.100.0/24)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("endpoints:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// sshd -T failing: port 22 is protected, with a warning.
	bad := &sysexec.Fake{}
	bad.On("sshd -T", sysexec.Result{}, errors.New("sshd: not found"))
	eps, warns = (&Protector{Root: t.TempDir(), Runner: bad}).Endpoints(context.Background())
	if len(eps) != 1 || eps[0].Port != 22 || len(warns) != 1 {
		t.Errorf("fallback: %v %v", eps, warns)
	}
}

func TestParseSSHConnection(t *testing.T) {
	for _, tc := range []struct {
		in   string
		addr string
		port uint16
		ok   bool
	}{
		{"198.51.100.7 50000 192.0.2.1 22", "198.51.100.7", 22, true},
		{"2001:db8::7 50000 2001:db8::1 2222", "2001:db8::7", 2222, true},
		{"garbage", "", 0, false},
		{"", "", 0, false},
		{"x 1 2 3", "", 0, false},
	} {
		a, port, ok := ParseSSHConnection(tc.in)
		if ok != tc.ok || ok && (a.String() != tc.addr || port != tc.port) {
			t.Errorf("%q: %v %d %v", tc.in, a, port, ok)
		}
	}
}

func TestConflictUnderRoot(t *testing.T) {
	root := t.TempDir()
	if err := Conflict(context.Background(), nil, root); err != nil {
		t.Errorf("no ufw: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc/ufw"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/ufw/ufw.conf"), []byte("# x\nENABLED=yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Conflict(context.Background(), nil, root)
	if err == nil || !strings.Contains(err.Error(), "palisade firewall import ufw") || !strings.Contains(err.Error(), "ufw disable") {
		t.Errorf("ufw enabled: %v", err)
	}
	f := &sysexec.Fake{}
	f.On("ufw status", sysexec.Result{Stdout: []byte("Status: active\n")}, nil)
	f.On("firewall-cmd", sysexec.Result{}, errors.New("not installed"))
	if err := Conflict(context.Background(), f, ""); err == nil {
		t.Error("active ufw on the host not seen")
	}
	f.On("ufw status", sysexec.Result{Stdout: []byte("Status: inactive\n")}, nil)
	f.On("firewall-cmd --state", sysexec.Result{Stdout: []byte("running\n")}, nil)
	if err := Conflict(context.Background(), f, ""); err == nil || !strings.Contains(err.Error(), "firewalld") {
		t.Errorf("firewalld: %v", err)
	}
}

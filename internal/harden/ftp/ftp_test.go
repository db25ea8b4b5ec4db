package ftp

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/harden/hardentest"
	"github.com/palisade-project/palisade/internal/harden/ports"
	"github.com/palisade-project/palisade/internal/harden/rollback"
	"github.com/palisade-project/palisade/internal/sysexec"
)

func TestSetPort(t *testing.T) {
	tests := []struct {
		name, kind, in, want string
	}{
		{"proftpd active", ProFTPD, "ServerName x\n# Port 21 is standard\nPort\t\t\t\t21\n<VirtualHost 192.0.2.1>\n  Port 2121\n</VirtualHost>\n",
			"ServerName x\n# Port 21 is standard\nPort\t\t\t\t2100\n<VirtualHost 192.0.2.1>\n  Port 2121\n</VirtualHost>\n"},
		{"proftpd commented", ProFTPD, "ServerName x\n#Port 21\nUser ftp\n", "ServerName x\nPort 2100\nUser ftp\n"},
		{"proftpd missing, before the first container", ProFTPD, "ServerName x\n<Global>\n  Port 1\n</Global>\n", "ServerName x\nPort 2100\n<Global>\n  Port 1\n</Global>\n"},
		{"proftpd missing, no newline at end", ProFTPD, "ServerName x", "ServerName x\nPort 2100\n"},
		{"vsftpd active", VsFTPD, "listen=YES\nlisten_port=21\n", "listen=YES\nlisten_port=2100\n"},
		{"vsftpd commented", VsFTPD, "listen=YES\n#listen_port=21\n", "listen=YES\nlisten_port=2100\n"},
		{"vsftpd missing", VsFTPD, "listen=YES\n", "listen=YES\nlisten_port=2100\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(SetPort(tc.kind, []byte(tc.in), 2100)); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
			if n, ok := currentPort(tc.kind, SetPort(tc.kind, []byte(tc.in), 2100)); !ok || n != 2100 {
				t.Errorf("currentPort after SetPort = %d %v", n, ok)
			}
		})
	}
}

func requireProftpd(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("proftpd"); err != nil {
		t.Skip("proftpd is not installed (proftpd-basic)")
	}
	if _, err := os.Stat("/etc/proftpd/proftpd.conf"); err != nil {
		t.Skip("no /etc/proftpd/proftpd.conf to copy")
	}
}

// proftpdRoot copies the installed proftpd.conf under a new root (its
// Include lines keep pointing at the installed modules.conf).
func proftpdRoot(t *testing.T) *hardentest.Root {
	t.Helper()
	requireProftpd(t)
	conf, err := os.ReadFile("/etc/proftpd/proftpd.conf")
	if err != nil {
		t.Fatal(err)
	}
	r := hardentest.New(t)
	r.Write("/etc/proftpd/proftpd.conf", string(conf))
	r.Write("/etc/palisade/jail.local", "[proftpd]\nenabled = true\n")
	r.Write("/etc/services", "ftp 21/tcp\nmysql 3306/tcp\n")
	r.Write("/proc/net/tcp", "  sl  local_address rem_address   st\n   0: 00000000:0015 00000000:0000 0A\n   1: 0100007F:0CEA 00000000:0000 0A\n")
	return r
}

func TestMoveProftpd(t *testing.T) {
	r := proftpdRoot(t)
	orig := r.Read("/etc/proftpd/proftpd.conf")
	m := &Mover{Runner: sysexec.NewExec(30 * time.Second), Root: r.Dir, Store: rollback.New(r.Dir)}
	res, err := m.Move(context.Background(), Options{Port: 2121})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Validated || res.OldPort != 21 || res.Restarted {
		t.Errorf("result %+v", res)
	}
	got := r.Read("/etc/proftpd/proftpd.conf")
	if strings.Replace(orig, "\nPort\t\t\t\t21\n", "\nPort\t\t\t\t2121\n", 1) != got && strings.Replace(orig, "\nPort 21\n", "\nPort 2121\n", 1) != got {
		t.Errorf("only the Port line should change; diff:\n%s", res.Diff)
	}
	if n, ok := currentPort(ProFTPD, []byte(got)); !ok || n != 2121 {
		t.Errorf("port now %d", n)
	}
	if jl := r.Read("/etc/palisade/jail.local"); jl != "[proftpd]\nport = 2121\nenabled = true\n" {
		t.Errorf("jail.local:\n%s", jl)
	}
	// The real proftpd accepts the result.
	if _, err := sysexec.NewExec(30*time.Second).Run(context.Background(), sysexec.Cmd{Name: "proftpd", Args: []string{"-t", "-c", r.Path("/etc/proftpd/proftpd.conf")}}); err != nil {
		t.Errorf("proftpd -t on the result: %v", err)
	}
}

func TestMoveRefusalsWriteNothing(t *testing.T) {
	tests := []struct {
		name, msg string
		port      int
		setup     func(r *hardentest.Root)
		usage     bool
	}{
		{name: "out of range", port: 990, msg: "outside", usage: true},
		// 0x0CEA = 3306 listens on 127.0.0.1 in the root's /proc/net/tcp.
		{name: "listening", port: 3306, msg: "already in use: tcp 127.0.0.1:3306"},
		{name: "in /etc/services", port: 5432, msg: "postgresql/tcp", setup: func(r *hardentest.Root) {
			r.Write("/etc/services", "ftp 21/tcp\npostgresql 5432/tcp\n")
		}},
		{name: "proftpd -t fails", port: 2121, msg: "proftpd -t rejects", setup: func(r *hardentest.Root) {
			r.Write("/etc/proftpd/proftpd.conf", r.Read("/etc/proftpd/proftpd.conf")+"BogusDirective 1\n")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := proftpdRoot(t)
			if tc.setup != nil {
				tc.setup(r)
			}
			before := r.Hash()
			m := &Mover{Runner: sysexec.NewExec(30 * time.Second), Root: r.Dir, Store: rollback.New(r.Dir), Firewall: ports.None{}}
			_, err := m.Move(context.Background(), Options{Port: tc.port})
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %q", err, tc.msg)
			}
			var re *RefusedError
			if tc.usage && (!errors.As(err, &re) || !re.Usage) {
				t.Errorf("not a usage refusal: %v", err)
			}
			if r.Hash("/var") != before {
				t.Error("files changed")
			}
		})
	}
}

func TestMoveSamePort(t *testing.T) {
	r := hardentest.New(t)
	r.Write("/etc/proftpd.conf", "Port 2121\n")
	before := r.Hash()
	m := &Mover{Runner: &sysexec.Fake{}, Root: r.Dir, Store: rollback.New(r.Dir)}
	res, err := m.Move(context.Background(), Options{Port: 2121})
	if err != nil || !res.NoChanges || r.Hash() != before {
		t.Fatalf("same port: %+v %v", res, err)
	}
}

func TestFindVsftpd(t *testing.T) {
	r := hardentest.New(t)
	r.Write("/etc/vsftpd.conf", "listen=YES\nlisten_port=2100\n")
	s, err := Find(r.Dir, "")
	if err != nil || s.Kind != VsFTPD || s.Port != 2100 || s.Jail != "vsftpd" {
		t.Fatalf("Find = %+v %v", s, err)
	}
	if _, err := Find(r.Dir, ProFTPD); err == nil {
		t.Error("found proftpd that is not there")
	}
	m := &Mover{Runner: &sysexec.Fake{}, Root: r.Dir, Store: rollback.New(r.Dir)}
	if _, err := m.Move(context.Background(), Options{Port: 2200}); err != nil {
		t.Fatal(err)
	}
	if got := r.Read("/etc/vsftpd.conf"); got != "listen=YES\nlisten_port=2200\n" {
		t.Errorf("vsftpd.conf:\n%s", got)
	}
}

// Package audittest builds --root trees for the audit's tests: a fresh
// Debian-like server (password SSH on port 22, no firewall, no jails, no
// daemon) and the same server after every fix the audit names, with the
// kernel's and the processes' state as files (proc/net, proc/PID/fd,
// nft-ruleset.json) and a fake daemon on a control socket. Only tests use
// it.
package audittest

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/cloudflare"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/firewall/policy"
	"github.com/palisade-project/palisade/internal/firewall/policyctl"
	"github.com/palisade-project/palisade/internal/firewall/policynft"
	"github.com/palisade-project/palisade/internal/harden/hardentest"
	"github.com/palisade-project/palisade/internal/harden/ports"
	"github.com/palisade-project/palisade/internal/harden/rollback"
	"github.com/palisade-project/palisade/internal/harden/sshd"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// Addresses of the lab (documentation ranges).
const (
	AdminAddr   = "198.51.100.7"
	ServerAddr  = "192.0.2.1"
	HardPort    = 2222
	SSHConnFmt  = AdminAddr + " 50000 " + ServerAddr + " %d"
	Interval    = 24 * time.Hour
	OpenSSLOld  = "3.0.11-1~deb12u1"
	OpenSSLSafe = "3.0.13-1~deb12u1"
)

// Sock is a listening socket of a process.
type Sock struct {
	Proto string // tcp, tcp6, udp, udp6
	Addr  string
	Port  uint16
	Comm  string
	PID   int
}

// Lab is one server tree and its fake daemon.
type Lab struct {
	T    testing.TB
	Root *hardentest.Root
	// Env is the audit's environment (SSH_CONNECTION).
	Env map[string]string
	// Socks are the listening sockets written to proc.
	Socks []Sock
	// NFT is the kernel's ruleset written to nft-ruleset.json.
	NFT *NFT
	// Socket is the fake daemon's control socket; Status and Cloudflare
	// are its replies (nil Status: no daemon).
	Socket     string
	mu         sync.Mutex
	Status     *control.StatusReply
	Cloudflare cloudflare.Status
}

// Fresh lays out a fresh Debian-like server: sshd with passwords and root
// logins on port 22, nginx on 80/443, nftables.service enabled with its
// flush ruleset, no firewall policy, no palisade configuration and no
// daemon, unattended-upgrades missing and an openssl security update
// pending. It needs sshd (hardentest.RequireSSHD).
func Fresh(t testing.TB) *Lab {
	t.Helper()
	hardentest.RequireSSHD(t)
	r := hardentest.New(t)
	r.SSHD(`# Debian-like sshd_config
Include {ROOT}/etc/ssh/sshd_config.d/*.conf
Port 22
PermitRootLogin yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM yes
X11Forwarding yes
PrintMotd no
PidFile {ROOT}/run/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
AcceptEnv LANG LC_*
`)
	r.User("root", "0", "/bin/bash", "")
	r.User("admin", "1000", "/bin/bash", r.Keygen("/keys/admin"))
	r.Write("/etc/services", "ftp 21/tcp\nssh 22/tcp\nsmtp 25/tcp\nhttp 80/tcp\nhttps 443/tcp\nftp-data 20/tcp\nftps 990/tcp\nftps-data 989/tcp\n")
	r.Write("/var/lib/dpkg/status", dpkgStatus(false))
	r.Write("/var/lib/apt/lists/deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages",
		"Package: openssl\nVersion: "+OpenSSLSafe+"\nArchitecture: amd64\n\nPackage: bash\nVersion: 5.2.15-2+b7\nArchitecture: amd64\n")
	r.Write("/etc/nftables.conf", "#!/usr/sbin/nft -f\n\nflush ruleset\n\ntable inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter;\n\t}\n}\n")
	link(t, r, "/lib/systemd/system/nftables.service", "/etc/systemd/system/sysinit.target.wants/nftables.service")
	r.Write("/var/log/auth.log", "")
	r.Write("/var/log/nginx/error.log", "")
	r.Write("/var/log/nginx/access.log", "")
	r.Write("/etc/nginx/nginx.conf", "events {}\nhttp {\n\tinclude /etc/nginx/conf.d/*.conf;\n\tinclude /etc/nginx/sites-enabled/*;\n}\n")
	r.Write("/etc/nginx/sites-enabled/default", "server {\n\tlisten 80 default_server;\n\tlisten 443 ssl default_server;\n\troot /var/www/html;\n}\n")
	if err := os.MkdirAll(r.Path("/var/log/journal"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "pal-audit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l := &Lab{T: t, Root: r, Env: map[string]string{"SSH_CONNECTION": fmt.Sprintf(SSHConnFmt, 22)}, NFT: &NFT{},
		Socket: filepath.Join(dir, "p.sock")}
	l.Socks = []Sock{
		{"tcp", "0.0.0.0", 22, "sshd", 500}, {"tcp6", "::", 22, "sshd", 500},
		{"tcp", "0.0.0.0", 80, "nginx", 600}, {"tcp", "0.0.0.0", 443, "nginx", 600}, {"tcp6", "::", 80, "nginx", 600},
		{"udp", "127.0.0.53", 53, "systemd-resolve", 300}, {"tcp", "127.0.0.1", 25, "exim4", 700},
	}
	l.serve(t)
	l.Sync()
	return l
}

func dpkgStatus(hardened bool) string {
	pkgs := [][3]string{{"openssh-server", "1:9.2p1-2+deb12u3", "amd64"}, {"nginx", "1.22.1-9", "amd64"}, {"nftables", "1.0.6-2+deb12u2", "amd64"},
		{"bash", "5.2.15-2+b7", "amd64"}, {"openssl", OpenSSLOld, "amd64"}}
	if hardened {
		pkgs[4][1] = OpenSSLSafe
		pkgs = append(pkgs, [3]string{"unattended-upgrades", "2.9.1+nmu3", "all"})
	}
	var b strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&b, "Package: %s\nStatus: install ok installed\nPriority: optional\nVersion: %s\nArchitecture: %s\nDescription: test\n continuation line\n\n", p[0], p[1], p[2])
	}
	b.WriteString("Package: telnet\nStatus: deinstall ok config-files\nVersion: 0.17+2.4-2\nArchitecture: amd64\n\n")
	return b.String()
}

func link(t testing.TB, r *hardentest.Root, target, at string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(r.Path(at)), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Remove(r.Path(at))
	if err := os.Symlink(target, r.Path(at)); err != nil {
		t.Fatal(err)
	}
}

// Link makes the symbolic link at (a system path) point at target.
func (l *Lab) Link(target, at string) { link(l.T, l.Root, target, at) }

// serve answers the lab's control socket from Status and Cloudflare.
func (l *Lab) serve(t testing.TB) {
	srv, err := control.Listen(l.Socket, control.Options{AllowUID: func(uint32) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx, control.HandlerFunc(l.handle))
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func (l *Lab) handle(_ context.Context, req control.Request) (any, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Status == nil {
		// A daemon that is not running does not answer; the socket file
		// is removed by Sync, so this is only reached by a stale client.
		return nil, fmt.Errorf("not running")
	}
	switch req.Verb {
	case control.VerbPing:
		return control.PingReply{Version: "test", PID: 812, Started: l.Status.Started}, nil
	case control.VerbStatus:
		return *l.Status, nil
	case control.VerbCloudflare:
		return l.Cloudflare, nil
	}
	return nil, fmt.Errorf("unexpected verb %s", req.Verb)
}

// SetDaemon changes the fake daemon's replies.
func (l *Lab) SetDaemon(f func(st *control.StatusReply, cf *cloudflare.Status)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(l.Status, &l.Cloudflare)
}

// DaemonSocket is the socket the audit should ask: the fake's while a
// daemon "runs", a path nobody listens on otherwise.
func (l *Lab) DaemonSocket() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Status == nil {
		return l.Socket + ".none"
	}
	return l.Socket
}

// Getenv reads the lab's environment.
func (l *Lab) Getenv(k string) string { return l.Env[k] }

// Sync writes Socks and NFT into the tree.
func (l *Lab) Sync() {
	l.T.Helper()
	WriteProc(l.T, l.Root.Dir, l.Socks)
	if err := os.WriteFile(l.Root.Path("/nft-ruleset.json"), l.NFT.Bytes(l.T), 0o644); err != nil {
		l.T.Fatal(err)
	}
}

func fwOpts() policyctl.Options { return policyctl.Options{ConfirmWithin: time.Minute} }

// Firewall is "palisade firewall" on the lab's tree, with a kernel that
// takes every policy; its watcher never starts.
func (l *Lab) Firewall() *policyctl.Controller {
	r := l.Root
	return &policyctl.Controller{Path: r.Path("/etc/palisade/" + policy.FileName), Names: policyctl.LoadNames(r.Dir), Kernel: kernel{},
		Store: policyctl.NewStore(r.Dir), Root: r.Dir, StartWatcher: func(*rollback.State) (int, error) { return 0, nil }}
}

// FirewallRule runs "palisade firewall ACTION WORDS..." and confirms it.
func (l *Lab) FirewallRule(a policy.Action, words ...string) {
	l.T.Helper()
	fw := l.Firewall()
	rl, given, err := policy.ParseRule(a, words, fw.Names)
	if err != nil {
		l.T.Fatalf("rule %v: %v", words, err)
	}
	ctx := context.Background()
	res, err := fw.Add(ctx, rl, given, fwOpts())
	if err != nil {
		l.T.Fatalf("firewall %s %v: %v", a, words, err)
	}
	if res.Pending != nil {
		if _, err := fw.Confirm(ctx); err != nil {
			l.T.Fatalf("firewall confirm: %v", err)
		}
	}
}

// kernel takes every policy (policyctl.Kernel).
type kernel struct{}

func (kernel) Apply(context.Context, policy.Policy) error     { return nil }
func (kernel) Installed(context.Context, policy.Policy) error { return nil }
func (kernel) Stats(context.Context, policy.Policy) ([]policynft.LimitStats, error) {
	return nil, nil
}

type reloader struct{}

func (reloader) Detect(context.Context, sshd.Effective) string { return "pidfile:/nonexistent" }
func (reloader) SocketActive(context.Context) bool             { return false }
func (reloader) Reload(context.Context, string, bool) error    { return nil }

// Harden applies every fix the audit of the fresh tree names: ssh harden
// (keys only, no root password, port 2222, confirmed) and the sshd
// settings it leaves to the admin, the firewall policy with a limit on SSH,
// jails for sshd and nginx, the Cloudflare lock with nginx's real-IP
// setup, a notification route, unattended upgrades, and a running daemon
// started at boot.
func (l *Lab) Harden() {
	t, r := l.T, l.Root
	t.Helper()
	run := sysexec.NewExec(30 * time.Second)
	h := &sshd.Hardener{Daemon: sshd.NewDaemon(run, r.Dir), Runner: run, Reloader: reloader{}, Store: rollback.New(r.Dir), Root: r.Dir,
		Firewall: ports.None{}, Getenv: func(k string) string { return map[string]string{"SUDO_USER": "admin"}[k] },
		StartWatcher: func(*rollback.State) (int, error) { return 0, nil }}
	ctx := context.Background()
	res, err := h.Harden(ctx, sshd.Options{Settings: sshd.Settings{KeysOnly: true, NoRootPassword: true, Port: HardPort}, ConfirmWithin: time.Minute})
	if err != nil {
		t.Fatalf("ssh harden: %v", err)
	}
	if _, err := h.Confirm(ctx); err != nil {
		t.Fatalf("ssh confirm: %v", err)
	}
	if !strings.Contains(r.Read("/etc/palisade/jail.local"), fmt.Sprintf("port = %d", HardPort)) {
		t.Fatalf("ssh harden did not move the jail:\n%s\n%s", r.Read("/etc/palisade/jail.local"), res.Diff)
	}
	// The settings ssh audit names as "set X in sshd_config".
	cfg := r.Read("/etc/ssh/sshd_config")
	cfg = strings.Replace(cfg, "X11Forwarding yes", "X11Forwarding no", 1)
	r.Write("/etc/ssh/sshd_config", cfg+"MaxAuthTries 3\nLoginGraceTime 30\nAllowUsers admin\n")
	// sshd was reloaded onto the new port.
	l.Socks[0].Port, l.Socks[1].Port = HardPort, HardPort
	l.Env["SSH_CONNECTION"] = fmt.Sprintf(SSHConnFmt, HardPort)

	// The firewall policy, made by the commands of "palisade firewall"
	// (default deny, allow the web, limit SSH, enable, confirm) against a
	// kernel that takes it.
	fw := l.Firewall()
	if _, err := fw.SetDefault(ctx, policy.DefaultDeny, fwOpts()); err != nil {
		t.Fatalf("firewall default deny: %v", err)
	}
	l.FirewallRule(policy.Allow, "80,443/tcp", "comment", "web")
	l.FirewallRule(policy.Limit, fmt.Sprint(HardPort)+"/tcp", "--conn", "2", "--rate", "1/1s")
	if _, err := fw.Enable(ctx, fwOpts()); err != nil {
		t.Fatalf("firewall enable: %v", err)
	}
	if _, err := fw.Confirm(ctx); err != nil {
		t.Fatalf("firewall confirm: %v", err)
	}
	l.Link("/lib/systemd/system/palisade-firewall.service", "/etc/systemd/system/multi-user.target.wants/palisade-firewall.service")
	l.Link("/lib/systemd/system/palisade.service", "/etc/systemd/system/multi-user.target.wants/palisade.service")

	// Jails.
	r.Write("/etc/palisade/jail.local", fmt.Sprintf(`[DEFAULT]
ignoreip = 127.0.0.1/8 ::1 %s
bantime = 1h

[sshd]
enabled = true
port = %d
bantime.increment = true

[nginx-http-auth]
enabled = true
port = http,https
logpath = %%(nginx_error_log)s
`, AdminAddr, HardPort))
	r.Write("/etc/palisade/palisade.local", `[cloudflare]
enabled = true

[notify:admin]
type = smtp
server = mail.example.org:587
from = palisade@example.org
to = admin@example.org
events = ban, health
`)
	r.Write("/etc/nginx/conf.d/cloudflare-real-ip.conf", "set_real_ip_from 173.245.48.0/20;\nreal_ip_header CF-Connecting-IP;\n")

	// Updates.
	r.Write("/var/lib/dpkg/status", dpkgStatus(true))
	r.Write("/etc/apt/apt.conf.d/20auto-upgrades", "APT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n")

	// The kernel: palisade's table with the policy, the jails and the lock.
	l.NFT = HardenedRuleset()
	now := time.Now().UTC()
	l.mu.Lock()
	healthy := control.JailHealth{Healthy: true, Problems: []string{}, Since: now.Add(-time.Hour)}
	l.Status = &control.StatusReply{Backend: "nftables", ConfigDir: r.Path("/etc/palisade"), Started: now.Add(-time.Hour), Healthy: true, Jails: []control.JailStatus{
		{Name: "nginx-http-auth", Filter: "nginx-http-auth", Sources: []string{r.Path("/var/log/nginx/error.log")}, Health: healthy},
		{Name: "sshd", Filter: "sshd", Sources: []string{r.Path("/var/log/auth.log")}, Health: healthy},
	}}
	fetched := now.Add(-time.Hour)
	l.Cloudflare = cloudflare.Status{State: cloudflare.StateOn, Origin: cloudflare.OriginConfig, Enabled: true, Daemon: true,
		Ports: "80,443", ConfigPorts: "80,443", BlockType: "drop", Interval: "1d", Source: "https://api.cloudflare.com/client/v4/ips",
		Fetched: &fetched, LastSuccess: &fetched, IPv4: []string{"173.245.48.0/20"}, IPv6: []string{"2400:cb00::/32"},
		Kernel: cloudflare.KernelInfo{Installed: true, InSync: true}, Warnings: []string{}}
	l.mu.Unlock()
	l.Sync()
}

// HardenedRuleset is table inet palisade with the policy of Harden, the
// jail chains of sshd and nginx-http-auth and the Cloudflare lock.
func HardenedRuleset() *NFT {
	d := &NFT{}
	d.Table("inet", "palisade")
	d.Set("inet", "palisade", "cf_v4", ExPrefix("173.245.48.0/20"))
	d.Set("inet", "palisade", "cf_v6", ExPrefix("2400:cb00::/32"))
	d.Set("inet", "palisade", "cf_ports", "80", "443")
	d.Chain("inet", "palisade", "cf_lock", "prerouting", -300, "accept")
	d.Rule("inet", "palisade", "cf_lock", "", `{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@cf_ports"}}`,
		`{"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@cf_v4"}}`, `{"counter": {"packets": 7, "bytes": 420}}`, ExDrop)
	d.Chain("inet", "palisade", "pol_input", "input", -10, "accept")
	d.Rule("inet", "palisade", "pol_input", "", `{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}`, ExAccept)
	d.Rule("inet", "palisade", "pol_input", "palisade:1 allow 80,443/tcp", ExDport("tcp", 80), ExAccept)
	d.Rule("inet", "palisade", "pol_input", fmt.Sprintf("palisade:2 limit %d/tcp --conn 2 --rate 1/1s", HardPort), ExDport("tcp", HardPort), ExJump("pol_8186c9bc"))
	d.Rule("inet", "palisade", "pol_input", "", ExJump("allow"))
	d.Rule("inet", "palisade", "pol_input", "", ExDrop)
	d.Chain("inet", "palisade", "pol_8186c9bc", "", 0, "")
	d.Chain("inet", "palisade", "allow", "", 0, "")
	d.Chain("inet", "palisade", "input", "input", -1, "accept")
	d.Rule("inet", "palisade", "input", "palisade:sshd", ExDport("tcp", HardPort), ExJump("j_sshd"))
	d.Rule("inet", "palisade", "input", "palisade:nginx-http-auth", ExDport("tcp", 80), ExJump("j_nginx-http-auth"))
	d.Chain("inet", "palisade", "j_sshd", "", 0, "")
	d.Chain("inet", "palisade", "j_nginx-http-auth", "", 0, "")
	return d
}

// Snapshot records every file under the root; the returned function puts
// the tree (and the lab's sockets, ruleset, environment and daemon
// replies) back as they were.
func (l *Lab) Snapshot() (restore func()) {
	t := l.T
	t.Helper()
	type entry struct {
		data []byte
		link string
		mode fs.FileMode
	}
	files := map[string]entry{}
	err := filepath.WalkDir(l.Root.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			files[p] = entry{link: target, mode: fs.ModeSymlink}
			return err
		}
		data, err := os.ReadFile(p)
		info, _ := d.Info()
		files[p] = entry{data: data, mode: info.Mode().Perm()}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	socks := append([]Sock(nil), l.Socks...)
	nft := &NFT{objs: append([]map[string]any(nil), l.NFT.objs...)}
	env := map[string]string{}
	for k, v := range l.Env {
		env[k] = v
	}
	l.mu.Lock()
	var status *control.StatusReply
	if l.Status != nil {
		s := *l.Status
		s.Jails = append([]control.JailStatus(nil), l.Status.Jails...)
		status = &s
	}
	cf := l.Cloudflare
	l.mu.Unlock()
	return func() {
		t.Helper()
		_ = filepath.WalkDir(l.Root.Dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if _, ok := files[p]; !ok {
					os.Remove(p)
				}
			}
			return nil
		})
		for p, e := range files {
			os.Remove(p)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if e.mode == fs.ModeSymlink {
				if err := os.Symlink(e.link, p); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := os.WriteFile(p, e.data, e.mode); err != nil {
				t.Fatal(err)
			}
		}
		l.Socks, l.NFT, l.Env = socks, nft, env
		l.mu.Lock()
		l.Status, l.Cloudflare = status, cf
		l.mu.Unlock()
	}
}

// procHex renders an address the way /proc/net/tcp does (32-bit words in
// little-endian order).
func procHex(a netip.Addr) string {
	b := a.AsSlice()
	var sb strings.Builder
	for w := 0; w < len(b); w += 4 {
		fmt.Fprintf(&sb, "%02X%02X%02X%02X", b[w+3], b[w+2], b[w+1], b[w])
	}
	return sb.String()
}

// WriteProc writes proc/net/{tcp,tcp6,udp,udp6} and each process's comm
// and fd links under dir.
func WriteProc(t testing.TB, dir string, socks []Sock) {
	t.Helper()
	os.RemoveAll(filepath.Join(dir, "proc"))
	tables := map[string][]string{}
	for i, s := range socks {
		inode := 40000 + i
		st := "0A"
		if strings.HasPrefix(s.Proto, "udp") {
			st = "07"
		}
		zero := "00000000"
		if strings.HasSuffix(s.Proto, "6") {
			zero = strings.Repeat("0", 32)
		}
		line := fmt.Sprintf("%4d: %s:%04X %s:0000 %s 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000 100 0 0 10 0",
			len(tables[s.Proto]), procHex(netip.MustParseAddr(s.Addr)), s.Port, zero, st, inode)
		tables[s.Proto] = append(tables[s.Proto], line)
		if s.Comm == "" {
			continue
		}
		pdir := filepath.Join(dir, "proc", fmt.Sprint(s.PID))
		if err := os.MkdirAll(filepath.Join(pdir, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pdir, "comm"), []byte(s.Comm+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(fmt.Sprintf("socket:[%d]", inode), filepath.Join(pdir, "fd", fmt.Sprint(3+i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "proc", "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tcp", "tcp6", "udp", "udp6"} {
		body := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
		for _, l := range tables[name] {
			body += l + "\n"
		}
		if err := os.WriteFile(filepath.Join(dir, "proc", "net", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// NFT builds "nft -j list ruleset" output.
type NFT struct {
	objs []map[string]any
}

// Table adds a table.
func (d *NFT) Table(family, name string) {
	d.objs = append(d.objs, map[string]any{"table": map[string]any{"family": family, "name": name}})
}

// Chain adds a chain; hook "" makes a regular chain.
func (d *NFT) Chain(family, table, name, hook string, prio int, policy string) {
	c := map[string]any{"family": family, "table": table, "name": name}
	if hook != "" {
		c["type"], c["hook"], c["prio"], c["policy"] = "filter", hook, prio, policy
	}
	d.objs = append(d.objs, map[string]any{"chain": c})
}

// Rule adds a rule whose expressions are JSON texts.
func (d *NFT) Rule(family, table, chain, comment string, exprs ...string) {
	ex := []json.RawMessage{}
	for _, e := range exprs {
		ex = append(ex, json.RawMessage(e))
	}
	r := map[string]any{"family": family, "table": table, "chain": chain, "expr": ex}
	if comment != "" {
		r["comment"] = comment
	}
	d.objs = append(d.objs, map[string]any{"rule": r})
}

// Set adds a named set with JSON element texts.
func (d *NFT) Set(family, table, name string, elems ...string) {
	el := []json.RawMessage{}
	for _, e := range elems {
		el = append(el, json.RawMessage(e))
	}
	d.objs = append(d.objs, map[string]any{"set": map[string]any{"family": family, "table": table, "name": name, "type": "ipv4_addr", "elem": el}})
}

// Without returns the ruleset without the chains (and their rules) named.
func (d *NFT) Without(chains ...string) *NFT {
	out := &NFT{}
	for _, o := range d.objs {
		var name string
		if c, ok := o["chain"].(map[string]any); ok {
			name, _ = c["name"].(string)
		}
		if r, ok := o["rule"].(map[string]any); ok {
			name, _ = r["chain"].(string)
		}
		drop := false
		for _, c := range chains {
			drop = drop || name == c
		}
		if !drop {
			out.objs = append(out.objs, o)
		}
	}
	return out
}

// Bytes renders the document.
func (d *NFT) Bytes(t testing.TB) []byte {
	t.Helper()
	all := append([]map[string]any{{"metainfo": map[string]any{"json_schema_version": 1}}}, d.objs...)
	b, err := json.Marshal(map[string]any{"nftables": all})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Expression snippets.
const (
	ExAccept = `{"accept": null}`
	ExDrop   = `{"drop": null}`
)

// ExDport matches a destination port.
func ExDport(proto string, port int) string {
	return fmt.Sprintf(`{"match": {"op": "==", "left": {"payload": {"protocol": %q, "field": "dport"}}, "right": %d}}`, proto, port)
}

// ExJump jumps to a chain.
func ExJump(target string) string { return fmt.Sprintf(`{"jump": {"target": %q}}`, target) }

// ExPrefix is a prefix set element.
func ExPrefix(p string) string {
	pfx := netip.MustParsePrefix(p)
	return fmt.Sprintf(`{"prefix": {"addr": %q, "len": %d}}`, pfx.Addr(), pfx.Bits())
}

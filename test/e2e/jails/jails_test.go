package jails

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/palisade-project/palisade/internal/firewall/nstest"
)

const maxRetry = 3

// craftedLogin is a login whose user name carries another address: that
// address must never be banned, the real source must be.
type craftedLogin struct{ from, user, spoofed string }

func craftedLogins() []craftedLogin {
	return []craftedLogin{
		{"198.51.100.20", "x 198.51.100.78 on", "198.51.100.78"},
		{"198.51.100.21", "root from 198.51.100.77 port 22 ssh2", "198.51.100.77"},
		{"198.51.100.22", "from 198.51.100.76 port 22", "198.51.100.76"},
		{"198.51.100.23", "198.51.100.75", "198.51.100.75"},
		{"2001:db8::20", "x from 2001:db8::77 port 22 ssh2", "2001:db8::77"},
	}
}

func jailLocal(logpath, banaction string) string {
	return fmt.Sprintf(`[DEFAULT]
ignoreip = 127.0.0.1/8 ::1 %s
banaction = %s
banaction_allports = %s

[sshd]
enabled  = true
port     = ssh
filter   = sshd
logpath  = %s
maxretry = %d
findtime = 10m
bantime  = 1h
`, adminIP, banaction, banaction, logpath, maxRetry)
}

func palisadeLocal(backend string) string {
	return fmt.Sprintf("[Definition]\nloglevel = INFO\nlogtarget = STDERR\n\n[firewall]\nbackend = %s\nblocktype = reject\n", backend)
}

// TestSSHJail runs the whole story once per firewall backend: a real sshd,
// real ssh clients, the real daemon, in network namespaces.
func TestSSHJail(t *testing.T) {
	palisade(t)
	nstest.RequireProgram(t, "ip", "ssh", "sshpass", "ssh-keygen", "useradd", "userdel", "chpasswd")
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Skip("e2e test: /usr/sbin/sshd (openssh-server) is not installed")
	}
	u := newUser(t)
	for _, bc := range backends() {
		t.Run(bc.name, func(t *testing.T) {
			nstest.RequireProgram(t, bc.programs...)
			scenario(t, u, bc)
		})
	}
}

func scenario(t *testing.T, u *testUser, bc backendCase) {
	crafted := craftedLogins()
	var extra4, extra6 []string
	for _, c := range crafted {
		if netip.MustParseAddr(c.from).Is6() {
			extra6 = append(extra6, c.from, c.spoofed)
		} else {
			extra4 = append(extra4, c.from, c.spoofed)
		}
	}
	l := newLab(t, extra4, extra6)
	dir := t.TempDir()
	if bc.prepare != nil {
		bc.prepare(t, l.srv)
	}
	s := startSSHD(t, l, u, dir)
	d := newDaemon(t, l.srv, dir, map[string]string{
		"palisade.local": palisadeLocal(bc.name),
		"jail.local":     jailLocal(s.authLog, bc.banaction),
	})
	d.start()
	var st statusReply
	d.json(&st, "status")
	if st.Backend != bc.reported {
		t.Fatalf("daemon uses backend %q, want %q (configured %q)", st.Backend, bc.reported, bc.name)
	}
	if j := d.jail("sshd"); j.Error != "" {
		t.Fatalf("jail sshd: %s", j.Error)
	}

	// 1. The admin logs in with the key and with the password; failed
	// logins from the admin (in ignoreip) never ban it.
	if err := l.loginKey(u, adminIP); err != nil {
		t.Fatalf("admin key login: %v", err)
	}
	if err := l.loginPassword(u.name, u.password, adminIP); err != nil {
		t.Fatalf("admin password login: %v", err)
	}
	for range maxRetry + 1 {
		if err := l.loginPassword(u.name, "wrong-"+u.password, adminIP); err == nil {
			t.Fatal("login with a wrong password succeeded")
		}
	}

	// 2. The IPv4 attacker: maxretry-1 failures are counted and do not ban,
	// the maxretry-th does; then its connections are refused while the
	// admin and the IPv6 attacker still get in.
	for range maxRetry - 1 {
		if err := l.loginPassword(u.name, "guess", att4IP); err == nil {
			t.Fatal("login with a wrong password succeeded")
		}
	}
	nstest.Eventually(t, 10*time.Second, "failures of "+att4IP+" counted", func() error {
		if n := d.failures("sshd", att4IP); n != maxRetry-1 {
			return fmt.Errorf("%d failures counted", n)
		}
		return nil
	})
	if o := l.reach(t, att4IP); o != nstest.Connected {
		t.Fatalf("%s is blocked after %d failures (maxretry %d): %s", att4IP, maxRetry-1, maxRetry, o)
	}
	if err := l.loginPassword(u.name, "guess", att4IP); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	l.waitReach(t, att4IP, nstest.Refused, 10*time.Second)
	d.waitBanned("sshd", att4IP)
	if n, ignored := d.explain("sshd", adminIP); !ignored || n != 0 {
		t.Fatalf("explain %s: ignored %v, %d failures; want ignored (ignoreip), none counted", adminIP, ignored, n)
	}
	if err := l.loginKey(u, adminIP); err != nil {
		t.Fatalf("admin key login while %s is banned: %v", att4IP, err)
	}
	if err := l.loginPassword(u.name, u.password, att6IP); err != nil {
		t.Fatalf("IPv6 client login while %s is banned: %v", att4IP, err)
	}

	// 3. The IPv6 attacker is banned too; status lists both.
	for range maxRetry {
		if err := l.loginPassword(u.name, "guess", att6IP); err == nil {
			t.Fatal("login with a wrong password succeeded")
		}
	}
	l.waitReach(t, att6IP, nstest.Refused, 10*time.Second)
	d.waitBanned("sshd", att4IP, att6IP)
	j := d.jail("sshd")
	if got := slices.Sorted(slices.Values(j.Banned)); !slices.Equal(got, []string{att4IP, att6IP}) || j.CurrentlyBanned != 2 {
		t.Fatalf("status sshd: banned %v (currently %d), want both attackers", got, j.CurrentlyBanned)
	}
	text, code, stderr := d.cli("status", "sshd")
	if code != 0 || !strings.Contains(text, att4IP) || !strings.Contains(text, att6IP) {
		t.Fatalf("palisade status sshd (exit %d): %s%s", code, text, stderr)
	}
	l.waitReach(t, adminIP, nstest.Connected, 5*time.Second)
	iv := bc.inventory(t, l.srv)
	if len(iv.holding(att4IP)) != 1 || len(iv.holding(att6IP)) != 1 {
		t.Fatalf("firewall holds %v, want %s and %s once each", iv.elems, att4IP, att6IP)
	}

	// 4. palisade unban restores access.
	if out, code, stderr := d.cli("unban", "sshd", att4IP); code != 0 {
		t.Fatalf("unban: exit %d: %s%s", code, out, stderr)
	}
	l.waitReach(t, att4IP, nstest.Connected, 10*time.Second)
	if err := l.loginPassword(u.name, u.password, att4IP); err != nil {
		t.Fatalf("login after unban: %v", err)
	}
	if got := d.banned("sshd"); !slices.Equal(got, []string{att6IP}) {
		t.Fatalf("banned after unban: %v", got)
	}

	// 5. Restarts (SIGTERM, then kill -9): the remaining ban holds the
	// whole time and afterwards, with no duplicate rules.
	before := bc.inventory(t, l.srv)
	if dup := before.duplicates(); len(dup) > 0 {
		t.Fatalf("duplicates before restart: %v", dup)
	}
	if len(before.holding(att6IP)) != 1 || len(before.holding(att4IP)) != 0 {
		t.Fatalf("firewall holds %v, want only %s", before.elems, att6IP)
	}
	p := startPoller(t, l.att6, att6IP)
	p.phase(t, "running", 3)
	d.stop(syscall.SIGTERM)
	p.phase(t, "stopped by SIGTERM, then starting", 3)
	d.start()
	p.phase(t, "restarted", 3)
	d.stop(syscall.SIGKILL)
	p.phase(t, "killed with SIGKILL, then starting", 3)
	d.start()
	p.phase(t, "restarted after kill -9", 3)
	p.stop()
	if bad := p.failures(); len(bad) > 0 {
		t.Errorf("the ban on %s did not hold during the restarts: %v", att6IP, bad)
	}
	after := bc.inventory(t, l.srv)
	if diff := cmp.Diff(before.sorted(), after.sorted(), cmp.AllowUnexported(inventory{})); diff != "" {
		t.Fatalf("firewall changed across restarts (-before +after):\n%s", diff)
	}
	if got := d.banned("sshd"); !slices.Equal(got, []string{att6IP}) {
		t.Fatalf("banned after restarts: %v", got)
	}
	for _, a := range []string{adminIP, att4IP} {
		if o := l.reach(t, a); o != nstest.Connected {
			t.Fatalf("%s after restarts: %s", a, o)
		}
	}
	if o := l.reach(t, att6IP); o != nstest.Refused {
		t.Fatalf("%s after restarts: %s", att6IP, o)
	}

	// 6. User names carrying another address ban the real source only.
	for _, c := range crafted {
		for i := 0; i < maxRetry && l.reach(t, c.from) == nstest.Connected; i++ {
			if err := l.loginPassword(c.user, "guess", c.from); err == nil {
				t.Fatalf("login as %q succeeded", c.user)
			}
			// Each attempt logs two failures (invalid user, failed
			// password); wait until they are counted or banned.
			nstest.Eventually(t, 10*time.Second, "failures of "+c.from+" counted", func() error {
				if slices.Contains(d.banned("sshd"), c.from) || d.failures("sshd", c.from) >= 2*(i+1) {
					return nil
				}
				return fmt.Errorf("%d failures", d.failures("sshd", c.from))
			})
		}
		l.waitReach(t, c.from, nstest.Refused, 10*time.Second)
	}
	nstest.Eventually(t, 10*time.Second, "crafted logins' sources listed as banned", func() error {
		got := d.banned("sshd")
		for _, c := range crafted {
			if !slices.Contains(got, c.from) {
				return fmt.Errorf("%s not in %v", c.from, got)
			}
		}
		return nil
	})
	got := d.banned("sshd")
	for _, c := range crafted {
		if !slices.Contains(got, c.from) {
			t.Errorf("source %s of user %q is not banned: %v", c.from, c.user, got)
		}
		if slices.Contains(got, c.spoofed) {
			t.Errorf("%s from user name %q is banned: %v", c.spoofed, c.user, got)
		}
		if n := d.failures("sshd", c.spoofed); n != 0 {
			t.Errorf("%d failures counted for %s (from user name %q)", n, c.spoofed, c.user)
		}
		if o := l.reach(t, c.spoofed); o != nstest.Connected {
			t.Errorf("connection from %s: %s", c.spoofed, o)
		}
	}
	final := bc.inventory(t, l.srv)
	if dup := final.duplicates(); len(dup) > 0 {
		t.Fatalf("duplicates at the end: %v", dup)
	}
}

// poller connects from one address to port 22 in a loop and records every
// outcome other than refused, per phase of the restart sequence.
type poller struct {
	mu     sync.Mutex
	cur    string
	counts map[string]int
	bad    []string
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once
}

func startPoller(t *testing.T, ns *nstest.NS, from string) *poller {
	p := &poller{cur: "start", counts: map[string]int{}, quit: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(p.stop)
	go func() {
		defer close(p.done)
		for n := 0; n < 100000; n++ {
			select {
			case <-p.quit:
				return
			default:
			}
			o, err := dialFrom(ns, netip.MustParseAddr(from), sshPort(from), 300*time.Millisecond)
			p.mu.Lock()
			p.counts[p.cur]++
			if err != nil || o != nstest.Refused {
				p.bad = append(p.bad, fmt.Sprintf("%s: %s %v", p.cur, o, err))
			}
			p.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return p
}

// phase names what happens from now on and waits until n probes ran in it.
func (p *poller) phase(t *testing.T, name string, n int) {
	t.Helper()
	p.mu.Lock()
	p.cur = name
	p.mu.Unlock()
	nstest.Eventually(t, 10*time.Second, "probes while "+name, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.counts[name] < n {
			return fmt.Errorf("%d probes", p.counts[name])
		}
		return nil
	})
}

func (p *poller) stop() {
	p.once.Do(func() { close(p.quit) })
	<-p.done
}

func (p *poller) failures() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.bad)
}

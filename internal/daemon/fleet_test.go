package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	defaults "github.com/palisade-project/palisade/config"
	"github.com/palisade-project/palisade/filters"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/fleet"
	"github.com/palisade-project/palisade/internal/fleet/fleettest"
	"github.com/palisade-project/palisade/internal/testutil/poll"
)

// fleetDaemon is a daemon of a test, with its directory and log file.
type fleetDaemon struct {
	d      *Daemon
	dir    string
	etc    string
	logf   string
	fw     *firewall.Fake
	c      *control.Client
	cancel context.CancelFunc
	done   chan error
}

// startTestDaemon runs a daemon over a fake firewall with an sshd jail
// reading dir/auth.log and the given palisade.local.
func startTestDaemon(t *testing.T, palisadeLocal string) *fleetDaemon {
	t.Helper()
	return startTestDaemonIn(t, t.TempDir(), palisadeLocal)
}

// startTestDaemonIn is startTestDaemon in a directory the caller made.
func startTestDaemonIn(t *testing.T, dir, palisadeLocal string) *fleetDaemon {
	t.Helper()
	fd := &fleetDaemon{dir: dir, etc: filepath.Join(dir, "etc"), logf: filepath.Join(dir, "auth.log"), fw: firewall.NewFake()}
	if err := os.MkdirAll(fd.etc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fd.logf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	jl := "[sshd]\nenabled = true\nmaxretry = 3\nbantime = 1h\nlogpath = " + fd.logf + "\nignoreip = 127.0.0.1/8 203.0.113.0/24\n"
	if err := os.WriteFile(filepath.Join(fd.etc, "jail.local"), []byte(jl), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fd.etc, "palisade.local"), []byte(strings.ReplaceAll(palisadeLocal, "DIR", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devnull.Close() })
	opts := Options{ConfigDir: fd.etc, Socket: filepath.Join(dir, "run", "p.sock"), DB: filepath.Join(dir, "p.db"),
		Builtin: defaults.FS(), Filters: filters.FS(), AllowUID: testerUID(),
		Backend: fd.fw, Stderr: devnull, Notify: func(string) {}, PollInterval: 20 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := New(ctx, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	fd.d, fd.cancel, fd.done = d, cancel, make(chan error, 1)
	go func() { fd.done <- d.Serve(ctx) }()
	fd.c = control.NewClient(opts.Socket)
	poll.UntilNil(t, 10*time.Second, "daemon up", func() error { _, err := fd.c.Ping(ctx); return err })
	t.Cleanup(fd.stop)
	return fd
}

// enforced reports whether the firewall holds p in jail.
func (fd *fleetDaemon) enforced(jail, p string) bool {
	l, _ := fd.fw.List(context.Background())
	for _, b := range l {
		if b.Jail == jail && b.Prefix.String() == p {
			return true
		}
	}
	return false
}

func (fd *fleetDaemon) stop() {
	if fd.cancel != nil {
		fd.cancel()
		<-fd.done
		fd.cancel = nil
	}
}

// failures appends n sshd failures of addr to the daemon's log.
func (fd *fleetDaemon) failures(t *testing.T, addr string, n int) {
	t.Helper()
	f, err := os.OpenFile(fd.logf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range n {
		fmt.Fprintf(f, "%s web sshd[%d]: Failed password for root from %s port %d ssh2\n", time.Now().Format(time.Stamp), 1000+i, addr, 40000+i)
	}
}

// tcpSockets counts this process's TCP sockets.
func tcpSockets(t *testing.T) int {
	t.Helper()
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			if fs := strings.Fields(line); len(fs) > 9 {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && inodes[l] {
			n++
		}
	}
	return n
}

// fleetStacks returns the goroutine stacks that run fleet or NATS code.
func fleetStacks() []string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "nats-io/") || strings.Contains(g, "/internal/fleet.") {
			out = append(out, g)
		}
	}
	return out
}

// TestNoFleetSectionRunsNothing: without [fleet] (or with enabled =
// false) the daemon starts no fleet goroutine and opens no socket; with it
// (the control) both appear.
func TestNoFleetSectionRunsNothing(t *testing.T) {
	before := tcpSockets(t)
	if s := fleetStacks(); len(s) != 0 {
		t.Fatalf("fleet goroutines before any daemon:\n%s", strings.Join(s, "\n\n"))
	}
	for _, conf := range []string{"[Definition]\nloglevel = INFO\n", "[fleet]\nenabled = false\nservers = nats://127.0.0.1:9\n"} {
		fd := startTestDaemon(t, conf)
		fd.failures(t, "198.51.100.50", 3)
		poll.UntilNil(t, 10*time.Second, "local ban", func() error {
			r, err := fd.c.Banned(context.Background(), "sshd")
			if err != nil || len(r.Bans) != 1 {
				return fmt.Errorf("banned %v %v", r, err)
			}
			return nil
		})
		if fd.d.fl.enabled() {
			t.Fatal("fleet enabled without [fleet] enabled = true")
		}
		if s := fleetStacks(); len(s) != 0 {
			t.Fatalf("fleet goroutines:\n%s", strings.Join(s, "\n\n"))
		}
		if n := tcpSockets(t); n != before {
			t.Fatalf("%d TCP sockets, %d before the daemon", n, before)
		}
		st, err := fd.c.Status(context.Background(), "")
		if err != nil || st.Fleet != nil {
			t.Fatalf("status fleet %+v, %v", st.Fleet, err)
		}
		var fs fleet.Status
		if err := fd.c.Fleet(context.Background(), &fs); err == nil || !strings.Contains(err.Error(), "not configured") {
			t.Fatalf("fleet verb: %v", err)
		}
		fd.stop()
	}

	// The control: with [fleet], the node runs and connects.
	srv := fleettest.Start(t, fleettest.Options{})
	fd := startFleetMember(t, srv, "web1")
	poll.Until(t, 10*time.Second, "fleet goroutines", func() bool { return len(fleetStacks()) > 0 })
	if n := tcpSockets(t); n <= before {
		t.Fatalf("%d TCP sockets with the fleet on, %d before", n, before)
	}
	fd.stop()
}

// newFleetDir makes a member's directory with its signing key and
// returns it with the public key.
func newFleetDir(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	pub, err := fleet.GenerateKey(filepath.Join(dir, "fleet.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	return dir, fleet.FormatPublicKey(pub)
}

// fleetConf is a member's [fleet] section.
func fleetConf(srv *fleettest.Server, name string) string {
	return "[fleet]\nenabled = true\nservers = " + srv.URL() + "\nname = " + name +
		"\nkey = DIR/fleet.key\ntrust = DIR/fleet.trust\nshare = sshd\n"
}

// startFleetMember runs a daemon in the fleet of srv, named name, with
// an empty trust file.
func startFleetMember(t *testing.T, srv *fleettest.Server, name string) *fleetDaemon {
	t.Helper()
	dir, _ := newFleetDir(t)
	return startTestDaemonIn(t, dir, fleetConf(srv, name))
}

// trustedPair starts a server with the fleet stream and makes the
// directories of web1 and web2, each trusting both.
func trustedPair(t *testing.T) (srv *fleettest.Server, dirA, dirB string) {
	t.Helper()
	srv = fleettest.Start(t, fleettest.Options{})
	if _, _, err := fleet.InitStream(context.Background(), fleet.Conn{Servers: []string{srv.URL()}}, "admin", fleet.DefaultStream, 1); err != nil {
		t.Fatal(err)
	}
	dirA, pubA := newFleetDir(t)
	dirB, pubB := newFleetDir(t)
	trust := "web1 " + pubA + "\nweb2 " + pubB + "\n"
	for _, d := range []string{dirA, dirB} {
		if err := os.WriteFile(filepath.Join(d, "fleet.trust"), []byte(trust), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return srv, dirA, dirB
}

// TestFleetDaemons: two daemons configured by their files share a ban:
// failures in web1's log ban there, web2 enforces it in its fleet jail
// and shows it in banned, explain and status; an unban by hand and a
// trust file without web1 lift it.
func TestFleetDaemons(t *testing.T) {
	srv, dirA, dirB := trustedPair(t)
	ctx := context.Background()
	a := startTestDaemonIn(t, dirA, fleetConf(srv, "web1"))
	b := startTestDaemonIn(t, dirB, fleetConf(srv, "web2"))
	for _, fd := range []*fleetDaemon{a, b} {
		poll.UntilNil(t, 10*time.Second, "caught up", func() error {
			var st fleet.Status
			if err := fd.c.Fleet(ctx, &st); err != nil {
				return err
			}
			if !st.CaughtUp || !st.Daemon || st.Trusted != 2 {
				return fmt.Errorf("status %+v", st)
			}
			return nil
		})
	}

	a.failures(t, "198.51.100.7", 3)
	a.failures(t, "203.0.113.5", 3) // ignored by both (ignoreip of their sshd jail)
	remote := func() []control.BanEntry {
		r, err := b.c.Banned(ctx, "fleet")
		if err != nil {
			t.Fatal(err)
		}
		return r.Bans
	}
	poll.UntilNil(t, 10*time.Second, "web2 enforces web1's ban", func() error {
		bans := remote()
		if len(bans) != 1 || bans[0].IP != "198.51.100.7" || len(bans[0].Origins) != 1 || bans[0].Origins[0].Origin != "web1" ||
			bans[0].Origins[0].Jail != "sshd" {
			return fmt.Errorf("fleet bans %+v", bans)
		}
		if !b.enforced("fleet", "198.51.100.7/32") {
			return fmt.Errorf("not in web2's firewall")
		}
		return nil
	})
	ex, err := b.c.Explain(ctx, "198.51.100.7")
	if err != nil || len(ex.Fleet) != 1 || ex.Fleet[0].State != "applied" || len(ex.Banned) != 1 || ex.Banned[0].Jail != "fleet" {
		t.Fatalf("explain on web2: %+v, %v", ex, err)
	}
	st, err := b.c.Status(ctx, "")
	if err != nil || st.Fleet == nil || st.Fleet.RemoteBans != 1 || !st.Fleet.Connected || st.Fleet.Name != "web2" {
		t.Fatalf("status on web2: %+v, %v", st.Fleet, err)
	}

	// Lifted by hand on web2: not applied again on the next replay.
	if r, err := b.c.Unban(ctx, "fleet", "198.51.100.7"); err != nil || r.Removed != 1 {
		t.Fatalf("unban fleet: %+v %v", r, err)
	}
	poll.UntilNil(t, 10*time.Second, "explain says lifted", func() error {
		if ex, _ := b.c.Explain(ctx, "198.51.100.7"); len(ex.Fleet) != 1 || ex.Fleet[0].State != "lifted" {
			return fmt.Errorf("explain after the unban: %+v", ex.Fleet)
		}
		return nil
	})

	// A new ban of web1; then web1 leaves web2's trust file: lifted.
	a.failures(t, "198.51.100.8", 3)
	poll.Until(t, 10*time.Second, "web2 enforces the second ban", func() bool { return len(remote()) == 1 })
	trustB := filepath.Join(dirB, "fleet.trust")
	data, err := os.ReadFile(trustB)
	if err != nil {
		t.Fatal(err)
	}
	_, onlyWeb2, _ := strings.Cut(string(data), "\n") // the web2 line
	if err := os.WriteFile(trustB, []byte(onlyWeb2), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "web1's bans lifted on web2", func() bool { return len(remote()) == 0 })
	if b.enforced("fleet", "198.51.100.8/32") {
		t.Fatal("still in web2's firewall")
	}
	// web1's own bans are untouched.
	if r, _ := a.c.Banned(ctx, "sshd"); len(r.Bans) != 2 {
		t.Fatalf("web1's bans: %+v", r.Bans)
	}
}

// TestFleetOnOffAtReload: [fleet] added to a running daemon's
// configuration starts the node at reload (it catches up and enforces a
// member's ban); removed again, the node stops, its connection closes, the
// remote bans are lifted and the fleet verb says it is not configured;
// local banning goes on throughout.
func TestFleetOnOffAtReload(t *testing.T) {
	srv, dirA, dirB := trustedPair(t)
	ctx := context.Background()
	a := startTestDaemonIn(t, dirA, fleetConf(srv, "web1"))
	b := startTestDaemonIn(t, dirB, "[Definition]\nloglevel = INFO\n")
	if b.d.fl.enabled() {
		t.Fatal("fleet on without [fleet]")
	}
	setLocal := func(text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(b.etc, "palisade.local"), []byte(strings.ReplaceAll(text, "DIR", dirB)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := b.d.Reload(); err != nil {
			t.Fatalf("reload: %v", err)
		}
	}

	// On at reload.
	setLocal(fleetConf(srv, "web2"))
	poll.UntilNil(t, 10*time.Second, "web2 caught up after the reload", func() error {
		var st fleet.Status
		if err := b.c.Fleet(ctx, &st); err != nil {
			return err
		}
		if !st.CaughtUp || st.Trusted != 2 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	a.failures(t, "198.51.100.8", 3)
	poll.Until(t, 10*time.Second, "web2 enforces web1's ban", func() bool { return b.enforced("fleet", "198.51.100.8/32") })
	withFleet := tcpSockets(t)

	// Off at reload.
	setLocal("[Definition]\nloglevel = INFO\n")
	if b.d.fl.enabled() {
		t.Fatal("fleet still on after [fleet] was removed")
	}
	if b.enforced("fleet", "198.51.100.8/32") {
		t.Fatal("the remote ban stayed after [fleet] was removed")
	}
	poll.Until(t, 10*time.Second, "web2's connection closed", func() bool { return tcpSockets(t) < withFleet })
	var fs fleet.Status
	if err := b.c.Fleet(ctx, &fs); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Fatalf("fleet verb after the reload: %v", err)
	}
	b.failures(t, "198.51.100.9", 3)
	poll.Until(t, 10*time.Second, "local ban after the fleet stopped", func() bool { return b.enforced("sshd", "198.51.100.9/32") })
}

package fleet_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/palisade-project/palisade/internal/ban"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/fleet"
	"github.com/palisade-project/palisade/internal/fleet/fleettest"
	"github.com/palisade-project/palisade/internal/store"
	"github.com/palisade-project/palisade/internal/testutil/poll"
)

// fleetKeys are the members' keys, shared by the tests of one fleet.
type fleetKeys map[string]ed25519.PrivateKey

func newKeys(t testing.TB, names ...string) fleetKeys {
	k := fleetKeys{}
	for _, n := range names {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		k[n] = priv
	}
	return k
}

func (k fleetKeys) trust(names ...string) *fleet.Trust {
	m := map[string]ed25519.PublicKey{}
	for _, n := range names {
		m[n] = k[n].Public().(ed25519.PublicKey)
	}
	return fleet.NewTrust(m)
}

// member is one daemon's ban manager (real, over a fake firewall and a
// real store) and fleet node.
type member struct {
	t      testing.TB
	name   string
	dir    string
	cfg    fleet.Config
	st     *store.Store
	fw     *firewall.Fake
	bans   *ban.Manager
	node   *fleet.Node
	cancel context.CancelFunc
	done   chan struct{}
	// wrap, when set, stands between the node and the store.
	wrap func(fleet.Store) fleet.Store
	// backend, when set, is the ban manager's firewall instead of fw.
	backend firewall.Backend
}

func newMember(t testing.TB, url, name string, keys fleetKeys, trusted []string, mod func(*fleet.Config)) *member {
	t.Helper()
	return newMemberWith(t, url, name, keys, trusted, mod, nil)
}

// newMemberWith is newMember with the ban manager's firewall backend (nil:
// the Fake).
func newMemberWith(t testing.TB, url, name string, keys fleetKeys, trusted []string, mod func(*fleet.Config), backend firewall.Backend) *member {
	t.Helper()
	m := &member{t: t, name: name, dir: t.TempDir(), backend: backend}
	m.cfg = fleet.Config{Name: name, Key: keys[name], Trust: keys.trust(trusted...),
		Conn:   fleet.Conn{Servers: []string{url}, ReconnectWait: 100 * time.Millisecond},
		Policy: fleet.Policy{Caps: fleet.Caps{Rate: 1000, Active: 100000, TTL: 24 * time.Hour}}}
	if mod != nil {
		mod(&m.cfg)
	}
	m.start()
	t.Cleanup(m.stop)
	return m
}

// start opens the store and the ban manager (restoring the stored bans)
// and runs the node.
func (m *member) start() {
	t := m.t
	t.Helper()
	var err error
	m.st, err = store.Open(filepath.Join(m.dir, "palisade.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	m.fw = firewall.NewFake()
	// As the daemon does: the fleet's book stores the remote bans.
	jail := cmp.Or(m.cfg.Jail, fleet.DefaultJail)
	m.bans, err = ban.New(ban.Config{ReconcileInterval: -1, PerJail: map[string]ban.JailConfig{jail: {NotStored: true}}},
		ban.Deps{Store: m.st, Backend: cmp.Or[firewall.Backend](m.backend, m.fw)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.bans.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	var log *slog.Logger
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(tlog{t, m.name}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var fst fleet.Store = m.st
	if m.wrap != nil {
		fst = m.wrap(m.st)
	}
	m.node, err = fleet.New(m.cfg, fleet.Deps{Bans: m.bans, Store: fst, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})
	go func() { _ = m.bans.Run(ctx) }()
	go func() {
		defer close(m.done)
		if err := m.node.Run(ctx); err != nil {
			t.Errorf("%s: node: %v", m.name, err)
		}
	}()
}

type tlog struct {
	t    testing.TB
	name string
}

func (l tlog) Write(p []byte) (int, error) {
	l.t.Logf("%s: %s", l.name, p)
	return len(p), nil
}

func (m *member) stop() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	<-m.done
	m.cancel = nil
	m.st.Close()
}

func (m *member) restart() {
	m.stop()
	m.start()
}

func (m *member) ban(jail, prefix string, d time.Duration) {
	m.t.Helper()
	if _, err := m.bans.Ban(context.Background(), jail, netip.MustParsePrefix(prefix), d, "test"); err != nil {
		m.t.Fatalf("%s: ban %s: %v", m.name, prefix, err)
	}
}

func (m *member) unban(jail, prefix string) {
	m.t.Helper()
	if _, err := m.bans.Unban(context.Background(), jail, netip.MustParsePrefix(prefix)); err != nil {
		m.t.Fatalf("%s: unban %s: %v", m.name, prefix, err)
	}
}

// fleetBans lists the prefixes banned in the fleet jail, sorted.
func (m *member) fleetBans() []string {
	var out []string
	for _, e := range m.bans.List(fleet.DefaultJail) {
		out = append(out, e.Prefix.String())
	}
	slices.Sort(out)
	return out
}

// enforced reports whether the firewall holds p in the fleet jail.
func (m *member) enforced(p string) bool {
	l, _ := m.fw.List(context.Background())
	for _, b := range l {
		if b.Jail == fleet.DefaultJail && b.Prefix.String() == p {
			return true
		}
	}
	return false
}

func (m *member) waitFleet(what string, want ...string) {
	m.t.Helper()
	slices.Sort(want)
	poll.UntilNil(m.t, 10*time.Second, m.name+": "+what, func() error {
		if got := m.fleetBans(); !slices.Equal(got, want) {
			return fmt.Errorf("fleet bans %v, want %v", got, want)
		}
		for _, p := range want {
			if !m.enforced(p) {
				return fmt.Errorf("%s not in the firewall", p)
			}
		}
		return nil
	})
}

func (m *member) waitCaughtUp() {
	m.t.Helper()
	poll.Until(m.t, 10*time.Second, m.name+" caught up", func() bool { return m.node.Status().CaughtUp })
}

func (m *member) waitQueueEmpty() {
	m.t.Helper()
	poll.Until(m.t, 10*time.Second, m.name+" queue published", func() bool { return m.node.Status().Queue.Depth == 0 })
}

func initStream(t testing.TB, srv *fleettest.Server, c fleet.Conn) {
	t.Helper()
	if c.Servers == nil {
		c.Servers = []string{srv.URL()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := fleet.InitStream(ctx, c, "admin", fleet.DefaultStream, 1); err != nil {
		t.Fatal(err)
	}
}

func TestBanPropagatesAndUnbanLifts(t *testing.T) {
	srv := fleettest.Start(t, fleettest.Options{})
	initStream(t, srv, fleet.Conn{})
	keys := newKeys(t, "web1", "web2", "web3")
	all := []string{"web1", "web2", "web3"}
	a := newMember(t, srv.URL(), "web1", keys, all, nil)
	b := newMember(t, srv.URL(), "web2", keys, all, nil)
	c := newMember(t, srv.URL(), "web3", keys, all, func(c *fleet.Config) {
		c.Share = func(j string) bool { return j == "sshd" }
	})
	for _, m := range []*member{a, b, c} {
		m.waitCaughtUp()
	}
	a.ban("sshd", "198.51.100.7/32", time.Hour)
	a.ban("sshd", "2001:db8::7/128", time.Hour)
	c.ban("nginx", "203.0.113.9/32", time.Hour) // not shared by web3
	b.waitFleet("web1's bans", "198.51.100.7/32", "2001:db8::7/128")
	c.waitFleet("web1's bans", "198.51.100.7/32", "2001:db8::7/128")
	a.waitFleet("nothing of its own", []string{}...)

	ex := b.node.Explain(netip.MustParseAddr("198.51.100.7"))
	if len(ex) != 1 || ex[0].Origin != "web1" || ex[0].Jail != "sshd" || ex[0].State != "applied" || ex[0].Reason != "test" {
		t.Fatalf("explain on web2: %+v", ex)
	}
	// Remote bans are not published again by those who applied them.
	if st := b.node.Status(); st.Queue.Published != 0 {
		t.Fatalf("web2 published %d records", st.Queue.Published)
	}

	a.unban("sshd", "198.51.100.7/32")
	b.waitFleet("the tombstone", "2001:db8::7/128")
	c.waitFleet("the tombstone", "2001:db8::7/128")

	st := b.node.Status()
	var peer fleet.Peer
	for _, p := range st.Peers {
		if p.Origin == "web1" {
			peer = p
		}
	}
	if !st.Connected || !st.CaughtUp || peer.Received != 3 || peer.Applied != 2 || !peer.Trusted || st.RemoteBans != 1 {
		t.Fatalf("web2 status: %+v, web1 peer %+v", st, peer)
	}
}

func TestTTLExpiry(t *testing.T) {
	srv := fleettest.Start(t, fleettest.Options{})
	initStream(t, srv, fleet.Conn{})
	keys := newKeys(t, "web1", "web2", "web3")
	a := newMember(t, srv.URL(), "web1", keys, []string{"web1", "web2"}, nil)
	b := newMember(t, srv.URL(), "web2", keys, []string{"web1", "web2"}, nil)
	a.waitCaughtUp()
	b.waitCaughtUp()
	a.ban("sshd", "198.51.100.8/32", 2*time.Second)
	b.waitFleet("the short ban", "198.51.100.8/32")
	b.waitFleet("its expiry", []string{}...)
	// The stream forgets it too (per-message TTL): a member that replays
	// then gets nothing.
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	poll.UntilNil(t, 10*time.Second, "the stream's message expired", func() error {
		s, err := js.Stream(context.Background(), fleet.DefaultStream)
		if err != nil {
			return err
		}
		if n := s.CachedInfo().State.Msgs; n != 0 {
			return fmt.Errorf("%d messages", n)
		}
		return nil
	})
	late := newMember(t, srv.URL(), "web3", keys, []string{"web1"}, nil)
	late.waitCaughtUp()
	if got := late.fleetBans(); len(got) != 0 {
		t.Fatalf("a late member applied %v", got)
	}
}

// twoBans starts a server and two members trusting each other, web1
// (a) and web2 (b); web1 bans two addresses and web2 has them.
func twoBans(t *testing.T) (srv *fleettest.Server, a, b *member) {
	t.Helper()
	srv = fleettest.Start(t, fleettest.Options{})
	initStream(t, srv, fleet.Conn{})
	keys := newKeys(t, "web1", "web2")
	trusted := []string{"web1", "web2"}
	a = newMember(t, srv.URL(), "web1", keys, trusted, nil)
	b = newMember(t, srv.URL(), "web2", keys, trusted, nil)
	a.waitCaughtUp()
	b.waitCaughtUp()
	a.ban("sshd", "198.51.100.1/32", time.Hour)
	a.ban("sshd", "198.51.100.2/32", time.Hour)
	b.waitFleet("web1's first bans", "198.51.100.1/32", "198.51.100.2/32")
	return srv, a, b
}

func TestReplayAfterRestart(t *testing.T) {
	_, a, b := twoBans(t)

	b.stop()
	a.ban("sshd", "198.51.100.3/32", time.Hour) // while web2 is down
	a.unban("sshd", "198.51.100.1/32")
	a.waitQueueEmpty()
	b.start()
	b.waitFleet("the replay", "198.51.100.2/32", "198.51.100.3/32")

	// web1 restarts too: its bans are restored, not published again (the
	// stream holds them), and its later bans still propagate.
	pub := a.node.Status().Queue.Published
	a.restart()
	a.waitCaughtUp()
	a.ban("sshd", "198.51.100.4/32", time.Hour)
	b.waitFleet("a ban after web1's restart", "198.51.100.2/32", "198.51.100.3/32", "198.51.100.4/32")
	a.waitQueueEmpty()
	if got := a.node.Status().Queue.Published; got != 1 {
		t.Fatalf("web1 published %d records after its restart (had %d before), want only the new ban", got, pub)
	}
}

// TestRemoteBansSurviveARestartWithoutTheBus: the remote bans are stored
// once, in the fleet's book (not also as the ban manager's bans), and a
// daemon that restarts while the bus is down enforces them again from
// it.
func TestRemoteBansSurviveARestartWithoutTheBus(t *testing.T) {
	srv, _, b := twoBans(t)
	if n := storedBans(t, b.st, fleet.DefaultJail); n != 0 {
		t.Fatalf("the ban manager stored %d remote bans as well", n)
	}
	srv.Stop()
	b.restart()
	b.waitFleet("restarted without the bus", "198.51.100.1/32", "198.51.100.2/32")
	if b.node.Status().Connected {
		t.Fatal("connected with the server stopped")
	}
}

// storedBans counts the ban manager's stored bans of jail.
func storedBans(t testing.TB, st *store.Store, jail string) int {
	t.Helper()
	bans, _, err := st.Bans()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range bans {
		if b.Jail == jail {
			n++
		}
	}
	return n
}

func TestReconnectAfterServerRestart(t *testing.T) {
	srv := fleettest.Start(t, fleettest.Options{})
	initStream(t, srv, fleet.Conn{})
	keys := newKeys(t, "web1", "web2")
	trusted := []string{"web1", "web2"}
	a := newMember(t, srv.URL(), "web1", keys, trusted, nil)
	b := newMember(t, srv.URL(), "web2", keys, trusted, nil)
	a.waitCaughtUp()
	b.waitCaughtUp()
	a.ban("sshd", "198.51.100.1/32", time.Hour)
	b.waitFleet("before the outage", "198.51.100.1/32")

	srv.Stop()
	poll.Until(t, 10*time.Second, "web1 sees the outage", func() bool { return !a.node.Status().Connected })
	// Local banning does not wait for the bus.
	t0 := time.Now()
	a.ban("sshd", "198.51.100.2/32", time.Hour)
	a.ban("sshd", "198.51.100.3/32", time.Hour)
	a.unban("sshd", "198.51.100.1/32")
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("local bans took %v while the bus was down", d)
	}
	poll.Until(t, 5*time.Second, "records queued", func() bool { return a.node.Status().Queue.Depth == 3 })

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	b.waitFleet("after the outage", "198.51.100.2/32", "198.51.100.3/32")
	a.waitQueueEmpty()
	if st := b.node.Status(); st.Replays < 2 || st.Reconnects < 1 {
		t.Fatalf("web2 replays %d, reconnects %d: want a new replay after the reconnect", st.Replays, st.Reconnects)
	}
}

func TestForgedRecordsAreNeverApplied(t *testing.T) {
	srv := fleettest.Start(t, fleettest.Options{})
	initStream(t, srv, fleet.Conn{})
	keys := newKeys(t, "web1", "web2", "evil")
	b := newMember(t, srv.URL(), "web2", keys, []string{"web1", "web2"}, nil)
	b.waitCaughtUp()

	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	now := time.Now()
	rec := func(origin, prefix string) fleet.Record {
		return fleet.Record{Origin: origin, Kind: fleet.KindBan, Prefix: netip.MustParsePrefix(prefix), Jail: "sshd",
			Issued: now, Expires: now.Add(time.Hour), Seq: 1}
	}
	sign := func(r fleet.Record, k ed25519.PrivateKey) []byte {
		b, err := fleet.Sign(r, k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// web1's key signing a record under web1's subject, but altered.
	good := sign(rec("web1", "198.51.100.10/32"), keys["web1"])
	bad := append([]byte(nil), good...)
	i := bytes.Index(bad, []byte(`"s":"`)) + 10
	if bad[i] == 'A' {
		bad[i] = 'B'
	} else {
		bad[i] = 'A'
	}
	for _, m := range []struct {
		subject string
		data    []byte
	}{
		{fleet.Subject("web1", netip.MustParsePrefix("198.51.100.10/32")), bad},
		// An origin not in the trust file.
		{fleet.Subject("evil", netip.MustParsePrefix("198.51.100.11/32")), sign(rec("evil", "198.51.100.11/32"), keys["evil"])},
		// evil's record signed by evil, under web1's subject.
		{fleet.Subject("web1", netip.MustParsePrefix("198.51.100.12/32")), sign(rec("evil", "198.51.100.12/32"), keys["evil"])},
		// web2's own valid record published under web1's subject (web2 is trusted).
		{fleet.Subject("web1", netip.MustParsePrefix("198.51.100.13/32")), sign(rec("web2", "198.51.100.13/32"), keys["web2"])},
		// A record claiming to be web1's, signed by evil.
		{fleet.Subject("web1", netip.MustParsePrefix("198.51.100.14/32")), sign(rec("web1", "198.51.100.14/32"), keys["evil"])},
		{fleet.Subject("web1", netip.MustParsePrefix("198.51.100.15/32")), []byte("{}")},
	} {
		if err := nc.Publish(m.subject, m.data); err != nil {
			t.Fatal(err)
		}
	}
	// And one valid record, so that we know the others were read first.
	if err := nc.Publish(fleet.Subject("web1", netip.MustParsePrefix("198.51.100.20/32")), sign(rec("web1", "198.51.100.20/32"), keys["web1"])); err != nil {
		t.Fatal(err)
	}
	b.waitFleet("the one valid record", "198.51.100.20/32")
	st := b.node.Status()
	want := map[string]uint64{fleet.RefuseSignature: 2, fleet.RefuseUntrusted: 2, fleet.RefuseSubject: 1, fleet.RefuseMalformed: 1}
	for r, n := range want {
		if st.Refused[r] != n {
			t.Errorf("refused %s = %d, want %d (all: %v)", r, st.Refused[r], n, st.Refused)
		}
	}
	// A restart replays them all again: still never applied.
	b.restart()
	b.waitCaughtUp()
	b.waitFleet("after the replay", "198.51.100.20/32")
}

func TestTrustRemovalLiftsBans(t *testing.T) {
	srv := fleettest.Start(t, fleettest.Options{})
	initStream(t, srv, fleet.Conn{})
	keys := newKeys(t, "web1", "web2", "web3")
	all := []string{"web1", "web2", "web3"}
	a := newMember(t, srv.URL(), "web1", keys, all, nil)
	c := newMember(t, srv.URL(), "web3", keys, all, nil)
	b := newMember(t, srv.URL(), "web2", keys, all, nil)
	for _, m := range []*member{a, b, c} {
		m.waitCaughtUp()
	}
	a.ban("sshd", "198.51.100.1/32", time.Hour)
	a.ban("sshd", "198.51.100.2/32", time.Hour)
	c.ban("sshd", "198.51.100.2/32", 30*time.Minute)
	b.waitFleet("both origins", "198.51.100.1/32", "198.51.100.2/32")
	b.node.Reconfigure(keys.trust("web2", "web3"), b.cfg.Policy, nil)
	b.waitFleet("web1 no longer trusted", "198.51.100.2/32")
	if ex := b.node.Explain(netip.MustParseAddr("198.51.100.2")); len(ex) != 1 || ex[0].Origin != "web3" {
		t.Fatalf("explain %+v", ex)
	}
	// Also after a restart with the new trust file: web1's records stay
	// refused on replay.
	b.cfg.Trust = keys.trust("web2", "web3")
	b.restart()
	b.waitCaughtUp()
	b.waitFleet("after the restart", "198.51.100.2/32")
	if st := b.node.Status(); st.Refused[fleet.RefuseUntrusted] < 2 {
		t.Fatalf("refused %v", st.Refused)
	}
}

func TestQuorum(t *testing.T) {
	srv := fleettest.Start(t, fleettest.Options{})
	initStream(t, srv, fleet.Conn{})
	keys := newKeys(t, "web1", "web2", "web3")
	all := []string{"web1", "web2", "web3"}
	a := newMember(t, srv.URL(), "web1", keys, all, nil)
	c := newMember(t, srv.URL(), "web3", keys, all, nil)
	b := newMember(t, srv.URL(), "web2", keys, all, func(c *fleet.Config) { c.Policy.Quorum = 2 })
	for _, m := range []*member{a, b, c} {
		m.waitCaughtUp()
	}
	a.ban("sshd", "198.51.100.1/32", time.Hour)
	a.ban("sshd", "198.51.100.9/32", time.Hour) // marks that web1's first record was read
	poll.Until(t, 10*time.Second, "web2 saw web1's records", func() bool {
		return len(b.node.Explain(netip.MustParseAddr("198.51.100.9"))) == 1
	})
	if got := b.fleetBans(); len(got) != 0 {
		t.Fatalf("applied with one origin: %v", got)
	}
	if ex := b.node.Explain(netip.MustParseAddr("198.51.100.1")); len(ex) != 1 || ex[0].State != "quorum" {
		t.Fatalf("explain: %+v", ex)
	}
	c.ban("sshd", "198.51.100.1/32", time.Hour)
	b.waitFleet("a second origin", "198.51.100.1/32")
	c.unban("sshd", "198.51.100.1/32")
	b.waitFleet("back under the quorum", []string{}...)
}

func TestCapsAndExemptions(t *testing.T) {
	srv := fleettest.Start(t, fleettest.Options{})
	initStream(t, srv, fleet.Conn{})
	keys := newKeys(t, "web1", "web2")
	trusted := []string{"web1", "web2"}
	a := newMember(t, srv.URL(), "web1", keys, trusted, nil)
	b := newMember(t, srv.URL(), "web2", keys, trusted, func(c *fleet.Config) {
		c.Policy.Caps = fleet.Caps{Rate: 1000, Active: 3, TTL: 10 * time.Minute}
		c.Policy.Exempt = func(p netip.Prefix) (string, bool) {
			return "ignoreip 203.0.113.0/24", netip.MustParsePrefix("203.0.113.0/24").Overlaps(p)
		}
	})
	a.waitCaughtUp()
	b.waitCaughtUp()
	a.ban("sshd", "203.0.113.5/32", time.Hour)  // exempt on web2
	a.ban("sshd", "198.51.0.0/16", time.Hour)   // too wide
	a.ban("sshd", "198.51.100.1/32", -1)        // permanent: capped to 10m
	a.ban("sshd", "198.51.100.2/32", time.Hour) // capped to 10m
	a.ban("sshd", "198.51.100.3/32", time.Hour) // third active
	a.ban("sshd", "198.51.100.4/32", time.Hour) // over the active cap
	a.ban("sshd", "198.51.100.0/24", time.Hour) // over the active cap too
	poll.Until(t, 10*time.Second, "web2 judged every record", func() bool {
		st := b.node.Status()
		return st.Refused[fleet.RefuseExempt] == 1 && st.Refused[fleet.RefusePrefix] == 1 && st.Refused[fleet.RefuseActive] == 2
	})
	b.waitFleet("the records within the caps", "198.51.100.1/32", "198.51.100.2/32", "198.51.100.3/32")
	for _, e := range b.bans.List(fleet.DefaultJail) {
		if e.Permanent() || time.Until(e.Expires) > 10*time.Minute {
			t.Errorf("%s until %v: not capped to 10m", e.Prefix, e.Expires)
		}
	}
	ex := b.node.Explain(netip.MustParseAddr("203.0.113.5"))
	if len(ex) != 1 || ex[0].State != "refused" || ex[0].Refused != fleet.RefuseExempt || ex[0].Detail != "ignoreip 203.0.113.0/24" {
		t.Fatalf("explain of the exempt address: %+v", ex)
	}
	// The origin's own ban is untouched.
	if len(a.bans.List("sshd")) != 7 {
		t.Fatalf("web1's bans: %v", a.bans.List("sshd"))
	}
}

func TestQueueIsBoundedAndPersisted(t *testing.T) {
	srv := fleettest.Start(t, fleettest.Options{})
	initStream(t, srv, fleet.Conn{})
	keys := newKeys(t, "web1", "web2")
	trusted := []string{"web1", "web2"}
	a := newMember(t, srv.URL(), "web1", keys, trusted, func(c *fleet.Config) { c.QueueMax = 3 })
	a.waitCaughtUp()
	srv.Stop()
	poll.Until(t, 10*time.Second, "web1 disconnected", func() bool { return !a.node.Status().Connected })
	for i := 1; i <= 5; i++ {
		a.ban("sshd", fmt.Sprintf("198.51.100.%d/32", i), time.Hour)
	}
	poll.Until(t, 5*time.Second, "queue full", func() bool {
		st := a.node.Status()
		return st.Queue.Depth == 3 && st.Queue.Dropped == 2
	})
	// A restart keeps the queue; the replay after the reconnect republishes
	// what the queue dropped (the bans are still in force).
	a.restart()
	poll.Until(t, 5*time.Second, "the queue loaded after the restart", func() bool { return a.node.Status().Queue.Depth == 3 })
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	b := newMember(t, srv.URL(), "web2", keys, trusted, nil)
	b.waitFleet("every ban", "198.51.100.1/32", "198.51.100.2/32", "198.51.100.3/32", "198.51.100.4/32", "198.51.100.5/32")
}

func TestPermissions(t *testing.T) {
	keys := newKeys(t, "web1", "web2")
	srv := fleettest.Start(t, fleettest.Options{Users: []fleettest.User{
		{Name: "admin", Password: "admin-pw", Admin: true},
		{Name: "web1", Password: "pw1"}, {Name: "web2", Password: "pw2"},
	}})
	initStream(t, srv, fleet.Conn{User: "admin", Password: "admin-pw"})
	trusted := []string{"web1", "web2"}
	conn := func(user, pw string) func(*fleet.Config) {
		return func(c *fleet.Config) { c.Conn.User, c.Conn.Password = user, pw }
	}
	a := newMember(t, srv.URL(), "web1", keys, trusted, conn("web1", "pw1"))
	b := newMember(t, srv.URL(), "web2", keys, trusted, conn("web2", "pw2"))
	a.waitCaughtUp()
	b.waitCaughtUp()
	a.ban("sshd", "198.51.100.1/32", time.Hour)
	b.waitFleet("a ban under the fleet permissions", "198.51.100.1/32")

	// web2's account cannot publish under web1's subjects, nor delete the
	// stream or read another member's inbox.
	nc, err := nats.Connect(srv.URL(), nats.UserInfo("web2", "pw2"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	errs := make(chan error, 8)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })
	body, _ := fleet.Sign(fleet.Record{Origin: "web2", Kind: fleet.KindBan, Prefix: netip.MustParsePrefix("198.51.100.66/32"),
		Jail: "sshd", Issued: time.Now(), Expires: time.Now().Add(time.Hour), Seq: 1}, keys["web2"])
	_ = nc.Publish(fleet.Subject("web1", netip.MustParsePrefix("198.51.100.66/32")), body)
	for _, subj := range []string{"$JS.API.STREAM.DELETE." + fleet.DefaultStream, "$JS.API.STREAM.PURGE." + fleet.DefaultStream} {
		if _, err := nc.Request(subj, nil, 300*time.Millisecond); err == nil {
			t.Errorf("%s allowed", subj)
		}
	}
	if _, err := nc.SubscribeSync("_INBOX_web1.>"); err == nil {
		_ = nc.Flush()
	}
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("error %v, want a permission violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no permission violation reported")
	}
	if got := b.fleetBans(); !slices.Equal(got, []string{"198.51.100.1/32"}) {
		t.Fatalf("fleet bans %v", got)
	}
}

// gatedStore holds the writes that add records to the saved outgoing
// queue while its gate is closed.
type gatedStore struct {
	fleet.Store
	armed atomic.Bool
	gate  chan struct{}
	held  atomic.Int32
}

func (g *gatedStore) PutRecords(space string, put map[string][]byte, del []string) error {
	if space == fleet.SpaceQueue && len(put) > 1 && g.armed.Load() {
		g.held.Add(1)
		<-g.gate
	}
	return g.Store.PutRecords(space, put, del)
}

// TestPublishDoesNotWaitForTheDisk: a ban reaches the fleet while its
// record is still being saved in the outgoing queue, and once the save
// is done and the stream acknowledged it, the saved queue is empty (the
// removal is not overtaken by the save).
func TestPublishDoesNotWaitForTheDisk(t *testing.T) {
	srv := fleettest.Start(t, fleettest.Options{})
	initStream(t, srv, fleet.Conn{})
	keys := newKeys(t, "web1", "web2")
	trusted := []string{"web1", "web2"}
	g := &gatedStore{gate: make(chan struct{})}
	a := &member{t: t, name: "web1", dir: t.TempDir(), wrap: func(s fleet.Store) fleet.Store { g.Store = s; return g }}
	a.cfg = fleet.Config{Name: "web1", Key: keys["web1"], Trust: keys.trust(trusted...),
		Conn:   fleet.Conn{Servers: []string{srv.URL()}, ReconnectWait: 100 * time.Millisecond},
		Policy: fleet.Policy{Caps: fleet.Caps{Rate: 1000, Active: 100000, TTL: 24 * time.Hour}}}
	a.start()
	t.Cleanup(a.stop)
	var release sync.Once
	open := func() { release.Do(func() { close(g.gate) }) }
	t.Cleanup(open) // before web1 stops
	b := newMember(t, srv.URL(), "web2", keys, trusted, nil)
	a.waitCaughtUp()
	b.waitCaughtUp()

	g.armed.Store(true)
	a.ban("sshd", "198.51.100.1/32", time.Hour)
	// Well within the publisher's idle wake-up (5 s), which would publish
	// the queue even if it waited for the save.
	poll.Until(t, 3*time.Second, "web2 has the ban while web1 still saves its queue", func() bool {
		return slices.Equal(b.fleetBans(), []string{"198.51.100.1/32"})
	})
	if g.held.Load() != 1 {
		t.Fatalf("%d queue saves held, want 1 (the ban's)", g.held.Load())
	}
	open()
	a.waitQueueEmpty()
	poll.Until(t, 5*time.Second, "the saved queue emptied", func() bool {
		recs, err := a.st.Records(fleet.SpaceQueue)
		if err != nil {
			t.Fatal(err)
		}
		delete(recs, "seq")
		return len(recs) == 0
	})
}

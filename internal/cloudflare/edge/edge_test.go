package edge

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/ban"
	"github.com/palisade-project/palisade/internal/cloudflare/edge/edgetest"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/store"
)

const (
	zone  = "023e105f4ecef8ad9ca31a8372d0c353"
	token = "Sn3lZJTBX6kkg7OdcBUAxOO963GEIyGQqnFTOFYY"
)

type edgeRig struct {
	api   *edgetest.API
	st    *store.Store
	bans  *ban.Manager
	m     *Mirror
	stop  func()
	dbDir string
}

func newEdgeRig(t *testing.T) *edgeRig {
	t.Helper()
	r := &edgeRig{api: edgetest.New(t, zone, token), dbDir: t.TempDir()}
	st, err := store.Open(filepath.Join(r.dbDir, "p.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r.st = st
	r.bans, err = ban.New(ban.Config{ReconcileInterval: -1}, ban.Deps{Store: st, Backend: firewall.NewFake()})
	if err != nil {
		t.Fatal(err)
	}
	r.start(t)
	return r
}

// start runs a mirror (again, as a restarted daemon does).
func (r *edgeRig) start(t *testing.T) {
	t.Helper()
	c, err := NewClient(ClientConfig{BaseURL: r.api.URL, Zone: zone, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	r.m, err = New(Config{Zone: zone, Host: "web1", Mirrored: func(j string) bool { return j != "sshd" },
		RetryMin: 20 * time.Millisecond, RetryMax: 40 * time.Millisecond, CallTimeout: 2 * time.Second},
		Deps{Bans: r.bans, API: c, Store: r.st})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.m.Run(ctx); close(done) }()
	r.stop = func() { cancel(); <-done }
	t.Cleanup(r.stop)
	waitFor(t, "mirror started", func() bool { return r.m.Status().LastReconcile != nil })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *edgeRig) ban(t *testing.T, jail, ip string) {
	t.Helper()
	p := netip.MustParsePrefix(ip)
	if _, err := r.bans.Ban(context.Background(), jail, p, time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
}

func (r *edgeRig) unban(t *testing.T, jail, ip string) {
	t.Helper()
	if _, err := r.bans.Unban(context.Background(), jail, netip.MustParsePrefix(ip)); err != nil {
		t.Fatal(err)
	}
}

func (r *edgeRig) stored(t *testing.T) map[string]string {
	t.Helper()
	recs, err := r.st.Records(StoreSpace)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range recs {
		var rec record
		_ = json.Unmarshal(v, &rec)
		out[k] = rec.ID
	}
	return out
}

// Acceptance 3: ban → one POST with the right body; unban → one DELETE of
// the stored id; 429/500 → retried and shown as failing; restart →
// reconciled with the store and the zone.
func TestEdgeBanLifecycle(t *testing.T) {
	r := newEdgeRig(t)
	r.ban(t, "nginx", "198.51.100.4/32")
	r.ban(t, "sshd", "198.51.100.5/32")  // not a web jail
	r.ban(t, "nginx", "2001:db8:7::/48") // an IPv6 range
	r.ban(t, "nginx", "203.0.113.0/25")  // not expressible as an access rule
	// The rules are created by the mirror's worker, possibly before the
	// last event (the one skipped) is read: wait for both.
	waitFor(t, "two rules created, one ban skipped", func() bool {
		st := r.m.Status()
		return st.Created == 2 && st.Skipped == 1
	})
	rules, calls := r.api.Snapshot()
	if len(calls) != 2 {
		t.Fatalf("calls %+v, want two POSTs", calls)
	}
	var body edgetest.Rule
	for _, c := range calls {
		if c.Method != http.MethodPost || c.Path != "" {
			t.Errorf("call %+v", c)
		}
		if c.Body.Configuration.Value == "198.51.100.4" {
			body = c.Body
		}
	}
	want := edgetest.NewRule("ip", "198.51.100.4", "palisade jail=nginx host=web1")
	if body != want {
		t.Errorf("POST body %+v, want %+v", body, want)
	}
	if len(rules) != 2 {
		t.Fatalf("zone holds %v", rules)
	}
	st := r.m.Status()
	if st.Rules != 2 || st.Pending != 0 || st.Skipped != 1 || st.Failing != 0 {
		t.Errorf("status %+v", st)
	}
	ids := r.stored(t)
	id := ids["nginx 198.51.100.4/32"]
	if len(ids) != 2 || id == "" || rules[id].Configuration.Value != "198.51.100.4" {
		t.Fatalf("stored ids %v (zone %v)", ids, rules)
	}

	r.unban(t, "nginx", "198.51.100.4/32")
	waitFor(t, "rule deleted", func() bool { return r.m.Status().Deleted == 1 })
	_, calls = r.api.Snapshot()
	if last := calls[len(calls)-1]; len(calls) != 3 || last.Method != http.MethodDelete || last.Path != "/"+id {
		t.Errorf("calls after unban %+v, want one DELETE of %s", calls, id)
	}
	if _, ok := r.stored(t)["nginx 198.51.100.4/32"]; ok {
		t.Error("the deleted rule's id is still stored")
	}

	// Failures are retried, counted and shown; never counted as created.
	r.api.Fail(http.StatusTooManyRequests)
	r.api.SetBroken(true)
	r.ban(t, "nginx", "2001:db8::7/128")
	waitFor(t, "failures shown", func() bool { return r.m.Status().Errors >= 3 })
	st = r.m.Status()
	if st.Created != 2 || st.Failing != 1 || st.Pending != 1 || !strings.Contains(st.LastError, "HTTP 500") {
		t.Errorf("status while failing %+v", st)
	}
	if f := st.Failures[0]; f.IP != "2001:db8::7/128" || f.Op != "create" || f.Attempts < 3 || !strings.Contains(f.Error, "HTTP 500") {
		t.Errorf("failure %+v", f)
	}
	r.api.SetBroken(false)
	waitFor(t, "created after the retries", func() bool { return r.m.Status().Created == 3 })
	_, calls = r.api.Snapshot()
	posts := 0
	for _, c := range calls {
		if c.Method == http.MethodPost && c.Body.Configuration.Value == "2001:db8::7" {
			posts++
			if c.Body.Configuration.Target != "ip6" {
				t.Errorf("IPv6 target %q", c.Body.Configuration.Target)
			}
		}
	}
	if st := r.m.Status(); st.Failing != 0 || st.Pending != 0 || st.Errors != uint64(posts-1) || posts < 4 {
		t.Errorf("after recovery: %+v for %d POSTs (each failed one counted once)", st, posts)
	}

	// Restart: while the daemon is down, a ban ends, another starts, a rule
	// is deleted by hand, an orphan of ours and a human's rule appear.
	r.stop()
	r.unban(t, "nginx", "2001:db8:7::/48")
	r.ban(t, "nginx", "192.0.2.44/32")
	gone := r.stored(t)["nginx 2001:db8::7/128"]
	r.api.Remove(gone)
	r.api.Add(edgetest.NewRule("ip", "198.51.100.99", "palisade jail=nginx host=web1")) // an orphan of ours
	r.api.Add(edgetest.NewRule("ip", "198.51.100.100", "blocked by hand"))
	r.api.Add(edgetest.NewRule("ip", "198.51.100.101", "palisade jail=nginx host=web2")) // another server's
	r.start(t)
	waitFor(t, "reconciled", func() bool {
		st := r.m.Status()
		return st.Pending == 0 && st.Created == 2 && st.Deleted == 2
	})
	wantZone := []string{
		"192.0.2.44 palisade jail=nginx host=web1",
		"198.51.100.100 blocked by hand",
		"198.51.100.101 palisade jail=nginx host=web2",
		"2001:db8::7 palisade jail=nginx host=web1",
	}
	if got := r.api.Values(); !slices.Equal(got, wantZone) {
		t.Errorf("zone after restart:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantZone, "\n"))
	}
	ids = r.stored(t)
	if len(ids) != 2 || ids["nginx 192.0.2.44/32"] == "" || ids["nginx 2001:db8::7/128"] == "" || ids["nginx 2001:db8::7/128"] == gone {
		t.Errorf("stored ids after restart %v", ids)
	}
}

// A rule Cloudflare already holds for the address: palisade's own is
// adopted, a human's is left alone (and not deleted on unban).
func TestEdgeDuplicates(t *testing.T) {
	r := newEdgeRig(t)
	hid := r.api.Add(edgetest.NewRule("ip", "198.51.100.7", "blocked by hand"))
	r.ban(t, "nginx", "198.51.100.7/32")
	waitFor(t, "duplicate handled", func() bool {
		_, calls := r.api.Snapshot()
		return len(calls) == 1 && r.m.Status().Pending == 0
	})
	r.unban(t, "nginx", "198.51.100.7/32")
	time.Sleep(100 * time.Millisecond) // a wrong DELETE would follow within RetryMin
	if rules, calls := r.api.Snapshot(); len(calls) != 1 || rules[hid].ID != hid {
		t.Errorf("a human's rule was touched: calls %+v", calls)
	}
	if st := r.m.Status(); st.Created != 0 || st.Deleted != 0 {
		t.Errorf("status %+v", st)
	}
}

func TestClientChecks(t *testing.T) {
	for _, tc := range []ClientConfig{
		{BaseURL: "http://api.example.org/client/v4", Zone: zone, Token: token}, // plain http off loopback
		{BaseURL: "ftp://127.0.0.1/", Zone: zone, Token: token},
		{Zone: "not-a-zone", Token: token},
		{Zone: zone, Token: ""},
		{Zone: zone, Token: "two words"},
		{Zone: zone, Token: "line\nbreak"},
	} {
		if _, err := NewClient(tc); err == nil {
			t.Errorf("NewClient(%+v) accepted", tc)
		}
	}
	if _, err := NewClient(ClientConfig{BaseURL: "http://127.0.0.1:9/x", Zone: zone, Token: token}); err != nil {
		t.Errorf("loopback http refused: %v", err)
	}
	for p, want := range map[string]string{
		"198.51.100.4/32": "ip 198.51.100.4", "2001:db8::1/128": "ip6 2001:db8::1",
		"198.51.100.0/24": "ip_range 198.51.100.0/24", "198.51.0.0/16": "ip_range 198.51.0.0/16",
		"2001:db8:1::/48": "ip_range 2001:db8:1::/48", "2001:db8::/64": "ip_range 2001:db8::/64",
		"198.51.100.0/25": "", "2001:db8::/56": "",
	} {
		tg, v, ok := Target(netip.MustParsePrefix(p))
		if got := strings.TrimSpace(tg + " " + v); got != want || ok != (want != "") {
			t.Errorf("Target(%s) = %q %v, want %q", p, got, ok, want)
		}
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", token+"\n", 0o600)
	if got, err := ReadToken(good); err != nil || got != token {
		t.Errorf("ReadToken(good) = %q, %v", got, err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"group-readable": write("open", token, 0o640),
		"world-readable": write("world", token, 0o604),
		"empty":          write("empty", "\n", 0o600),
		"two tokens":     write("two", "a b", 0o600),
		"symlink":        link,
		"missing":        filepath.Join(dir, "none"),
		"directory":      dir,
	} {
		_, err := ReadToken(path)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), token) {
			t.Errorf("%s: the error shows the token: %v", name, err)
		}
	}
}

// TestExtendEventIgnored: a ban manager extension event (a longer ban of
// a banned address) changes nothing at the edge and never upsets the
// mirror, for a mirrored rule or one it does not know.
func TestExtendEventIgnored(t *testing.T) {
	r := newEdgeRig(t)
	r.ban(t, "nginx", "192.0.2.30/32")
	waitFor(t, "rule created", func() bool { return len(r.stored(t)) == 1 })
	if _, err := r.bans.Ban(context.Background(), "nginx", netip.MustParsePrefix("192.0.2.30/32"), 48*time.Hour, "longer"); err != nil {
		t.Fatal(err)
	}
	r.m.onEvent(ban.Event{Kind: ban.EventExtend, Entry: ban.Entry{Jail: "web", Prefix: netip.MustParsePrefix("192.0.2.31/32")}})
	if got := r.stored(t); len(got) != 1 {
		t.Fatalf("stored rules after extensions: %v", got)
	}
	r.unban(t, "nginx", "192.0.2.30/32")
	waitFor(t, "rule deleted", func() bool { return len(r.stored(t)) == 0 })
}

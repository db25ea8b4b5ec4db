package cloudflare

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/store"
)

// apiServer serves Cloudflare-shaped replies by path; /hung never answers
// until the test ends.
func apiServer(t *testing.T) *httptest.Server {
	t.Helper()
	done := make(chan struct{})
	jsonReply := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body))
		}
	}
	list := func(v4, v6 string) string {
		return `{"result":{"ipv4_cidrs":[` + v4 + `],"ipv6_cidrs":[` + v6 + `],"etag":"e1"},"success":true,"errors":[],"messages":[]}`
	}
	mux := http.NewServeMux()
	mux.Handle("/good", jsonReply(goodAPI))
	mux.Handle("/moved", jsonReply(list(`"192.0.2.0/25","203.0.113.0/24"`, `"2001:db8:1::/48","2001:db8:3::/48"`)))
	mux.Handle("/challenge", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		_, _ = w.Write([]byte("<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>"))
	}))
	mux.Handle("/challenge-as-json", jsonReply("<!DOCTYPE html><html><title>Attention Required!</title></html>"))
	mux.Handle("/false", jsonReply(`{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[],"result":null}`))
	mux.Handle("/default-route", jsonReply(list(`"0.0.0.0/0"`, `"2001:db8:1::/48"`)))
	mux.Handle("/glued", jsonReply(list(`"198.51.100.0/24","131.0.72.0/222400:cb00::/32"`, `"2001:db8:1::/48"`)))
	mux.Handle("/unmasked", jsonReply(list(`"198.51.100.9/24"`, `"2001:db8:1::/48"`)))
	mux.Handle("/empty-v6", jsonReply(list(`"192.0.2.0/25","198.51.100.0/24"`, ``)))
	mux.Handle("/shrink", jsonReply(list(`"192.0.2.0/25"`, `"2001:db8:9::/48"`)))
	mux.Handle("/status500", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(goodAPI))
	}))
	mux.Handle("/hung", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { close(done); srv.Close() })
	return srv
}

type rig struct {
	m     *Manager
	lock  *firewall.FakeLock
	st    *store.Store
	now   time.Time
	mu    sync.Mutex
	seen  [][]netip.Prefix
	dbDir string
}

func (r *rig) clock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

func (r *rig) advance(d time.Duration) {
	r.mu.Lock()
	r.now = r.now.Add(d)
	r.mu.Unlock()
}

func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	r := &rig{lock: &firewall.FakeLock{}, now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), dbDir: t.TempDir()}
	r.open(t, cfg)
	return r
}

// open (re)opens the store and builds a manager, as a restart does.
func (r *rig) open(t *testing.T, cfg Config) {
	t.Helper()
	if r.st != nil {
		r.st.Close()
	}
	st, err := store.Open(filepath.Join(r.dbDir, "p.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	r.st = st
	t.Cleanup(func() { st.Close() })
	m, err := New(cfg, Deps{
		Lock: r.lock, Store: st, Fetcher: &Fetcher{Timeout: 300 * time.Millisecond}, Now: r.clock,
		Rand: func() float64 { return 0.5 },
		OnChange: func(p []netip.Prefix) {
			r.mu.Lock()
			r.seen = append(r.seen, p)
			r.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
}

func (r *rig) last() []netip.Prefix {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seen) == 0 {
		return nil
	}
	return r.seen[len(r.seen)-1]
}

func (r *rig) kernel(t *testing.T) firewall.LockState {
	t.Helper()
	st, err := r.lock.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func pfxs(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

var goodRanges = pfxs("192.0.2.0/25", "198.51.100.0/24", "2001:db8:1::/48", "2001:db8:2::/48")

// Acceptance 1: a good list is applied; every bad answer is refused and
// leaves the lock, the stored list and the protected ranges unchanged.
func TestSyncAppliesGoodAndRefusesBad(t *testing.T) {
	srv := apiServer(t)
	r := newRig(t, Config{URL: srv.URL + "/good", Allow: pfxs("203.0.113.7/32")})
	ctx := context.Background()
	res, err := r.m.Sync(ctx, SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Applied || res.IPv4 != 2 || res.IPv6 != 2 || res.ETag != "3f0a9" || res.Ports != "80,443" || len(res.Diff.Added) != 4 {
		t.Fatalf("sync result %+v", res)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "plain http") {
		t.Errorf("warnings %v, want the plain-http one", res.Warnings)
	}
	want := firewall.LockSpec{Ranges: goodRanges, Allow: pfxs("203.0.113.7/32"), Ports: DefaultPorts, Block: firewall.Drop}
	if k := r.kernel(t); !k.Same(want) {
		t.Fatalf("kernel %+v, want %+v", k, want)
	}
	if !slices.Equal(firewall.MergePrefixes(r.last()), firewall.MergePrefixes(goodRanges)) {
		t.Errorf("protected ranges %v", r.last())
	}
	applies := r.lock.Applies()

	for _, tc := range []struct {
		path, want string
		refusedErr bool
	}{
		{"/challenge", "content type", true},
		{"/challenge-as-json", "not a JSON object", true},
		{"/false", "success:false", true},
		{"/default-route", "default route", true},
		{"/glued", "glued", true},
		{"/unmasked", "host bits", true},
		{"/empty-v6", "IPv6 list is empty", true},
		{"/shrink", "more than half", true},
		{"/status500", "HTTP 500", true},
		{"/missing", "HTTP 404", true},
		{"/hung", "no complete answer", false},
	} {
		t0 := time.Now()
		_, err := r.m.Sync(ctx, SyncOptions{Source: srv.URL + tc.path})
		if err == nil {
			t.Errorf("%s: applied", tc.path)
			continue
		}
		if errors.Is(err, ErrRefused) != tc.refusedErr || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want it to mention %q (refused: %v)", tc.path, err, tc.want, tc.refusedErr)
		}
		if el := time.Since(t0); el > 5*time.Second {
			t.Errorf("%s: took %v (the fetch timeout is 300ms)", tc.path, el)
		}
		if k := r.kernel(t); !k.Same(want) || r.lock.Applies() != applies {
			t.Errorf("%s: the lock changed: %+v", tc.path, k)
		}
		if !slices.Equal(firewall.MergePrefixes(r.last()), firewall.MergePrefixes(goodRanges)) {
			t.Errorf("%s: protected ranges changed to %v", tc.path, r.last())
		}
		st := r.m.Status(ctx)
		if st.State != StateOn || st.LastError == "" || len(st.IPv4) != 2 {
			t.Errorf("%s: status %+v", tc.path, st)
		}
	}
	if st := r.m.Status(ctx); st.Failures != 11 || !st.Kernel.InSync {
		t.Errorf("after the bad syncs: %d failures, kernel in sync %v", st.Failures, st.Kernel.InSync)
	}
	// The stored list is still the good one after a restart.
	r.open(t, Config{URL: srv.URL + "/good"})
	if l := r.m.List(); !slices.Equal(l.All(), goodRanges) || l.ETag != "3f0a9" {
		t.Errorf("stored list after the bad syncs: %+v", l)
	}
	// --force takes the shrunk list; a dry run changes nothing.
	res, err = r.m.Sync(ctx, SyncOptions{Source: srv.URL + "/shrink", DryRun: true, Force: true})
	if err != nil || res.Applied || len(res.Diff.Removed) != 3 {
		t.Errorf("dry run: %+v, %v", res, err)
	}
	if k := r.kernel(t); !k.Same(want) {
		t.Error("a dry run changed the lock")
	}
	if _, err := r.m.Sync(ctx, SyncOptions{Source: srv.URL + "/shrink", Force: true}); err != nil {
		t.Fatal(err)
	}
	if k := r.kernel(t); len(k.Ranges) != 2 {
		t.Errorf("forced shrink: kernel holds %v", k.Ranges)
	}
	if st := r.m.Status(ctx); st.Failures != 0 || st.LastError != "" {
		t.Errorf("a good sync did not clear the failure: %+v", st)
	}
}

func TestSyncFromFileAndPorts(t *testing.T) {
	r := newRig(t, Config{Block: firewall.Reject})
	f := filepath.Join(t.TempDir(), "ips.txt")
	if err := os.WriteFile(f, []byte("192.0.2.0/25\n2001:db8:1::/48"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := r.m.Sync(ctx, SyncOptions{Source: f, Ports: []firewall.PortRange{{From: 8443, To: 8443}, {From: 443, To: 443}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ports != "443,8443" || len(res.Warnings) != 0 {
		t.Errorf("result %+v", res)
	}
	k := r.kernel(t)
	if k.Block != firewall.Reject || firewall.FormatPorts(k.Ports) != "443,8443" {
		t.Errorf("kernel %+v", k)
	}
	st := r.m.Status(ctx)
	if st.Source != f || st.Ports != "443,8443" || st.ConfigPorts != "80,443" || st.Origin != OriginCommand {
		t.Errorf("status %+v", st)
	}
	for _, bad := range []string{"relative/ips.txt", "ftp://example.org/ips", filepath.Join(t.TempDir(), "missing")} {
		if _, err := r.m.Sync(ctx, SyncOptions{Source: bad}); err == nil {
			t.Errorf("source %q accepted", bad)
		}
	}
}

// Start: the snapshot is the floor without a fetched list; the stored list
// is used after a restart; "off" is remembered; enabled = false removes a
// lock the configuration turned on but keeps one a command turned on.
func TestStartFloorRestartOffAndDisable(t *testing.T) {
	srv := apiServer(t)
	ctx := context.Background()
	cfg := Config{Enabled: true, URL: srv.URL + "/hung"}
	r := newRig(t, cfg)
	if err := r.m.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	snap, _ := Snapshot()
	if k := r.kernel(t); !k.Installed || len(k.Ranges) != snap.Len() {
		t.Fatalf("floor: kernel %+v", k)
	}
	st := r.m.Status(ctx)
	if !st.Snapshot.InUse || st.Origin != OriginConfig || st.NextSync == nil || !st.NextSync.Equal(r.clock()) {
		t.Errorf("floor status %+v", st)
	}
	if _, ok := r.m.Covering(netip.MustParseAddr("104.16.0.1")); !ok {
		t.Error("the snapshot's ranges are not protected")
	}
	// The first network sync fails (hung): the floor stays, a retry is
	// scheduled with backoff.
	if _, err := r.m.Sync(ctx, SyncOptions{scheduled: true}); err == nil {
		t.Fatal("hung server: sync succeeded")
	}
	st = r.m.Status(ctx)
	if !st.Snapshot.InUse || st.NextSync == nil || st.NextSync.Sub(r.clock()) != time.Minute {
		t.Errorf("after a failed first sync: %+v (next %v)", st, st.NextSync)
	}
	cfg.URL = srv.URL + "/good"
	r.open(t, cfg) // restart
	if err := r.m.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := r.m.Sync(ctx, SyncOptions{scheduled: true}); err != nil {
		t.Fatal(err)
	}
	if st := r.m.Status(ctx); st.Origin != OriginConfig || st.NextSync == nil || st.NextSync.Sub(r.clock()) != DefaultInterval {
		t.Errorf("after a good scheduled sync: origin %s next %v", st.Origin, st.NextSync)
	}
	r.open(t, cfg) // restart with the stored list: no network needed
	r.lock.Flush()
	if err := r.m.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if k := r.kernel(t); !slices.Equal(firewall.MergePrefixes(k.Ranges), firewall.MergePrefixes(goodRanges)) {
		t.Errorf("restart: kernel %v, want the stored list", k.Ranges)
	}
	if err := r.m.Off(ctx); err != nil {
		t.Fatal(err)
	}
	if r.kernel(t).Installed || r.m.Ranges() != nil || r.last() != nil {
		t.Error("off left the lock or its protection in place")
	}
	r.open(t, cfg)
	if err := r.m.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if r.kernel(t).Installed {
		t.Error("a restart turned an \"off\" lock on again")
	}
	if st := r.m.Status(ctx); st.State != StateOff || len(st.Warnings) == 0 {
		t.Errorf("off status %+v", st)
	}
	// A command turns it on again; enabled = false keeps a command's lock.
	if _, err := r.m.Sync(ctx, SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg.Enabled = false
	if err := r.m.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if !r.kernel(t).Installed {
		t.Error("enabled = false removed a lock turned on by a command")
	}
	// A lock the configuration turned on goes when it is disabled.
	if err := r.m.Off(ctx); err != nil {
		t.Fatal(err)
	}
	cfg.Enabled = true
	_, _ = r.m.Sync(ctx, SyncOptions{}) // on again, by command
	r2 := newRig(t, cfg)
	if err := r2.m.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Enabled = false
	if err := r2.m.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if r2.kernel(t).Installed || r2.m.Ranges() != nil {
		t.Error("enabled = false kept a lock the configuration turned on")
	}
}

func TestEnsureRepairsAndRunResyncs(t *testing.T) {
	srv := apiServer(t)
	cfg := Config{Enabled: true, URL: srv.URL + "/good", Interval: time.Hour}
	r := newRig(t, cfg)
	ctx := context.Background()
	if err := r.m.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := r.m.Sync(ctx, SyncOptions{scheduled: true}); err != nil {
		t.Fatal(err)
	}
	if r.m.Ensure(ctx) {
		t.Error("Ensure repaired an intact lock")
	}
	r.lock.Flush()
	if st := r.m.Status(ctx); st.Kernel.InSync || len(st.Warnings) == 0 {
		t.Errorf("flushed lock reads as in sync: %+v", st)
	}
	if !r.m.Ensure(ctx) || !r.kernel(t).Installed {
		t.Fatal("Ensure did not re-install a flushed lock")
	}
	if st := r.m.Status(ctx); !st.Kernel.InSync || st.Kernel.Repairs != 1 {
		t.Errorf("after repair: %+v", st.Kernel)
	}
	// Run performs the due sync: move the clock past the interval.
	before := r.lock.Applies()
	r.advance(2 * time.Hour)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { r.m.Run(runCtx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for r.lock.Applies() == before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if r.lock.Applies() == before {
		t.Fatal("Run did not sync when the interval had passed")
	}
	if st := r.m.Status(ctx); st.LastSuccess == nil || !st.LastSuccess.Equal(r.clock()) {
		t.Errorf("last success %v, want %v", st.LastSuccess, r.clock())
	}
}

func TestScheduleJitterAndBackoff(t *testing.T) {
	cfg := Config{Enabled: true, Interval: 10 * time.Hour}
	r := newRig(t, cfg)
	l, _ := Snapshot()
	l.Source = "x"
	now := r.clock()
	for _, tc := range []struct {
		rnd      float64
		failures int
		want     time.Duration
	}{
		{0.5, 0, 10 * time.Hour},
		{0, 0, 9 * time.Hour},
		{1, 0, 11 * time.Hour},
		{0.5, 1, time.Minute},
		{0.5, 3, 4 * time.Minute},
		{0.5, 20, time.Hour}, // capped
		{1, 2, 2*time.Minute + 24*time.Second},
	} {
		r.m.mu.Lock()
		r.m.rnd = func() float64 { return tc.rnd }
		r.m.st = saved{Mode: modeOn, List: &l, LastSuccess: now, LastAttempt: now, Failures: tc.failures}
		r.m.schedule()
		got := r.m.due.Sub(now)
		r.m.mu.Unlock()
		if got != tc.want {
			t.Errorf("rand %.1f, %d failures: next sync in %v, want %v", tc.rnd, tc.failures, got, tc.want)
		}
	}
}

// The first sync from the configured URL, when it fails, locks with the
// embedded snapshot (the floor) and says so; a failing --source does not.
func TestFirstSyncFailureFallsBackToSnapshot(t *testing.T) {
	srv := apiServer(t)
	ctx := context.Background()
	r := newRig(t, Config{URL: srv.URL + "/challenge"})
	if _, err := r.m.Sync(ctx, SyncOptions{Source: srv.URL + "/false"}); err == nil || r.kernel(t).Installed {
		t.Fatalf("a failing --source applied something (err %v)", err)
	}
	res, err := r.m.Sync(ctx, SyncOptions{})
	if err == nil || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "embedded snapshot") {
		t.Fatalf("first sync error %v, want the refusal and the snapshot fallback", err)
	}
	snap, _ := Snapshot()
	if !res.Applied || res.Source != SnapshotSource || !r.kernel(t).Same(firewall.LockSpec{Ranges: snap.All(), Ports: DefaultPorts, Block: firewall.Drop}) {
		t.Fatalf("result %+v, kernel %+v", res, r.kernel(t))
	}
	st := r.m.Status(ctx)
	if st.State != StateOn || !st.Snapshot.InUse || st.LastError == "" || st.Failures != 2 {
		t.Errorf("status %+v", st)
	}
	// With a list in force, a failing sync keeps it (no fallback).
	if _, err := r.m.Sync(ctx, SyncOptions{}); err == nil || strings.Contains(err.Error(), "embedded snapshot") {
		t.Errorf("second failing sync: %v", err)
	}
}

// Status answers while a sync waits for a slow server.
func TestStatusDuringSlowSync(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(goodAPI))
	}))
	defer srv.Close()
	r := newRig(t, Config{URL: srv.URL})
	r.m.deps.Fetcher.Timeout = 10 * time.Second
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { _, err := r.m.Sync(ctx, SyncOptions{}); done <- err }()
	got := make(chan Status, 1)
	go func() { got <- r.m.Status(ctx) }()
	select {
	case st := <-got:
		if st.State != StateNever {
			t.Errorf("status during the first sync: %s", st.State)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("status blocked behind a slow sync")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

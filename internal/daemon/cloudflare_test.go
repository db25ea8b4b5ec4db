package daemon

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	defaults "github.com/palisade-project/palisade/config"
	"github.com/palisade-project/palisade/filters"
	"github.com/palisade-project/palisade/internal/cloudflare"
	"github.com/palisade-project/palisade/internal/cloudflare/edge/edgetest"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/store"
)

const (
	cfZone  = "023e105f4ecef8ad9ca31a8372d0c353"
	cfToken = "test-token-0123456789"
	cfList  = `{"success":true,"errors":[],"result":{"etag":"t1","ipv4_cidrs":["198.51.100.0/24","192.0.2.0/25"],"ipv6_cidrs":["2001:db8:cf::/48"]}}`
)

func writeFile(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func appendFailures(t *testing.T, path, ip string, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := 0; i < n; i++ {
		fmt.Fprintf(f, "%s host sshd[%d]: Failed password for root from %s port %d ssh2\n", time.Now().Format("Jan _2 15:04:05"), 300+i, ip, 4000+i)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within 15s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The [cloudflare] section drives a running daemon: the lock goes on with
// the served list, Cloudflare's ranges are never banned (an implicit ignore
// that explain names, a refused manual ban, an existing ban lifted), a web
// jail's ban becomes an edge rule and its unban deletes it, status reports
// it all, and off removes the lock and the exemption.
func TestDaemonCloudflareLockAndEdgeBans(t *testing.T) {
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	weblog, authlog := filepath.Join(dir, "web.log"), filepath.Join(dir, "auth.log")
	writeFile(t, weblog, "", 0o644)
	writeFile(t, authlog, "", 0o644)
	tokenFile := filepath.Join(dir, "cf.token")
	writeFile(t, tokenFile, cfToken+"\n", 0o600)
	api := edgetest.New(t, cfZone, cfToken)
	lists := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(cfList))
	}))
	defer lists.Close()
	writeFile(t, filepath.Join(etc, "palisade.local"), fmt.Sprintf(`[cloudflare]
enabled = true
url = %s/client/v4/ips
allow = 203.0.113.200
edge_bans = true
token_file = %s
zone = %s
api_url = %s
`, lists.URL, tokenFile, cfZone, api.URL), 0o644)
	writeFile(t, filepath.Join(etc, "jail.local"), fmt.Sprintf(`[web]
enabled = true
filter = sshd
port = http,https
logpath = %s
maxretry = 2

[sshd]
enabled = true
logpath = %s
maxretry = 2
`, weblog, authlog), 0o644)

	// A ban on a Cloudflare address from before the lock.
	db := filepath.Join(dir, "p.db")
	st, err := store.Open(db, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddBans([]store.Ban{{Jail: "web", Prefix: netip.MustParsePrefix("198.51.100.77/32"), Start: time.Now(), Expires: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	lock := &firewall.FakeLock{}
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer devnull.Close()
	opts := Options{
		ConfigDir: etc, Socket: filepath.Join(dir, "run", "p.sock"), DB: db,
		Builtin: defaults.FS(), Filters: filters.FS(),
		Backend: firewall.NewFake(), Stderr: devnull, Notify: func(string) {}, CloudflareLock: lock,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	c := control.NewClient(opts.Socket)
	status := func() cloudflare.Status {
		var s cloudflare.Status
		if err := c.Cloudflare(ctx, control.CloudflareArgs{Op: control.CloudflareStatus}, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}

	served := firewall.LockSpec{Ranges: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("192.0.2.0/25"),
		netip.MustParsePrefix("2001:db8:cf::/48")}, Allow: []netip.Prefix{netip.MustParsePrefix("203.0.113.200/32")},
		Ports: cloudflare.DefaultPorts, Block: firewall.Drop}
	eventually(t, "the served list is locked", func() bool {
		k, _ := lock.State(ctx)
		return k.Same(served)
	})
	eventually(t, "the ban on a Cloudflare address is lifted", func() bool {
		r, err := c.Banned(ctx, "")
		return err == nil && len(r.Bans) == 0
	})

	// Failures from a Cloudflare address are ignored in every jail; those
	// of an outside address ban it (and, in the web jail, at the edge).
	for _, f := range []string{weblog, authlog} {
		appendFailures(t, f, "198.51.100.9", 3)
		appendFailures(t, f, "203.0.113.50", 2)
	}
	eventually(t, "203.0.113.50 banned in both jails", func() bool {
		r, err := c.Banned(ctx, "")
		return err == nil && len(r.Bans) == 2
	})
	r, _ := c.Banned(ctx, "")
	for _, b := range r.Bans {
		if b.IP != "203.0.113.50" {
			t.Errorf("banned %+v", b)
		}
	}
	ex, err := c.Explain(ctx, "198.51.100.9")
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range ex.Jails {
		if !j.Ignored || !strings.HasPrefix(j.IgnoreRule, "cloudflare 198.51.100.0/24") {
			t.Errorf("explain in %s: ignored %v, rule %q", j.Jail, j.Ignored, j.IgnoreRule)
		}
	}
	if _, err := c.Ban(ctx, "sshd", "198.51.100.10", ""); err == nil || !strings.Contains(err.Error(), "cloudflare") {
		t.Errorf("manual ban of a Cloudflare address: %v", err)
	}
	eventually(t, "one edge rule, for the web jail only", func() bool {
		rules, _ := api.Snapshot()
		return len(rules) == 1
	})
	rules, calls := api.Snapshot()
	for _, rule := range rules {
		host, _ := os.Hostname()
		if rule.Configuration.Value != "203.0.113.50" || rule.Notes != "palisade jail=web host="+sanitized(host) {
			t.Errorf("edge rule %+v", rule)
		}
	}
	posts := 0
	for _, call := range calls {
		if call.Method == http.MethodPost && call.Body.Configuration.Value == "203.0.113.50" {
			posts++
		}
	}
	if posts != 1 {
		t.Errorf("API calls %+v, want one POST for 203.0.113.50 (the web jail's ban, not sshd's)", calls)
	}

	s := status()
	if s.State != cloudflare.StateOn || !s.Daemon || !s.Enabled || s.ETag != "t1" || len(s.IPv4) != 2 || s.Edge == nil ||
		!s.Edge.Running || s.Edge.Rules != 1 || !s.Kernel.InSync || s.Source != lists.URL+"/client/v4/ips" {
		t.Errorf("status %+v (edge %+v)", s, s.Edge)
	}

	if _, err := c.Unban(ctx, "web", "203.0.113.50"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the edge rule is deleted", func() bool {
		rules, _ := api.Snapshot()
		return len(rules) == 0
	})

	var off control.CloudflareOffReply
	if err := c.Cloudflare(ctx, control.CloudflareArgs{Op: control.CloudflareOff}, &off); err != nil || !off.Removed {
		t.Fatalf("off: %+v, %v", off, err)
	}
	if k, _ := lock.State(ctx); k.Installed {
		t.Error("off left the lock installed")
	}
	ex, _ = c.Explain(ctx, "198.51.100.9")
	for _, j := range ex.Jails {
		if j.Ignored {
			t.Errorf("after off, %s still ignores a Cloudflare address: %s", j.Jail, j.IgnoreRule)
		}
	}
	if s := status(); s.State != cloudflare.StateOff {
		t.Errorf("status after off: %s", s.State)
	}
	// A bad request is refused as bad input.
	err = c.Cloudflare(ctx, control.CloudflareArgs{Op: control.CloudflareSync, Ports: "all"}, nil)
	if err == nil || !strings.Contains(err.Error(), control.ErrBadRequest.Error()) {
		t.Errorf("sync --ports all: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func sanitized(h string) string {
	var b strings.Builder
	for _, c := range h {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' {
			b.WriteRune(c)
		}
	}
	return b.String()
}

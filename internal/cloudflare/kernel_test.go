package cloudflare

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/nft"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
	"github.com/palisade-project/palisade/internal/store"
)

// Documentation prefixes stand in for Cloudflare. List A and list B share
// 192.0.2.0/25 and 2001:db8:1::/48; A also has 198.51.100.0/24 and
// 2001:db8:2::/48, B has 203.0.113.0/24 and 2001:db8:3::/48. The client
// namespace holds an address in each, plus 192.0.2.200 and 2001:db8:f::10
// that no list holds.
const (
	listA = `{"success":true,"errors":[],"result":{"etag":"a","ipv4_cidrs":["192.0.2.0/25","198.51.100.0/24"],"ipv6_cidrs":["2001:db8:1::/48","2001:db8:2::/48"]}}`
	listB = `{"success":true,"errors":[],"result":{"etag":"b","ipv4_cidrs":["192.0.2.0/25","203.0.113.0/24"],"ipv6_cidrs":["2001:db8:1::/48","2001:db8:3::/48"]}}`
)

type client struct {
	src, dst string // addresses, without port
}

var (
	both4    = client{"192.0.2.10", "192.0.2.1"}
	both6    = client{"2001:db8:1::10", "2001:db8:1::1"}
	onlyA4   = client{"198.51.100.10", "198.51.100.1"}
	onlyA6   = client{"2001:db8:2::10", "2001:db8:2::1"}
	onlyB4   = client{"203.0.113.10", "203.0.113.1"}
	onlyB6   = client{"2001:db8:3::10", "2001:db8:3::1"}
	outside4 = client{"192.0.2.200", "192.0.2.1"}
	outside6 = client{"2001:db8:f::10", "2001:db8:f::1"}
)

func (c client) dial(t *testing.T, ns *nstest.NS, port string, timeout time.Duration) nstest.Outcome {
	t.Helper()
	o, err := nstest.DialFrom(ns, netip.MustParseAddr(c.src), net.JoinHostPort(c.dst, port), timeout)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", net.JoinHostPort(c.dst, port), c.src, err)
	}
	return o
}

func expect(t *testing.T, ns *nstest.NS, what string, want nstest.Outcome, ports []string, clients ...client) {
	t.Helper()
	for _, c := range clients {
		for _, port := range ports {
			if got := c.dial(t, ns, port, 2*time.Second); got != want {
				t.Errorf("%s: %s → %s port %s: %s, want %s", what, c.src, c.dst, port, got, want)
			}
		}
	}
}

// Acceptance 2: with documentation prefixes as Cloudflare, a client inside
// reaches 80 and 443, one outside is refused on 80 and 443 and still
// reaches 22; a sync that swaps the ranges moves access without a gap for
// the ranges in both lists (probed every 10 ms during the updates).
func TestKernelLockAndGaplessSwap(t *testing.T) {
	server, cl := nstest.New(t), nstest.New(t)
	var srvAddrs, cliAddrs []netip.Prefix
	for _, c := range []client{both4, onlyA4, onlyB4, both6, onlyA6, onlyB6, outside6} {
		bits := 24
		if netip.MustParseAddr(c.src).Is6() {
			bits = 48
		}
		srvAddrs = append(srvAddrs, netip.PrefixFrom(netip.MustParseAddr(c.dst), bits))
		cliAddrs = append(cliAddrs, netip.PrefixFrom(netip.MustParseAddr(c.src), bits))
	}
	cliAddrs = append(cliAddrs, netip.MustParsePrefix(outside4.src+"/24"))
	nstest.Link(t, server, cl, srvAddrs, cliAddrs)
	for _, port := range []string{"22", "80", "443"} {
		nstest.Listen(t, server, ":"+port)
	}

	var serving atomic.Value
	serving.Store(listA)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(serving.Load().(string)))
	}))
	defer api.Close()

	lock, err := nft.NewCloudflareLock(nft.Options{NetNSFd: server.Fd()})
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	st, err := store.Open(filepath.Join(t.TempDir(), "p.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := Config{URL: api.URL, Block: firewall.Reject}
	m, err := New(cfg, Deps{Lock: lock, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	web := []string{"80", "443"}
	expect(t, cl, "no lock", nstest.Connected, web, outside4, outside6)
	if _, err := m.Sync(ctx, SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(t, cl, "list A", nstest.Connected, web, both4, both6, onlyA4, onlyA6)
	expect(t, cl, "list A", nstest.Refused, web, outside4, outside6, onlyB4, onlyB6)
	expect(t, cl, "list A, ssh", nstest.Connected, []string{"22"}, outside4, outside6, onlyB4)
	if s := m.Status(ctx); !s.Kernel.InSync || s.Kernel.Refused == 0 {
		t.Errorf("status after refusals: %+v", s.Kernel)
	}

	// Swap A ⇄ B ten times while probing the shared ranges every 10 ms.
	var (
		wg      sync.WaitGroup
		stop    = make(chan struct{})
		mu      sync.Mutex
		probes  int
		failed  []string
		clients = []client{both4, both6}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			c := clients[i%len(clients)]
			port := web[(i/len(clients))%len(web)]
			o, err := nstest.DialFrom(cl, netip.MustParseAddr(c.src), net.JoinHostPort(c.dst, port), time.Second)
			mu.Lock()
			probes++
			if err != nil || o != nstest.Connected {
				failed = append(failed, c.src+" port "+port+": "+string(o))
			}
			mu.Unlock()
		}
	}()
	time.Sleep(30 * time.Millisecond)
	t0 := time.Now()
	for i := 0; i < 10; i++ {
		next := listA
		if i%2 == 0 {
			next = listB
		}
		serving.Store(next)
		if _, err := m.Sync(ctx, SyncOptions{}); err != nil {
			t.Fatalf("swap %d: %v", i, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(t0)
	time.Sleep(30 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(failed) > 0 {
		t.Errorf("%d of %d probes from ranges in both lists were not served during the swaps: %v", len(failed), probes, failed)
	}
	if min := int(took / (20 * time.Millisecond)); probes < min {
		t.Errorf("only %d probes during %v of swaps", probes, took)
	}
	t.Logf("%d probes every 10 ms during 10 swaps (%v), %d not served", probes, took.Round(time.Millisecond), len(failed))
	// The last swap left list A in force.
	expect(t, cl, "after the swaps", nstest.Connected, web, onlyA4, onlyA6, both4)
	expect(t, cl, "after the swaps", nstest.Refused, web, onlyB4, onlyB6)

	// Swapping to B moves access from A's ranges to B's.
	serving.Store(listB)
	if _, err := m.Sync(ctx, SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(t, cl, "list B", nstest.Connected, web, onlyB4, onlyB6, both6)
	expect(t, cl, "list B", nstest.Refused, web, onlyA4, onlyA6, outside4)

	// blocktype drop: the outside client's SYN goes unanswered.
	cfg.Block = firewall.Drop
	if err := m.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if got := outside4.dial(t, cl, "443", 300*time.Millisecond); got != nstest.TimedOut {
		t.Errorf("drop: outside → 443: %s, want timedout", got)
	}
	expect(t, cl, "drop", nstest.Connected, web, onlyB4)
	// Off opens the ports again.
	if err := m.Off(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, cl, "off", nstest.Connected, web, outside4, outside6, onlyA4)
}

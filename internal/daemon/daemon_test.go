package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	defaults "github.com/palisade-project/palisade/config"
	"github.com/palisade-project/palisade/filters"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/store"
)

// notes records systemd notifications and what the firewall held at READY.
type notes struct {
	mu      sync.Mutex
	states  []string
	atReady int
	fw      *firewall.Fake
}

func (n *notes) notify(s string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.states = append(n.states, s)
	if s == "READY=1" && n.atReady < 0 {
		bans, _ := n.fw.List(context.Background())
		n.atReady = len(bans)
	}
}

func (n *notes) list() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.states...)
}

func TestLifecycleNotifiesAndRestoresBeforeReady(t *testing.T) {
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	logf := filepath.Join(dir, "auth.log")
	if err := os.WriteFile(logf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "jail.local"), []byte("[sshd]\nenabled = true\nlogpath = "+logf+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "p.db")
	st, err := store.Open(db, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var bans []store.Ban
	for i := 1; i <= 50; i++ {
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		bans = append(bans, store.Ban{Jail: "sshd", Prefix: netip.PrefixFrom(a, 32), Start: now, Expires: now.Add(time.Hour)})
	}
	// One expired ban is dropped, not restored.
	bans = append(bans, store.Ban{Jail: "sshd", Prefix: netip.MustParsePrefix("203.0.113.9/32"), Start: now.Add(-2 * time.Hour), Expires: now.Add(-time.Hour)})
	if err := st.AddBans(bans); err != nil {
		t.Fatal(err)
	}
	st.Close()

	fw := firewall.NewFake()
	n := &notes{atReady: -1, fw: fw}
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer devnull.Close()
	opts := Options{
		ConfigDir: etc, Socket: filepath.Join(dir, "run", "p.sock"), DB: db,
		Builtin: defaults.FS(), Filters: filters.FS(),
		Backend: fw, Stderr: devnull, Notify: n.notify, AllowUID: testerUID(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, opts) }()
	c := control.NewClient(opts.Socket)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.Ping(ctx); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("daemon did not come up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	deadline = time.Now().Add(10 * time.Second)
	for len(n.list()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no READY")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n.atReady != 50 {
		t.Fatalf("firewall held %d bans at READY, want the 50 unexpired ones", n.atReady)
	}
	if _, err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	// A second daemon on the same socket refuses to start.
	if _, err := New(context.Background(), Options{ConfigDir: etc, Socket: opts.Socket, DB: filepath.Join(dir, "other.db"),
		Builtin: opts.Builtin, Filters: opts.Filters, Backend: firewall.NewFake(), Stderr: devnull, Notify: func(string) {}, AllowUID: testerUID()}); err == nil {
		t.Fatal("a second daemon took over a live socket")
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("first daemon lost its socket: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not stop")
	}
	want := []string{"READY=1", "RELOADING=1", "READY=1", "STOPPING=1"}
	got := n.list()
	if len(got) != len(want) {
		t.Fatalf("notifications %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("notifications %v, want %v", got, want)
		}
	}
	// Stopping keeps the bans in the firewall (remove-on-stop is off).
	if l, _ := fw.List(context.Background()); len(l) != 50 {
		t.Fatalf("firewall holds %d bans after stop, want 50", len(l))
	}
}

// TestConcurrentLinesReloadStatus runs lines, reloads and control
// requests at once (meant for -race).
func TestConcurrentLinesReloadStatus(t *testing.T) {
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	logf := filepath.Join(dir, "auth.log")
	if err := os.WriteFile(logf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "jail.local"), []byte("[sshd]\nenabled = true\nlogpath = "+logf+"\nmaxretry = 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer devnull.Close()
	opts := Options{
		ConfigDir: etc, Socket: filepath.Join(dir, "run", "p.sock"), DB: filepath.Join(dir, "p.db"),
		Builtin: defaults.FS(), Filters: filters.FS(),
		Backend: firewall.NewFake(), Stderr: devnull, Notify: func(string) {}, AllowUID: testerUID(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	c := control.NewClient(opts.Socket)

	const n = 60
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		f, err := os.OpenFile(logf, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		for i := 0; i < n; i++ {
			fmt.Fprintf(f, "%s host sshd[%d]: Failed password for root from 198.51.100.%d port %d ssh2\n",
				time.Now().Format("Jan _2 15:04:05"), 100+i, 1+i%20, 2000+i)
			time.Sleep(time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 10; i++ {
			if _, err := c.Reload(ctx); err != nil {
				t.Error(err)
			}
			if _, err := c.Status(ctx, ""); err != nil {
				t.Error(err)
			}
			if _, err := c.Explain(ctx, "198.51.100.1"); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	// 20 addresses fail 3 times each: all are banned, the counters kept
	// across the reloads.
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := c.Banned(ctx, "sshd")
		if err == nil && len(r.Bans) == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("banned = %+v, %v; want 20 bans", r, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

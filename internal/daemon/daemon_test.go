package daemon

import (
	"context"
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
		Builtin: defaults.FS(), LoadFilter: StandardLoadFilter(filters.FS()), NewFilter: StandardNewFilter,
		Backend: fw, Stderr: devnull, Notify: n.notify,
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
		Builtin: opts.Builtin, LoadFilter: opts.LoadFilter, NewFilter: opts.NewFilter, Backend: firewall.NewFake(), Stderr: devnull, Notify: func(string) {}}); err == nil {
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

package pipeline

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/ban"
	"github.com/palisade-project/palisade/internal/failjournal"
	"github.com/palisade-project/palisade/internal/jail"
	"github.com/palisade-project/palisade/internal/source"
	"github.com/palisade-project/palisade/internal/testutil/poll"
)

// slowBans holds the first BanMany until release is closed and records
// the size of every batch.
type slowBans struct {
	release chan struct{}
	held    map[netip.Prefix]bool // Holds answers true for these
	mu      sync.Mutex
	batches []int
	n       int
}

func (b *slowBans) Holds(_ string, p netip.Prefix, _ time.Duration) bool { return b.held[p] }

func (b *slowBans) BanMany(_ context.Context, reqs []ban.Request) []ban.Result {
	b.mu.Lock()
	first := len(b.batches) == 0
	b.batches = append(b.batches, len(reqs))
	b.n += len(reqs)
	b.mu.Unlock()
	if first {
		<-b.release
	}
	return make([]ban.Result, len(reqs))
}

func (b *slowBans) total() (int, []int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n, append([]int(nil), b.batches...)
}

// TestBanQueue: decisions that arrive while a batch commits go out
// together in the next one; the reader never waits for the store; Stop
// carries out every queued decision; a decision after Stop is carried
// out at once.
func TestBanQueue(t *testing.T) {
	cfg := load(t, map[string]string{"jail.local": "[sshd]\nenabled = true\nlogpath = /dev/null\n"})
	b := &slowBans{release: make(chan struct{})}
	r, err := New(buildOne(t, cfg, "sshd"), Deps{Bans: b, SelfAddrs: func() []netip.Addr { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	dec := func(i int) *jail.Decision {
		return &jail.Decision{Prefix: netip.MustParsePrefix(fmt.Sprintf("198.51.100.%d/32", i)), Duration: time.Hour}
	}
	r.enqueueBan(dec(1))
	// The first batch is held: wait until it is being committed.
	poll.Until(t, poll.Default, "the first decision at the banner", func() bool { n, _ := b.total(); return n > 0 })
	for i := 2; i <= 101; i++ { // 100 decisions: fewer than banQueueLen, so no wait
		r.enqueueBan(dec(i))
	}
	close(b.release)
	r.Stop()
	n, batches := b.total()
	if n != 101 {
		t.Fatalf("%d decisions carried out, want 101 (batches %v)", n, batches)
	}
	if len(batches) != 2 || batches[1] != 100 {
		t.Fatalf("batches %v, want [1 100]: what waited goes out in one batch", batches)
	}
	r.enqueueBan(dec(200))
	if n, _ := b.total(); n != 102 {
		t.Fatalf("a decision after Stop was not carried out (%d)", n)
	}
}

// queueWatch is a failure journal that notes how many ban decisions were
// queued when each failure was recorded.
type queueWatch struct {
	r      *Jail
	queued []int
}

func (q *queueWatch) Replayed(uint64) bool { return false }
func (q *queueWatch) Append(failjournal.Record) error {
	q.queued = append(q.queued, len(q.r.banq.ch))
	return nil
}

// TestReadDecisionsQueuedTogether: the ban decisions of one read's lines
// go to the ban queue together after the read's last line was counted,
// and all of them, in line order, before Lines returns (so a position
// saved after it is past lines fully handled).
func TestReadDecisionsQueuedTogether(t *testing.T) {
	cfg := load(t, map[string]string{"jail.local": "[sshd]\nenabled = true\nlogpath = /dev/null\nmaxretry = 1\n"})
	b := &slowBans{release: make(chan struct{})}
	jn := &queueWatch{}
	r, err := New(buildOne(t, cfg, "sshd"), Deps{Bans: b, Journal: jn, SelfAddrs: func() []netip.Addr { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	jn.r = r
	r.Lines([]source.Line{{Text: strings.TrimSuffix(sshLine("198.51.100.1", 1), "\n"), Source: "/var/log/auth.log"}})
	// Its decision is being carried out (held by slowBans).
	poll.Until(t, poll.Default, "the first decision at the banner", func() bool { n, _ := b.total(); return n > 0 })
	var read []source.Line
	for i := 2; i <= 4; i++ {
		read = append(read, source.Line{Text: strings.TrimSuffix(sshLine(fmt.Sprintf("198.51.100.%d", i), i), "\n"), Source: "/var/log/auth.log"},
			source.Line{Text: "an unrelated line", Source: "/var/log/auth.log"})
	}
	jn.queued = nil
	r.Lines(read)
	if want := []int{0, 0, 0}; fmt.Sprint(jn.queued) != fmt.Sprint(want) {
		t.Errorf("decisions queued at each failure: %v, want %v (none before the read is done)", jn.queued, want)
	}
	if got := len(r.banq.ch); got != 3 {
		t.Fatalf("%d decisions queued when Lines returned, want 3", got)
	}
	for i := 2; i <= 4; i++ {
		if d := <-r.banq.ch; d.Prefix != netip.MustParsePrefix(fmt.Sprintf("198.51.100.%d/32", i)) {
			t.Fatalf("decision %d is for %s", i, d.Prefix)
		}
	}
	close(b.release)
	r.Stop()
}

// TestHeldDecisions: a decision the address's ban already serves
// (Banner.Holds) never reaches BanMany; it is counted, and the count
// survives a reload (Carry).
func TestHeldDecisions(t *testing.T) {
	cfg := load(t, map[string]string{"jail.local": "[sshd]\nenabled = true\nlogpath = /dev/null\n"})
	held := netip.MustParsePrefix("198.51.100.1/32")
	b := &slowBans{release: make(chan struct{}), held: map[netip.Prefix]bool{held: true}}
	close(b.release)
	deps := Deps{Bans: b, SelfAddrs: func() []netip.Addr { return nil }}
	r, err := New(buildOne(t, cfg, "sshd"), deps)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"198.51.100.1/32", "198.51.100.2/32", "198.51.100.1/32"} {
		r.enqueueBan(&jail.Decision{Prefix: netip.MustParsePrefix(p), Duration: time.Hour})
	}
	r.Stop()
	if n, _ := b.total(); n != 1 {
		t.Fatalf("BanMany got %d decisions, want the one not held", n)
	}
	if c := r.Counters(); c.Held != 2 {
		t.Fatalf("held %d, want 2", c.Held)
	}
	r2, err := New(buildOne(t, cfg, "sshd"), deps)
	if err != nil {
		t.Fatal(err)
	}
	r2.Carry(r)
	if c := r2.Counters(); c.Held != 2 {
		t.Fatalf("after a reload: held %d, want 2", c.Held)
	}
}

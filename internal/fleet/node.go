package fleet

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/palisade-project/palisade/internal/ban"
)

// Store spaces of the fleet's state.
const (
	// SpaceRemote holds every origin's latest record per prefix (key
	// "ORIGIN PREFIX"), with this server's verdict on it.
	SpaceRemote = "fleet.remote"
	// SpaceQueue holds the outgoing records not yet acknowledged by the
	// stream (key: the sequence, 20 digits) and the last sequence ("seq").
	SpaceQueue = "fleet.queue"
)

// Defaults.
const (
	DefaultStream   = "palisade-bans"
	DefaultJail     = "fleet"
	DefaultQueueMax = 10000
)

// Bans is what the node needs from the ban manager (*ban.Manager).
type Bans interface {
	Subscribe(buf int) (<-chan ban.Event, func())
	List(jail string) []ban.Entry
	ListJails(keep func(jail string) bool) []ban.Entry
	BanMany(ctx context.Context, reqs []ban.Request) []ban.Result
	Unban(ctx context.Context, jail string, p netip.Prefix) (ban.Entry, error)
}

// Store keeps the fleet's state (*store.Store).
type Store interface {
	Records(space string) (map[string][]byte, error)
	PutRecords(space string, put map[string][]byte, del []string) error
}

// Config configures a Node.
type Config struct {
	// Name is this server's origin name (ValidName).
	Name string
	// Key signs this server's records.
	Key ed25519.PrivateKey
	// Trust lists the origins whose records are applied.
	Trust *Trust
	// Stream is the JetStream stream (default DefaultStream).
	Stream string
	// Jail is the local jail remote bans are enforced in (default
	// DefaultJail); it must not be a configured jail.
	Jail string
	// Share says whether a local jail's bans are published (nil: all).
	Share func(jail string) bool
	// Policy decides what is applied (Policy.Self is set to Name).
	Policy Policy
	// QueueMax bounds the outgoing queue (default DefaultQueueMax): when
	// full, the oldest record is dropped (and counted); the resync after
	// the next replay publishes again what is still banned.
	QueueMax int
	// Conn says how to reach NATS.
	Conn Conn
	// ResyncInterval is how often this server's shared bans are compared
	// with what it published (default 5m).
	ResyncInterval time.Duration
	// Workers verify signatures in parallel (default GOMAXPROCS).
	Workers int
}

// Deps are the node's collaborators (Bans and Store required).
type Deps struct {
	Bans   Bans
	Store  Store
	Now    func() time.Time
	Logger *slog.Logger
	// Dial connects to the bus (default: NATS with Config.Conn).
	Dial func(ctx context.Context, h Handlers) (Bus, error)
}

// Node is one daemon's membership in the fleet.
type Node struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	now  func() time.Time

	in      chan inItem
	pubWake chan struct{}
	ownOps  chan func(*ownState)

	// qsave orders the writes of the saved queue (SpaceQueue): a record
	// is saved before its removal is.
	qsave sync.Mutex
	mu    sync.Mutex // guards st, book (read by Status/Explain), queue
	st    nodeState
	book  *book
	q     *queue
	// saver writes the book's changes to the store.
	saver *saver
	// expect are the fleet bans this node is lifting itself (so that
	// their unban events are not taken for an admin's).
	expect map[netip.Prefix]int
	// policy and trust as last configured (Reconfigure).
	pol   Policy
	trust *Trust
	share func(string) bool
}

type nodeState struct {
	connected   bool
	server      string
	since       time.Time
	lastErr     string
	lastErrAt   time.Time
	reconnects  int
	stream      StreamInfo
	gen         uint64
	caughtUp    bool
	replays     int
	lastReplay  time.Time
	replayTook  time.Duration
	replayStart time.Time
	received    uint64
	published   uint64
	pubErrors   uint64
	lastPublish time.Time
	applyErrors uint64
	started     bool
}

// inItem is a message or an operation for the applier, in order.
type inItem struct {
	gen     uint64
	subject string
	data    []byte
	pending uint64 // messages left after this one in the replay
	op      func(now time.Time)
}

// New returns a node; Run starts it.
func New(cfg Config, deps Deps) (*Node, error) {
	if deps.Bans == nil || deps.Store == nil {
		return nil, errors.New("fleet: the ban manager and the store are required")
	}
	if !ValidName(cfg.Name) {
		return nil, fmt.Errorf("fleet: invalid name %q", cfg.Name)
	}
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("fleet: no signing key")
	}
	if cfg.Trust == nil {
		cfg.Trust = NewTrust(nil)
	}
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if cfg.Jail == "" {
		cfg.Jail = DefaultJail
	}
	if cfg.QueueMax <= 0 {
		cfg.QueueMax = DefaultQueueMax
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = 5 * time.Minute
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Share == nil {
		cfg.Share = func(string) bool { return true }
	}
	cfg.Policy.Self = cfg.Name
	n := &Node{cfg: cfg, deps: deps, log: deps.Logger, now: deps.Now,
		in: make(chan inItem, 4096), pubWake: make(chan struct{}, 1), ownOps: make(chan func(*ownState), 64),
		expect: map[netip.Prefix]int{}, pol: cfg.Policy, trust: cfg.Trust, share: cfg.Share}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.now == nil {
		n.now = time.Now
	}
	if n.deps.Dial == nil {
		c := cfg.Conn
		n.deps.Dial = func(ctx context.Context, h Handlers) (Bus, error) { return DialNATS(ctx, c, cfg.Name, h) }
	}
	n.book = newBook(cfg.Policy)
	n.q = newQueue(cfg.QueueMax)
	n.saver = newSaver(deps.Store, SpaceRemote, n.log)
	return n, nil
}

// Name is this server's origin name.
func (n *Node) Name() string { return n.cfg.Name }

// Jail is the local jail remote bans are enforced in.
func (n *Node) Jail() string { return n.cfg.Jail }

// Reconfigure replaces the trust set, the policy and the shared jails (a
// reload): records of origins no longer trusted are forgotten and their
// bans lifted; the others are judged again.
func (n *Node) Reconfigure(trust *Trust, pol Policy, share func(string) bool) {
	if trust == nil {
		trust = NewTrust(nil)
	}
	if share == nil {
		share = func(string) bool { return true }
	}
	pol.Self = n.cfg.Name
	n.mu.Lock()
	n.trust, n.pol, n.share = trust, pol, share
	n.mu.Unlock()
	n.enqueueOp(func(now time.Time) {
		n.mu.Lock()
		gone := n.book.forgetUntrusted(trust)
		n.book.reevaluate(pol, now)
		n.mu.Unlock()
		if gone > 0 {
			n.log.Info("fleet: records of origins no longer trusted forgotten; their bans are lifted", "records", gone)
		}
		n.commit(context.Background(), now)
	})
	n.ownOps <- func(s *ownState) { n.rebuildActive(s) }
}

func (n *Node) enqueueOp(op func(now time.Time)) {
	n.in <- inItem{op: op}
}

// Run runs the node until ctx is done: it loads its state, enforces the
// stored remote bans, connects (retrying forever), replays the stream,
// follows it, and publishes this server's bans.
func (n *Node) Run(ctx context.Context) error {
	events, cancel := n.deps.Bans.Subscribe(8192)
	defer cancel()
	if err := n.load(ctx); err != nil {
		n.log.Error("fleet: reading the stored state", "err", err)
	}
	n.mu.Lock()
	n.st.started = true
	n.mu.Unlock()

	var wg sync.WaitGroup
	ctx, stop := context.WithCancel(ctx)
	// The saver outlives the goroutines that commit: it writes their last
	// changes once they have returned.
	saved, workersDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(saved); n.saver.run(workersDone) }()
	defer func() {
		stop()
		wg.Wait()
		close(workersDone)
		<-saved
	}()
	wg.Add(3)
	batches := make(chan verifiedBatch, 1)
	go func() { defer wg.Done(); n.verifier(ctx, batches) }()
	go func() { defer wg.Done(); n.applier(ctx, batches) }()
	go func() { defer wg.Done(); n.own(ctx, events) }()

	reconnected := make(chan struct{}, 1)
	h := Handlers{
		Connected: func(url string) {
			n.mu.Lock()
			dup := n.st.connected && n.st.server == url
			n.st.since = n.now()
			n.st.connected, n.st.server = true, url
			n.mu.Unlock()
			if dup {
				return
			}
			n.log.Info("fleet: connected", "server", url)
			select {
			case reconnected <- struct{}{}:
			default:
			}
			n.pokePublisher()
		},
		Disconnected: func(err error) {
			n.mu.Lock()
			n.st.connected = false
			n.st.reconnects++
			n.mu.Unlock()
			if err != nil {
				n.setErr(fmt.Errorf("disconnected: %w", err))
			}
			n.log.Warn("fleet: disconnected; bans are queued and the stream replayed on reconnect", "err", err)
		},
		Error: func(err error) { n.setErr(err) },
	}
	bus, err := n.deps.Dial(ctx, h)
	if err != nil {
		n.setErr(err)
		return err
	}
	defer bus.Close()
	if bus.Connected() {
		h.Connected(bus.ConnectedURL())
	}
	wg.Add(1)
	go func() { defer wg.Done(); n.publisher(ctx, bus) }()
	n.consumer(ctx, bus, reconnected)
	return nil
}

func (n *Node) setErr(err error) {
	n.mu.Lock()
	n.st.lastErr, n.st.lastErrAt = err.Error(), n.now()
	n.mu.Unlock()
}

// load restores the queue, the sequence and the remote records, and
// brings the fleet jail in line with them.
func (n *Node) load(ctx context.Context) error {
	now := n.now()
	var errs []error
	qrecs, err := n.deps.Store.Records(SpaceQueue)
	if err != nil {
		errs = append(errs, err)
	}
	n.mu.Lock()
	bad := n.q.load(qrecs)
	n.mu.Unlock()
	if bad > 0 {
		n.log.Warn("fleet: skipped unreadable queued records", "count", bad)
	}
	recs, err := n.deps.Store.Records(SpaceRemote)
	if err != nil {
		errs = append(errs, err)
	}
	n.mu.Lock()
	bad = n.book.load(recs, n.trust, now)
	for _, e := range n.deps.Bans.List(n.cfg.Jail) {
		n.book.restoreApplied(e.Prefix, e.Expires)
	}
	n.book.touchAll()
	n.mu.Unlock()
	if bad > 0 {
		n.log.Warn("fleet: skipped unreadable stored records", "count", bad)
	}
	n.commit(ctx, now)
	return errors.Join(errs...)
}

// verifiedBatch is a batch of the applier's items, in order, with the
// verdicts of its messages, all judged under one trust set.
type verifiedBatch struct {
	items []inItem
	vs    []Verified
	trust *Trust
}

// maxBatch bounds one batch of the applier. Each verifying worker takes
// a share of it: a signature costs about 10 µs in a share of 1,024 and
// 12 in one of 512 (BenchmarkVerify).
const maxBatch = 2048

// verifier collects the incoming items in batches and verifies their
// messages in parallel, one batch ahead of the applier, so that checking
// signatures overlaps storing and enforcing. An operation ends its batch.
func (n *Node) verifier(ctx context.Context, out chan<- verifiedBatch) {
	for {
		batch := make([]inItem, 0, maxBatch)
		select {
		case <-ctx.Done():
			return
		case it := <-n.in:
			batch = append(batch, it)
		}
	drain:
		for len(batch) < maxBatch && batch[len(batch)-1].op == nil {
			select {
			case it := <-n.in:
				batch = append(batch, it)
			default:
				break drain
			}
		}
		n.mu.Lock()
		trust := n.trust
		n.mu.Unlock()
		vs := make([]Verified, len(batch))
		n.verifyAll(batch, vs, trust)
		select {
		case out <- verifiedBatch{items: batch, vs: vs, trust: trust}:
		case <-ctx.Done():
			return
		}
	}
}

// applier owns the book: it applies the policy to the verified batches and
// enforces the result.
func (n *Node) applier(ctx context.Context, in <-chan verifiedBatch) {
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			now := n.now()
			n.mu.Lock()
			n.book.sweep(now, 0)
			n.mu.Unlock()
			n.commit(ctx, now)
		case vb := <-in:
			n.process(ctx, vb)
		}
	}
}

// process handles one batch in order: operations run between the
// messages. Messages verified under a trust set that has changed since
// are verified again.
func (n *Node) process(ctx context.Context, vb verifiedBatch) {
	batch, vs := vb.items, vb.vs
	n.mu.Lock()
	trust := n.trust
	n.mu.Unlock()
	if trust != vb.trust {
		n.verifyAll(batch, vs, trust)
	}
	now := n.now()
	for i, it := range batch {
		if it.op != nil {
			n.commit(ctx, now)
			it.op(now)
			continue
		}
		n.mu.Lock()
		n.st.received++
		if it.gen == n.st.gen {
			n.book.receive(vs[i], it.gen, now)
		}
		done := it.gen == n.st.gen && it.pending == 0 && !n.st.caughtUp
		n.mu.Unlock()
		if vs[i].Err != nil && vs[i].Refused != RefuseStale {
			n.log.Debug("fleet: record refused", "subject", it.subject, "reason", vs[i].Refused, "err", vs[i].Err)
		}
		if done {
			n.commit(ctx, now)
			n.replayDone(ctx, it.gen, now)
		}
	}
	n.commit(ctx, now)
}

func (n *Node) verifyAll(batch []inItem, vs []Verified, trust *Trust) {
	idx := make([]int, 0, len(batch))
	msgs := make([]Message, 0, len(batch))
	for i, it := range batch {
		if it.op == nil {
			idx = append(idx, i)
			msgs = append(msgs, Message{Subject: it.subject, Data: it.data})
		}
	}
	// Each worker checks its share of the signatures as one batch.
	out := make([]Verified, len(msgs))
	w := min(n.cfg.Workers, max(len(msgs)/64, 1))
	chunk := (len(msgs) + w - 1) / w
	var wg sync.WaitGroup
	for s := 0; s < len(msgs); s += chunk {
		e := min(s+chunk, len(msgs))
		wg.Go(func() { VerifyBatch(msgs[s:e], trust, out[s:e]) })
	}
	wg.Wait()
	for k, i := range idx {
		vs[i] = out[k]
	}
}

// replayDone ends replay generation gen: records the stream no longer
// holds are dropped, and this server's own records are compared with its
// bans (republishing what the stream lost).
func (n *Node) replayDone(ctx context.Context, gen uint64, now time.Time) {
	n.mu.Lock()
	if gen != n.st.gen || n.st.caughtUp {
		n.mu.Unlock()
		return
	}
	_, unseen := n.book.sweep(now, gen)
	n.st.caughtUp = true
	n.st.replays++
	n.st.lastReplay = now
	n.st.replayTook = time.Since(n.st.replayStart)
	own := make(map[netip.Prefix]Record, len(n.book.ownSeen))
	for p, r := range n.book.ownSeen {
		own[p] = r
	}
	n.mu.Unlock()
	n.commit(ctx, now)
	n.log.Info("fleet: stream replayed", "took", n.Status().ReplayTook, "dropped_unseen", unseen)
	select {
	case n.ownOps <- func(s *ownState) { n.ownFromStream(s, own) }:
	case <-ctx.Done():
	}
}

// commit saves the book's changes, then enforces them.
func (n *Node) commit(ctx context.Context, now time.Time) {
	n.mu.Lock()
	put, del, junk := n.book.save()
	changes := n.book.changes(now)
	for _, c := range changes {
		if !c.Ban || c.Shorten {
			n.expect[c.Prefix]++
		}
	}
	n.mu.Unlock()
	n.saver.add(put, del, junk)
	if len(changes) == 0 {
		return
	}
	reqs := make([]ban.Request, 0, len(changes))
	ps := make([]netip.Prefix, 0, len(changes))
	for _, c := range changes {
		if !c.Ban || c.Shorten {
			if _, err := n.deps.Bans.Unban(ctx, n.cfg.Jail, c.Prefix); err != nil && !errors.Is(err, ban.ErrNotBanned) {
				n.applyErr(fmt.Errorf("lift %s: %w", c.Prefix, err))
			}
		}
		if c.Ban {
			reqs = append(reqs, ban.Request{Jail: n.cfg.Jail, Prefix: c.Prefix, Duration: c.Duration, Reason: c.Reason})
			ps = append(ps, c.Prefix)
		}
	}
	if len(reqs) == 0 {
		return
	}
	res := n.deps.Bans.BanMany(ctx, reqs)
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, r := range res {
		switch {
		case r.Err == nil, errors.Is(r.Err, ban.ErrAlreadyBanned), errors.Is(r.Err, ban.ErrNotEnforced):
		case errors.Is(r.Err, ban.ErrProtected):
			n.book.refusedByManager(ps[i], r.Err.Error(), now)
		default:
			n.st.applyErrors++
			n.st.lastErr, n.st.lastErrAt = fmt.Sprintf("ban %s: %v", ps[i], r.Err), now
		}
	}
}

func (n *Node) applyErr(err error) {
	n.mu.Lock()
	n.st.applyErrors++
	n.mu.Unlock()
	n.setErr(err)
}

// fleetUnban follows an unban in the fleet jail: one this node did not
// make is an admin's, and the records behind it are not applied again.
func (n *Node) fleetUnban(ev ban.Event) {
	if ev.Cause != "manual" && ev.Cause != "unban-all" {
		return
	}
	p := ev.Entry.Prefix
	n.enqueueOp(func(time.Time) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.expect[p] > 0 {
			if n.expect[p]--; n.expect[p] == 0 {
				delete(n.expect, p)
			}
			return
		}
		n.book.liftedLocally(p)
		n.log.Info("fleet: a remote ban was lifted here by hand; it is not applied again until its origin bans anew", "prefix", p)
	})
}

// consumer keeps a full replay of the stream running: a new one on start
// and after every reconnect.
func (n *Node) consumer(ctx context.Context, bus Bus, reconnected <-chan struct{}) {
	var cur Subscription
	defer func() {
		if cur != nil {
			cur.Stop()
		}
	}()
	retry := time.NewTimer(time.Hour) // the first replay starts on the connection
	retry.Stop()
	defer retry.Stop()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-reconnected:
			if cur != nil {
				cur.Stop()
				cur = nil
			}
			retry.Reset(0)
			continue
		case <-check.C:
			n.checkCaughtUp(ctx, cur)
			continue
		case <-retry.C:
		}
		if cur != nil || !bus.Connected() {
			continue
		}
		n.mu.Lock()
		n.st.gen++
		gen := n.st.gen
		n.st.caughtUp = false
		n.st.replayStart = time.Now()
		n.mu.Unlock()
		sub, info, err := bus.Replay(ctx, n.cfg.Stream, func(m Message) {
			select {
			case n.in <- inItem{gen: gen, subject: m.Subject, data: m.Data, pending: m.Pending}:
			case <-ctx.Done():
			}
		})
		n.mu.Lock()
		n.st.stream = info
		n.mu.Unlock()
		if err != nil {
			n.setErr(err)
			n.log.Warn("fleet: cannot replay the stream; retrying", "stream", n.cfg.Stream, "err", err)
			retry.Reset(5 * time.Second)
			continue
		}
		cur = sub
		if info.Messages > 0 {
			n.enqueueOp(func(time.Time) {
				n.mu.Lock()
				n.book.reserve(int(min(info.Messages, maxReserve))) // (min before the conversion)
				n.mu.Unlock()
			})
		} else {
			n.enqueueOp(func(now time.Time) { n.replayDone(ctx, gen, now) })
		}
	}
}

// checkCaughtUp ends a replay whose last messages vanished (expired)
// before they were delivered.
func (n *Node) checkCaughtUp(ctx context.Context, sub Subscription) {
	n.mu.Lock()
	done, gen, started := n.st.caughtUp, n.st.gen, n.st.replayStart
	n.mu.Unlock()
	if done || sub == nil || time.Since(started) < 2*time.Second {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	pending, err := sub.Pending(cctx)
	cancel()
	if err == nil && pending == 0 && len(n.in) == 0 {
		n.enqueueOp(func(now time.Time) { n.replayDone(ctx, gen, now) })
	}
}

func (n *Node) pokePublisher() {
	select {
	case n.pubWake <- struct{}{}:
	default:
	}
}

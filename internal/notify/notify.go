// Package notify tells people what palisade did and what went wrong: bans,
// unbans, escalations, health problems and recoveries, daemon start and
// stop. It delivers them through routes, each a sink (SMTP mail, or a JSON,
// Slack/Mattermost or ntfy webhook) with its own filter (event types,
// jails), grouping window, hourly message cap and optional daily digest.
//
// Nothing here can delay a ban: Publish never blocks. Each route has a
// bounded queue; an event that finds it full is dropped and counted. A
// route's accumulator folds events into bounded batches (counts, per-jail
// totals and the first few events in detail), so a storm of bans becomes a
// handful of messages that still say how many bans there were; a slow or
// dead sink only makes the pending batch larger, and the events of a
// message that finally fails are counted as dropped.
//
// Messages are built from validated values only (addresses, jail names,
// counts, times, durations). Attacker-controlled text (matched log lines)
// is included only for routes that ask for it, escaped and length-capped.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind says what an event is about.
type Kind int

// Event kinds.
const (
	// KindBan is a new ban (Escalated marks a bantime.increment step).
	KindBan Kind = iota + 1
	// KindUnban is a lifted ban (Cause says why).
	KindUnban
	// KindProblem is a health problem of a jail (Problem says what).
	KindProblem
	// KindRecovery is the end of a health problem.
	KindRecovery
	// KindStart and KindStop are the daemon starting and stopping.
	KindStart
	KindStop
	// KindTest is a test message (palisade notify test).
	KindTest
)

var kindNames = map[Kind]string{
	KindBan: "ban", KindUnban: "unban", KindProblem: "health", KindRecovery: "recovery",
	KindStart: "start", KindStop: "stop", KindTest: "test",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Event is one thing to tell. Only validated values belong here; Lines
// (attacker-controlled) are sanitized again when a message is built.
type Event struct {
	Kind Kind
	Time time.Time
	// Jail is the jail concerned ("" for daemon-wide events).
	Jail string
	// Prefix is the banned or unbanned address or network.
	Prefix netip.Prefix
	// BanTime is the ban's length (negative: permanent); Expires is zero
	// for a permanent ban.
	BanTime time.Duration
	Expires time.Time
	// Offence is the ban's number for this address in this jail.
	Offence int
	// Escalated marks a ban made longer by bantime.increment.
	Escalated bool
	// Manual marks a ban or unban asked for on the command line.
	Manual bool
	// Cause of an unban: expired, manual, unban-all.
	Cause string
	// Reason is the jail's one-line summary of a ban.
	Reason string
	// Problem describes a health problem (KindProblem, KindRecovery).
	Problem string
	// Lines are matched log lines, sent only by routes with lines = yes.
	Lines []string
}

// EventSet is a set of event classes a route sends.
type EventSet uint8

// Event classes, as written in a route's events option.
const (
	EventBan        EventSet = 1 << iota // every ban (escalations included)
	EventUnban                           // unbans
	EventEscalation                      // escalated bans only
	EventHealth                          // health problems and recoveries
	EventLifecycle                       // daemon start and stop
)

// DefaultEvents is the set a route sends when events is not set.
const DefaultEvents = EventBan | EventHealth

var classNames = []struct {
	name string
	set  EventSet
}{{"ban", EventBan}, {"unban", EventUnban}, {"escalation", EventEscalation}, {"health", EventHealth}, {"lifecycle", EventLifecycle}}

// ParseEvents parses a list of event classes ("ban, health"); "none"
// or "" is the empty set, "all" every class.
func ParseEvents(s string) (EventSet, error) {
	var set EventSet
	for _, f := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		switch f {
		case "none":
			continue
		case "all":
			set |= EventBan | EventUnban | EventEscalation | EventHealth | EventLifecycle
			continue
		case "bans":
			f = "ban"
		}
		found := false
		for _, c := range classNames {
			if c.name == f {
				set |= c.set
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown event %q (want ban, unban, escalation, health, lifecycle, all or none)", f)
		}
	}
	return set, nil
}

func (s EventSet) String() string {
	var parts []string
	for _, c := range classNames {
		if s&c.set != 0 {
			parts = append(parts, c.name)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// wants reports whether the set selects ev.
func (s EventSet) wants(ev Event) bool {
	switch ev.Kind {
	case KindBan:
		return s&EventBan != 0 || ev.Escalated && s&EventEscalation != 0
	case KindUnban:
		return s&EventUnban != 0
	case KindProblem, KindRecovery:
		return s&EventHealth != 0
	case KindStart, KindStop:
		return s&EventLifecycle != 0
	}
	return false
}

// Sink delivers one report.
type Sink interface {
	Send(ctx context.Context, r *Report) error
	// Target describes where messages go, without secrets.
	Target() string
}

// Deps are a Notifier's collaborators; all optional.
type Deps struct {
	// Host names this machine in messages (default os.Hostname).
	Host string
	// Logger receives delivery failures.
	Logger *slog.Logger
	// Location is the time zone of message times and digests (default
	// time.Local).
	Location *time.Location
	// NewSink builds a route's sink (default: NewSink, from its type).
	NewSink func(RouteConfig, string) (Sink, error)
}

// Notifier fans events out to its routes. It is safe for concurrent use.
type Notifier struct {
	host   string
	log    *slog.Logger
	loc    *time.Location
	routes []*route
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.RWMutex // guards closed against Publish
	closed bool
}

// New builds every route's sink and starts delivering. Close it.
func New(routes []RouteConfig, deps Deps) (*Notifier, error) {
	if deps.Host == "" {
		deps.Host, _ = os.Hostname()
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Location == nil {
		deps.Location = time.Local
	}
	if deps.NewSink == nil {
		deps.NewSink = NewSink
	}
	n := &Notifier{host: Clean(deps.Host, 253), log: deps.Logger, loc: deps.Location}
	seen := map[string]bool{}
	for _, rc := range routes {
		if seen[rc.Name] {
			return nil, fmt.Errorf("notify: route %q defined twice", rc.Name)
		}
		seen[rc.Name] = true
		rc = rc.withDefaults()
		s, err := deps.NewSink(rc, n.host)
		if err != nil {
			return nil, fmt.Errorf("notify route %s: %w", rc.Name, err)
		}
		n.routes = append(n.routes, newRoute(n, rc, s))
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	for _, r := range n.routes {
		n.wg.Add(2)
		go func() { defer n.wg.Done(); r.accumulate() }()
		go func() { defer n.wg.Done(); r.deliver() }()
	}
	return n, nil
}

// Host is the host name messages carry.
func (n *Notifier) Host() string { return n.host }

// Routes names the routes, in configuration order.
func (n *Notifier) Routes() []string {
	out := make([]string, len(n.routes))
	for i, r := range n.routes {
		out[i] = r.cfg.Name
	}
	return out
}

// WantsLines reports whether a route that would send a ban of jail
// includes matched log lines (so the caller fetches them only then).
func (n *Notifier) WantsLines(jail string) bool {
	for _, r := range n.routes {
		if r.cfg.Lines && r.forJail(jail) && r.cfg.Events&(EventBan|EventEscalation) != 0 {
			return true
		}
	}
	return false
}

// Publish hands ev to every route that wants it. It never blocks: a
// route whose queue is full drops the event and counts it.
func (n *Notifier) Publish(ev Event) {
	if n == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		return
	}
	for _, r := range n.routes {
		if !r.takes(ev) {
			continue
		}
		select {
		case r.in <- ev:
		default:
			r.dropped.Add(1)
		}
	}
}

// Close stops accepting events, sends what is pending until ctx ends, and
// counts whatever could not be sent as dropped.
func (n *Notifier) Close(ctx context.Context) {
	if n == nil {
		return
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	for _, r := range n.routes {
		close(r.in)
	}
	n.mu.Unlock()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		n.cancel()
		<-done
	}
	n.cancel()
}

// RouteStats are one route's counters.
type RouteStats struct {
	Route string
	Type  string
	// Sent and Failed count messages; Dropped counts events that never
	// reached the sink (queue full, or their message failed).
	Sent, Failed, Dropped uint64
	// Pending counts events waiting in a batch.
	Pending int
	// LastError is the last delivery error ("" after a success).
	LastError string
}

// Stats returns every route's counters, in configuration order.
func (n *Notifier) Stats() []RouteStats {
	if n == nil {
		return nil
	}
	out := make([]RouteStats, len(n.routes))
	for i, r := range n.routes {
		out[i] = RouteStats{Route: r.cfg.Name, Type: r.cfg.Type, Sent: r.sent.Load(), Failed: r.failed.Load(),
			Dropped: r.dropped.Load(), Pending: int(r.pending.Load())}
		if e := r.lastErr.Load(); e != nil {
			out[i].LastError = *e
		}
	}
	return out
}

// TestResult is the outcome of a test message through one route.
type TestResult struct {
	Route  string        `json:"route"`
	Type   string        `json:"type"`
	Target string        `json:"target"`
	OK     bool          `json:"ok"`
	Error  string        `json:"error,omitempty"`
	Took   time.Duration `json:"took_ns"`
}

// ErrNoRoute is returned by Test for an unknown route name.
var ErrNoRoute = errors.New("no such notification route")

// Test sends a test message through the named route (every route when
// name is ""), synchronously and bypassing queues, grouping and caps, and
// reports each sink's result.
func (n *Notifier) Test(ctx context.Context, name string) ([]TestResult, error) {
	var out []TestResult
	for _, r := range n.routes {
		if name != "" && r.cfg.Name != name {
			continue
		}
		now := time.Now()
		b := newBatch(now)
		b.add(Event{Kind: KindTest, Time: now})
		rep := r.report(b, ReportTest, now)
		t0 := time.Now()
		err := r.sendOnce(ctx, rep)
		res := TestResult{Route: r.cfg.Name, Type: r.cfg.Type, Target: r.sink.Target(), OK: err == nil, Took: time.Since(t0)}
		if err != nil {
			res.Error = err.Error()
		}
		out = append(out, res)
	}
	if name != "" && len(out) == 0 {
		names := n.Routes()
		sort.Strings(names)
		return nil, fmt.Errorf("%w %q (routes: %s)", ErrNoRoute, name, strings.Join(names, ", "))
	}
	return out, nil
}

// counter helpers kept together so the route type stays readable.
type counters struct {
	sent, failed, dropped atomic.Uint64
	pending               atomic.Int64
	lastErr               atomic.Pointer[string]
}

package daemon

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/palisade-project/palisade/internal/ban"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/health"
	"github.com/palisade-project/palisade/internal/metrics"
	"github.com/palisade-project/palisade/internal/notify"
	"github.com/palisade-project/palisade/internal/source"
	"github.com/palisade-project/palisade/internal/version"
)

// This file wires notifications (internal/notify), metrics
// (internal/metrics) and the health watchdog (internal/health) into the
// daemon. The ban path is untouched: notifications read the ban manager's
// non-blocking event stream, metrics and health read the counters the
// components keep, at scrape or check time.

// closeWait bounds how long stopping the daemon waits for pending
// notifications.
const closeWait = 5 * time.Second

// observer is the daemon's notification, metrics and health state. Its
// zero value is usable: meter works before startObserve.
type observer struct {
	mu     sync.Mutex // guards meters, srcErr, routes
	meters map[firewall.Backend]*meteredBackend
	srcErr map[string]*srcErrState

	notifier atomic.Pointer[notify.Notifier]
	routes   []notify.RouteConfig
	watchdog *health.Watchdog
	metrics  *metrics.Server
	listen   string
	events   <-chan ban.Event
	unsub    func()
	wg       sync.WaitGroup
	started  atomic.Bool
}

type srcErrState struct {
	state source.State
	since time.Time
	errs  uint64
}

// meter wraps a firewall backend to count its operations and remember
// its last failure (one wrapper per backend, so the router still sees
// one backend).
func (d *Daemon) meter(b firewall.Backend) firewall.Backend {
	if b == nil {
		return nil
	}
	o := &d.obs
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.meters == nil {
		o.meters = map[firewall.Backend]*meteredBackend{}
	}
	if m, ok := o.meters[b]; ok {
		return m
	}
	m := &meteredBackend{inner: b, keep: b == d.opts.Backend, ops: map[string]uint64{}, fails: map[string]uint64{}}
	o.meters[b] = m
	return m
}

// startObserve builds the notification routes, the watchdog and the
// metrics listener (none without [metrics] listen) and subscribes to ban
// events. Called in New before the jails start.
func (d *Daemon) startObserve(cfg *config.Config) error {
	o := &d.obs
	obs := cfg.Observe
	n, err := notify.New(obs.Notify, notify.Deps{Logger: d.log})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	o.notifier.Store(n)
	o.routes = obs.Notify
	for _, r := range obs.Notify {
		d.log.Info("notification route", "route", r.Name, "type", r.Type, "events", r.Events.String(), "jails", fmt.Sprint(r.Jails))
	}
	o.watchdog = health.New(obs.Health, health.Deps{Sample: d.healthSample, OnChange: d.healthChanged, Logger: d.log, Now: d.now})
	if obs.Metrics.Enabled() {
		reg := metrics.NewRegistry(d.metricsSnapshot)
		o.metrics, err = metrics.Listen(obs.Metrics, metrics.Handler(reg, d.healthz, d.log))
		if err != nil {
			return err
		}
		o.listen = obs.Metrics.Listen
		d.log.Info("metrics listening", "listen", o.metrics.Addr())
	}
	o.events, o.unsub = d.bans.Subscribe(4096)
	return nil
}

// serveObserve runs the watchdog, the metrics server and the ban-event
// forwarder until ctx is done, and announces the start.
func (d *Daemon) serveObserve(ctx context.Context) {
	o := &d.obs
	o.started.Store(true)
	o.wg.Add(2)
	go func() { defer o.wg.Done(); o.watchdog.Run(ctx) }()
	go func() { defer o.wg.Done(); d.forwardBans(ctx) }()
	if o.metrics != nil {
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			if err := o.metrics.Serve(ctx); err != nil {
				d.log.Error("metrics server", "err", err)
			}
		}()
	}
	o.notifier.Load().Publish(notify.Event{Kind: notify.KindStart, Time: d.now()})
}

// closeObserve announces the stop, sends what is pending (bounded) and
// releases everything startObserve built.
func (d *Daemon) closeObserve() {
	o := &d.obs
	if o.unsub != nil {
		o.unsub()
	}
	o.wg.Wait()
	if o.metrics != nil {
		o.metrics.Close()
	}
	if n := o.notifier.Load(); n != nil {
		if o.started.Load() {
			n.Publish(notify.Event{Kind: notify.KindStop, Time: d.now()})
		}
		ctx, cancel := context.WithTimeout(context.Background(), closeWait)
		n.Close(ctx)
		cancel()
	}
}

// reloadObserve applies a reloaded configuration: new routes replace the
// old ones (pending messages of the old ones are still sent), the
// watchdog takes the new thresholds; [metrics] listen changes at the next
// restart.
func (d *Daemon) reloadObserve(cfg *config.Config) {
	o := &d.obs
	obs := cfg.Observe
	if o.watchdog != nil {
		o.watchdog.SetConfig(obs.Health)
	}
	if obs.Metrics.Listen != o.listen {
		d.log.Warn("[metrics] listen changes take effect at the next restart", "now", o.listen, "configured", obs.Metrics.Listen)
	}
	o.mu.Lock() // reloads may come from SIGHUP and the socket at once
	defer o.mu.Unlock()
	if reflect.DeepEqual(obs.Notify, o.routes) {
		return
	}
	n, err := notify.New(obs.Notify, notify.Deps{Logger: d.log})
	if err != nil {
		d.log.Error("notification routes not reloaded; the old ones stay", "err", err)
		return
	}
	o.routes = obs.Notify
	old := o.notifier.Swap(n)
	d.log.Info("notification routes reloaded", "routes", fmt.Sprint(n.Routes()))
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), closeWait)
		defer cancel()
		old.Close(ctx)
	}()
}

// forwardBans turns ban manager events into notifications.
func (d *Daemon) forwardBans(ctx context.Context) {
	o := &d.obs
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-o.events:
			if !ok {
				return
			}
			n := o.notifier.Load()
			if len(n.Routes()) == 0 || !announced(ev) {
				continue
			}
			n.Publish(d.notifyEvent(ev, n))
		}
	}
}

// announced reports whether a ban event is news: not a ban re-installed
// at start-up, not an extension of a ban in force, not an address ban
// replaced by its network's (the network ban is announced).
func announced(ev ban.Event) bool {
	return !ev.Restored() && ev.Kind != ban.EventExtend && ev.Cause != ban.CauseAggregated
}

// notifyEvent builds a notification from a ban event: validated values,
// plus the jail's kept log lines when a route asks for them.
func (d *Daemon) notifyEvent(ev ban.Event, n *notify.Notifier) notify.Event {
	e := ev.Entry
	out := notify.Event{Time: ev.Time, Jail: e.Jail, Prefix: e.Prefix, Offence: e.Offence, Reason: e.Reason}
	d.mu.Lock()
	r := d.jails[e.Jail]
	d.mu.Unlock()
	switch ev.Kind {
	case ban.EventBan:
		out.Kind = notify.KindBan
		out.Expires = e.Expires
		out.BanTime = e.Expires.Sub(e.Start)
		if e.Permanent() {
			out.BanTime = -1
		}
		out.Manual = ev.Manual()
		if r != nil && !out.Manual {
			base := r.Plan().Jail.BanTime
			out.Escalated = e.Offence > 1 && base > 0 && (out.BanTime < 0 || out.BanTime > base)
			if n.WantsLines(e.Jail) {
				out.Lines = ev.Lines
			}
		}
	default:
		out.Kind = notify.KindUnban
		out.Cause = ev.Cause
		out.Manual = ev.Manual()
	}
	return out
}

// healthChanged turns a watchdog change into a notification.
func (d *Daemon) healthChanged(c health.Change) {
	k := notify.KindProblem
	if c.Recovered {
		k = notify.KindRecovery
	}
	d.obs.notifier.Load().Publish(notify.Event{Kind: k, Time: c.Time, Jail: c.Jail, Problem: c.Problem.Text})
}

// healthSample is what the watchdog checks: every jail's reported
// problems and counters, and every source's line count.
func (d *Daemon) healthSample() health.Sample {
	var s health.Sample
	for _, r := range d.sortedJails("") {
		js := health.JailSample{Jail: r.Name()}
		c := r.Counters()
		js.Lines = c.Lines
		if msg := r.Problem("source"); msg != "" {
			js.Problems = append(js.Problems, health.Problem{Key: "jail", Text: "not working: " + msg})
		}
		for src, msg := range r.SourceStates() {
			// The placeholder before a source's first look is no problem.
			if msg != "" && !strings.HasSuffix(msg, source.ErrNotOpened.Error()) {
				js.Problems = append(js.Problems, health.Problem{Key: "source:" + src, Text: "source " + msg})
			}
		}
		js.Matches = c.Failures + c.Ignored + c.Skipped
		if m, ok := d.fw.backendOf(r.Name()).(*meteredBackend); ok {
			js.Problems = append(js.Problems, m.problems()...)
		}
		s.Jails = append(s.Jails, js)
	}
	o := &d.obs
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.srcErr == nil {
		o.srcErr = map[string]*srcErrState{}
	}
	seen := func(name string, st source.Status) {
		e := o.srcErr[name]
		if e == nil {
			e = &srcErrState{state: source.StateOK}
			o.srcErr[name] = e
		}
		if st.State != source.StateOK && !errors.Is(st.Err, source.ErrNotOpened) && (st.State != e.state || !st.Since.Equal(e.since)) {
			e.errs++
		}
		e.state, e.since = st.State, st.Since
	}
	for _, fs := range d.tailer.Stats() {
		s.Sources = append(s.Sources, health.SourceSample{Name: fs.Path, Lines: fs.Lines})
		seen(fs.Path, fs.Status)
	}
	for _, js := range d.journal.Stats() {
		s.Sources = append(s.Sources, health.SourceSample{Name: "journal:" + js.Key, Lines: js.Entries})
	}
	return s
}

// addHealth fills the status reply's health fields.
func (d *Daemon) addHealth(rep *control.StatusReply) {
	w := d.obs.watchdog
	if w == nil {
		rep.Healthy = true
		return
	}
	rep.Healthy, _ = w.Status()
	for i := range rep.Jails {
		jh := w.Jail(rep.Jails[i].Name)
		rep.Jails[i].Health = control.JailHealth{Healthy: jh.Healthy, Problems: jh.Problems, Since: jh.Since}
	}
}

// healthz is the /healthz body.
func (d *Daemon) healthz() (bool, any) {
	ok, jails := d.obs.watchdog.Status()
	return ok, struct {
		Healthy bool                `json:"healthy"`
		Jails   []health.JailHealth `json:"jails"`
	}{ok, jails}
}

// metricsSnapshot reads every component's counters for a scrape.
func (d *Daemon) metricsSnapshot() metrics.Snapshot {
	o := &d.obs
	s := metrics.Snapshot{Version: version.Get().Version}
	s.Healthy, _ = o.watchdog.Status()
	d.mu.Lock()
	s.ReloadOK = d.reloadErr == ""
	d.mu.Unlock()
	elements := map[string]int{}
	for _, r := range d.sortedJails("") {
		name := r.Name()
		j := metrics.Jail{Name: name}
		st := r.Counters()
		j.Lines = st.Lines
		fs := r.FilterStats()
		j.RegexTimeouts, j.BacktrackSeconds, j.BacktrackSkipped = fs.Timeouts, fs.BacktrackTime.Seconds(), fs.BacktrackSkipped
		j.Matches, j.Failures, j.Ignored = st.Failures+st.Ignored+st.Skipped, st.Failures, st.Ignored
		j.Tracked, j.Evictions, j.AlreadyBanned = st.Tracked, st.Evicted, st.Held
		j.Banned, j.Bans = d.bans.Count(name)
		j.Unbans = d.bans.Unbans(name)
		jh := o.watchdog.Jail(name)
		j.Healthy, j.Problems = jh.Healthy, jh.ProblemsTotal
		s.Jails = append(s.Jails, j)
		elements[d.fw.backendOf(name).Name()] += j.Banned
	}
	o.mu.Lock()
	srcErrs := map[string]uint64{}
	for k, v := range o.srcErr {
		srcErrs[k] = v.errs
	}
	meters := make([]*meteredBackend, 0, len(o.meters))
	for _, m := range o.meters {
		meters = append(meters, m)
	}
	o.mu.Unlock()
	for _, fs := range d.tailer.Stats() {
		s.Sources = append(s.Sources, metrics.Source{Name: fs.Path, Kind: "file", Lines: fs.Lines, Bytes: fs.Bytes,
			Rotations: fs.Rotations, Truncations: fs.Truncation, LongLines: fs.TooLong, Errors: srcErrs[fs.Path],
			Up: fs.Status.State == source.StateOK, LastLine: o.watchdog.LastLine(fs.Path)})
	}
	for _, js := range d.journal.Stats() {
		name := "journal:" + js.Key
		s.Sources = append(s.Sources, metrics.Source{Name: name, Kind: "journal", Lines: js.Entries, Skipped: js.Skipped, LongLines: js.TooLong,
			Errors: max(js.Restarts, 1) - 1, Up: js.Status.State == source.StateOK, LastLine: o.watchdog.LastLine(name)})
	}
	sort.Slice(meters, func(i, j int) bool { return meters[i].Name() < meters[j].Name() })
	for _, m := range meters {
		b := m.stats()
		b.Elements = elements[b.Name]
		s.Backends = append(s.Backends, b)
	}
	for _, r := range o.notifier.Load().Stats() {
		s.Routes = append(s.Routes, metrics.Route{Name: r.Route, Type: r.Type, Sent: r.Sent, Failed: r.Failed, Dropped: r.Dropped, Pending: r.Pending})
	}
	bs := d.bans.Stats()
	s.Bans = metrics.Bans{Active: bs.Active, Refused: bs.Refused, EventsDropped: bs.EventsDropped,
		ReconcileReAdded: bs.ReconcileReAdded, ReconcileRemoved: bs.ReconcileRemoved, ReconcileFailures: bs.ReconcileFailures}
	return s
}

// meteredBackend counts a backend's operations and keeps its last
// failure for the watchdog.
type meteredBackend struct {
	inner firewall.Backend
	keep  bool // given by Options.Backend: its owner closes it

	mu              sync.Mutex
	ops, fails      map[string]uint64
	writeErr, lsErr string
	writeOp         string
}

func (m *meteredBackend) count(op string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops[op]++
	if err != nil && !errors.Is(err, firewall.ErrNotListable) {
		m.fails[op]++
	}
	switch {
	case op == "list" && err != nil && !errors.Is(err, firewall.ErrNotListable):
		m.lsErr = err.Error()
	case op == "list":
		m.lsErr = ""
	case err != nil:
		m.writeErr, m.writeOp = err.Error(), op
	default:
		m.writeErr = ""
	}
}

// problems are the backend's current failures, as health problems.
func (m *meteredBackend) problems() []health.Problem {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []health.Problem
	if m.writeErr != "" {
		out = append(out, health.Problem{Key: "firewall:" + m.inner.Name(), Text: fmt.Sprintf("firewall %s: %s failed: %s", m.inner.Name(), m.writeOp, m.writeErr)})
	}
	if m.lsErr != "" {
		out = append(out, health.Problem{Key: "firewall-list:" + m.inner.Name(), Text: fmt.Sprintf("firewall %s: reading the bans back (reconcile) failed: %s", m.inner.Name(), m.lsErr)})
	}
	return out
}

func (m *meteredBackend) stats() metrics.Backend {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := metrics.Backend{Name: m.inner.Name(), Ops: map[string]uint64{}, Failures: map[string]uint64{}}
	for k, v := range m.ops {
		b.Ops[k] = v
	}
	for k, v := range m.fails {
		b.Failures[k] = v
	}
	return b
}

// Name implements firewall.Backend.
func (m *meteredBackend) Name() string { return m.inner.Name() }

// Setup implements firewall.Backend.
func (m *meteredBackend) Setup(ctx context.Context, jails []firewall.JailSpec) error {
	err := m.inner.Setup(ctx, jails)
	m.count("setup", err)
	return err
}

// Add implements firewall.Backend.
func (m *meteredBackend) Add(ctx context.Context, bans []firewall.Ban) error {
	err := m.inner.Add(ctx, bans)
	m.count("add", err)
	return err
}

// Remove implements firewall.Backend.
func (m *meteredBackend) Remove(ctx context.Context, bans []firewall.Ban) error {
	err := m.inner.Remove(ctx, bans)
	m.count("remove", err)
	return err
}

// List implements firewall.Backend.
func (m *meteredBackend) List(ctx context.Context) ([]firewall.Ban, error) {
	bans, err := m.inner.List(ctx)
	m.count("list", err)
	return bans, err
}

// Teardown implements firewall.Backend.
func (m *meteredBackend) Teardown(ctx context.Context) error { return m.inner.Teardown(ctx) }

// Close closes the backend unless the daemon was given it.
func (m *meteredBackend) Close() error {
	if c, ok := m.inner.(interface{ Close() error }); ok && !m.keep {
		return c.Close()
	}
	return nil
}

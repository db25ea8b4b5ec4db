// Package health is palisade's watchdog: it turns "protection silently
// stopped" into a state people and monitors can see. Every interval it
// takes a sample of each jail (the problems its components report: a
// source that errored or vanished, a filter or jail that did not start, a
// firewall write or reconcile that failed; and its line and match
// counters) and adds what only time shows: no log line for the jail's idle
// time, or no match for its nomatch time while lines flow.
//
// A problem counts once it has lasted the grace time (so a log rotation's
// brief absence is no alarm). A jail with a counted problem is unhealthy;
// the daemon is healthy when every jail is. Each problem is announced once
// when it starts counting and once when it ends (OnChange), however long
// it lasts.
package health

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// Defaults of the [health] section.
const (
	DefaultInterval = 10 * time.Second
	DefaultGrace    = 30 * time.Second
)

// Config is the [health] section and the jails' health options.
type Config struct {
	// Interval is how often the watchdog looks (default 10s).
	Interval time.Duration
	// Grace is how long a problem must last before it counts (default
	// 30s; negative: at once).
	Grace time.Duration
	// Idle and NoMatch are the default thresholds (0: off).
	Idle, NoMatch time.Duration
	// Jails override Idle and NoMatch per jail.
	Jails map[string]Thresholds
}

// Thresholds are one jail's time limits; a negative value turns a check
// off, zero inherits the default.
type Thresholds struct {
	Idle, NoMatch time.Duration
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.Grace < 0 {
		c.Grace = 0
	}
	return c
}

func (c Config) thresholds(jail string) (idle, nomatch time.Duration) {
	idle, nomatch = c.Idle, c.NoMatch
	if t, ok := c.Jails[jail]; ok {
		if t.Idle != 0 {
			idle = t.Idle
		}
		if t.NoMatch != 0 {
			nomatch = t.NoMatch
		}
	}
	return max(idle, 0), max(nomatch, 0)
}

// Problem is one thing wrong with a jail. Key identifies it across
// samples (its text may change, e.g. a growing duration).
type Problem struct {
	Key  string
	Text string
}

// Problem keys the watchdog itself uses.
const (
	KeyIdle    = "idle"
	KeyNoMatch = "nomatch"
)

// JailSample is what a jail's components say at one moment.
type JailSample struct {
	Jail string
	// Problems reported by the components (source, filter, firewall).
	Problems []Problem
	// Lines read by the jail and Matches (failures its filter found),
	// both cumulative.
	Lines, Matches uint64
}

// SourceSample is one log source's cumulative line count.
type SourceSample struct {
	Name  string
	Lines uint64
}

// Sample is every jail and source at one moment.
type Sample struct {
	Jails   []JailSample
	Sources []SourceSample
}

// Change is a problem starting to count, or ending.
type Change struct {
	Jail      string
	Problem   Problem
	Recovered bool
	Time      time.Time
	// Since is when the problem was first seen.
	Since time.Time
}

// Deps are the watchdog's collaborators; Sample is required.
type Deps struct {
	Sample func() Sample
	// OnChange is told about every problem that starts or ends counting
	// (from the watchdog's goroutine).
	OnChange func(Change)
	Logger   *slog.Logger
	Now      func() time.Time
}

// JailHealth is one jail's state.
type JailHealth struct {
	Jail    string `json:"jail"`
	Healthy bool   `json:"healthy"`
	// Problems counted now, sorted.
	Problems []string `json:"problems"`
	// Since is when the jail's current state began.
	Since time.Time `json:"since"`
	// ProblemsTotal counts the problems the jail has had.
	ProblemsTotal uint64 `json:"problems_total"`
}

type problemState struct {
	Problem
	first    time.Time
	counting bool
}

type jailState struct {
	problems      map[string]*problemState
	lines         uint64
	lineAt        time.Time
	matches       uint64
	matchAt       time.Time
	linesAtMatch  uint64
	since         time.Time
	healthy       bool
	problemsTotal uint64
}

// Watchdog checks health periodically. It is safe for concurrent use.
type Watchdog struct {
	cfg  Config
	deps Deps

	mu      sync.Mutex
	jails   map[string]*jailState
	sources map[string]*sourceState
}

type sourceState struct {
	lines  uint64
	lineAt time.Time
}

// New returns a watchdog; call Run, or Check from tests.
func New(cfg Config, deps Deps) *Watchdog {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Watchdog{cfg: cfg.withDefaults(), deps: deps, jails: map[string]*jailState{}, sources: map[string]*sourceState{}}
}

// SetConfig replaces the thresholds (reload); counters and states stay.
func (w *Watchdog) SetConfig(cfg Config) {
	w.mu.Lock()
	w.cfg = cfg.withDefaults()
	w.mu.Unlock()
}

// Interval is the configured check period.
func (w *Watchdog) Interval() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cfg.Interval
}

// Run checks every interval until ctx is done.
func (w *Watchdog) Run(ctx context.Context) {
	w.Check()
	for {
		t := time.NewTimer(w.Interval())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		w.Check()
	}
}

// Check takes one sample and updates every jail's state.
func (w *Watchdog) Check() {
	s := w.deps.Sample()
	now := w.deps.Now()
	var changes []Change
	w.mu.Lock()
	live := map[string]bool{}
	for _, js := range s.Jails {
		live[js.Jail] = true
		changes = append(changes, w.checkJail(js, now)...)
	}
	for name := range w.jails {
		if !live[name] {
			delete(w.jails, name) // removed by a reload: no recovery to announce
		}
	}
	liveSrc := map[string]bool{}
	for _, ss := range s.Sources {
		liveSrc[ss.Name] = true
		st := w.sources[ss.Name]
		if st == nil {
			st = &sourceState{lines: ss.Lines}
			w.sources[ss.Name] = st
			if ss.Lines > 0 {
				st.lineAt = now
			}
		} else if ss.Lines != st.lines {
			st.lines, st.lineAt = ss.Lines, now
		}
	}
	for name := range w.sources {
		if !liveSrc[name] {
			delete(w.sources, name)
		}
	}
	w.mu.Unlock()
	for _, c := range changes {
		if c.Recovered {
			w.deps.Logger.Info("jail health recovered", "jail", c.Jail, "problem", c.Problem.Text)
		} else {
			w.deps.Logger.Warn("jail unhealthy", "jail", c.Jail, "problem", c.Problem.Text)
		}
		if w.deps.OnChange != nil {
			w.deps.OnChange(c)
		}
	}
}

func (w *Watchdog) checkJail(js JailSample, now time.Time) []Change {
	st := w.jails[js.Jail]
	if st == nil {
		st = &jailState{problems: map[string]*problemState{}, lines: js.Lines, lineAt: now,
			matches: js.Matches, matchAt: now, linesAtMatch: js.Lines, since: now, healthy: true}
		w.jails[js.Jail] = st
	}
	if js.Lines != st.lines {
		st.lines, st.lineAt = js.Lines, now
	}
	if js.Matches != st.matches {
		st.matches, st.matchAt, st.linesAtMatch = js.Matches, now, js.Lines
	}
	cur := map[string]Problem{}
	for _, p := range js.Problems {
		cur[p.Key] = p
	}
	idle, nomatch := w.cfg.thresholds(js.Jail)
	if d := now.Sub(st.lineAt); idle > 0 && d >= idle {
		cur[KeyIdle] = Problem{KeyIdle, fmt.Sprintf("no log line for %s (idle limit %s)", roundDur(d), idle)}
	}
	if d := now.Sub(st.matchAt); nomatch > 0 && d >= nomatch && js.Lines > st.linesAtMatch {
		cur[KeyNoMatch] = Problem{KeyNoMatch, fmt.Sprintf("filter matched nothing for %s while %d lines were read (nomatch limit %s)",
			roundDur(d), js.Lines-st.linesAtMatch, nomatch)}
	}
	var changes []Change
	for key, p := range cur {
		ps := st.problems[key]
		if ps == nil {
			ps = &problemState{Problem: p, first: now}
			st.problems[key] = ps
		}
		ps.Text = p.Text
		if !ps.counting && now.Sub(ps.first) >= w.cfg.Grace {
			ps.counting = true
			st.problemsTotal++
			changes = append(changes, Change{Jail: js.Jail, Problem: ps.Problem, Time: now, Since: ps.first})
		}
	}
	for key, ps := range st.problems {
		if _, still := cur[key]; still {
			continue
		}
		delete(st.problems, key)
		if ps.counting {
			changes = append(changes, Change{Jail: js.Jail, Problem: ps.Problem, Recovered: true, Time: now, Since: ps.first})
		}
	}
	healthy := true
	for _, ps := range st.problems {
		if ps.counting {
			healthy = false
		}
	}
	if healthy != st.healthy {
		st.healthy, st.since = healthy, now
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].Problem.Key < changes[j].Problem.Key })
	return changes
}

func roundDur(d time.Duration) time.Duration {
	if d >= time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(10 * time.Millisecond)
}

// Status returns whether every jail is healthy and each jail's state,
// sorted by jail. Before the first check every jail is healthy.
func (w *Watchdog) Status() (bool, []JailHealth) {
	w.mu.Lock()
	defer w.mu.Unlock()
	all := true
	out := make([]JailHealth, 0, len(w.jails))
	for name, st := range w.jails {
		jh := w.view(name, st)
		all = all && jh.Healthy
		out = append(out, jh)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Jail < out[j].Jail })
	return all, out
}

// Jail returns one jail's state (healthy when unknown).
func (w *Watchdog) Jail(name string) JailHealth {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.jails[name]
	if st == nil {
		return JailHealth{Jail: name, Healthy: true, Problems: []string{}}
	}
	return w.view(name, st)
}

func (w *Watchdog) view(name string, st *jailState) JailHealth {
	jh := JailHealth{Jail: name, Healthy: st.healthy, Since: st.since, ProblemsTotal: st.problemsTotal, Problems: []string{}}
	for _, ps := range st.problems {
		if ps.counting {
			jh.Problems = append(jh.Problems, ps.Text)
		}
	}
	sort.Strings(jh.Problems)
	return jh
}

// LastLine returns when the watchdog last saw source's line count grow
// (zero when never): a last-line time accurate to the check interval.
func (w *Watchdog) LastLine(source string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if st := w.sources[source]; st != nil {
		return st.lineAt
	}
	return time.Time{}
}

// Summary is a one-line description of the unhealthy jails ("" when
// healthy).
func Summary(jails []JailHealth) string {
	var parts []string
	for _, j := range jails {
		if !j.Healthy {
			parts = append(parts, j.Jail+": "+strings.Join(j.Problems, "; "))
		}
	}
	return strings.Join(parts, " | ")
}

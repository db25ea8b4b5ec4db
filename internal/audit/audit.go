// Package audit checks the whole server against the hardening guide: SSH,
// ports, the firewall policy, jails, the Cloudflare lock, notifications,
// updates and the palisade daemon. It reads the real state of the server
// (effective sshd settings, listening sockets, the kernel's ruleset, the
// daemon's answers), never changes anything, and names for each gap the
// command that closes it.
//
// Each area is a Checker that turns a shared, lazily read State into
// Checks. Everything the state reads comes through small interfaces
// (Sources) with --root-relative file implementations, so the whole audit
// runs on a directory tree in tests.
package audit

import (
	"context"
	"math"
	"slices"
)

// Status is a check's outcome.
type Status string

// Statuses.
const (
	Pass Status = "pass" // the recommendation is met
	Fail Status = "fail" // it is not
	Warn Status = "warn" // met in part, or something needs a look
	Info Status = "info" // informational, not scored
	Skip Status = "skip" // not applicable or not readable (the message says why)
)

// Severity says how much a check matters.
type Severity string

// Severities, worst first.
const (
	Critical Severity = "critical"
	High     Severity = "high"
	Medium   Severity = "medium"
	Low      Severity = "low"
	Advice   Severity = "info"
)

// weight is a severity's share of the score.
func (s Severity) weight() float64 {
	switch s {
	case Critical:
		return 10
	case High:
		return 6
	case Medium:
		return 3
	case Low:
		return 1
	}
	return 0
}

// Areas, in report order.
const (
	AreaSSH        = "ssh"
	AreaPorts      = "ports"
	AreaFirewall   = "firewall"
	AreaJails      = "jails"
	AreaCloudflare = "cloudflare"
	AreaNotify     = "notify"
	AreaUpdates    = "updates"
	AreaDaemon     = "daemon"
)

// AreaOrder returns the areas in report order.
func AreaOrder() []string {
	return []string{AreaSSH, AreaPorts, AreaFirewall, AreaJails, AreaCloudflare, AreaNotify, AreaUpdates, AreaDaemon}
}

// Check is one audited recommendation. Its JSON form is stable
// (docs/audit.md).
type Check struct {
	// ID is "area.name", stable across releases.
	ID       string   `json:"id"`
	Area     string   `json:"area"`
	Severity Severity `json:"severity"`
	Status   Status   `json:"status"`
	// Title says what is checked; Message what was found.
	Title   string `json:"title"`
	Message string `json:"message"`
	// Evidence are file:line references and command output lines.
	Evidence []string `json:"evidence"`
	// Fix is the command (or exact edit) that closes the gap; empty when
	// the check passes.
	Fix string `json:"fix,omitempty"`
}

// Checker contributes one area's checks.
type Checker interface {
	Area() string
	Check(ctx context.Context, st *State) []Check
}

// Report is the result of an audit. Its JSON form is stable.
type Report struct {
	// Schema is the JSON schema version (1).
	Schema int `json:"schema"`
	// Root is the --root the audit ran on ("" for the host).
	Root string `json:"root,omitempty"`
	// Privileged is set when the audit ran as root; without it some checks
	// are skipped or less detailed (Limits says which).
	Privileged bool `json:"privileged"`
	// Score is 0-100: the weighted share of scored checks that pass.
	Score int `json:"score"`
	// Passed is set when no critical or high check fails.
	Passed bool              `json:"passed"`
	Counts map[Status]int    `json:"counts"`
	Checks []Check           `json:"checks"`
	Limits []string          `json:"limits"`
	byID   map[string]*Check `json:"-"`
}

// Check returns the check with id.
func (r *Report) Check(id string) (Check, bool) {
	if c, ok := r.byID[id]; ok {
		return *c, true
	}
	return Check{}, false
}

// Failed returns the checks whose status is fail.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status == Fail {
			out = append(out, c)
		}
	}
	return out
}

// Auditor runs checkers over one state.
type Auditor struct {
	Checkers []Checker
}

// Run runs every checker and scores the result.
func (a *Auditor) Run(ctx context.Context, st *State) *Report {
	r := &Report{Schema: 1, Root: st.src.Root, Privileged: st.src.Privileged, Counts: map[Status]int{}, Checks: []Check{}}
	order := AreaOrder()
	checkers := slices.Clone(a.Checkers)
	slices.SortStableFunc(checkers, func(x, y Checker) int {
		return areaRank(order, x.Area()) - areaRank(order, y.Area())
	})
	for _, c := range checkers {
		for _, ch := range c.Check(ctx, st) {
			ch.Area = c.Area()
			if ch.Evidence == nil {
				ch.Evidence = []string{}
			}
			if ch.Status == Pass || ch.Status == Skip {
				ch.Fix = ""
			}
			r.Checks = append(r.Checks, ch)
		}
	}
	r.byID = map[string]*Check{}
	for i := range r.Checks {
		r.byID[r.Checks[i].ID] = &r.Checks[i]
		r.Counts[r.Checks[i].Status]++
	}
	r.Score, r.Passed = Score(r.Checks)
	r.Limits = st.Limits()
	return r
}

func areaRank(order []string, a string) int {
	if i := slices.Index(order, a); i >= 0 {
		return i
	}
	return len(order)
}

// Score weighs the checks: within each area, a pass earns its severity's
// weight, a warn half of it, a fail nothing (info and skip are not
// scored); the score is the mean of the areas' shares, so every section of
// the guide counts the same however many checks it has. It is rounded
// down: 100 means every scored check passed. passed is false when a
// critical or high check fails.
func Score(checks []Check) (score int, passed bool) {
	type sum struct{ total, earned float64 }
	areas := map[string]*sum{}
	passed = true
	for _, c := range checks {
		w := c.Severity.weight()
		if w == 0 || (c.Status != Pass && c.Status != Warn && c.Status != Fail) {
			continue
		}
		a := areas[c.Area]
		if a == nil {
			a = &sum{}
			areas[c.Area] = a
		}
		a.total += w
		switch c.Status {
		case Pass:
			a.earned += w
		case Warn:
			a.earned += w / 2
		case Fail:
			if c.Severity == Critical || c.Severity == High {
				passed = false
			}
		}
	}
	if len(areas) == 0 {
		return 100, passed
	}
	var share float64
	for _, a := range areas {
		share += a.earned / a.total
	}
	return int(math.Floor(100*share/float64(len(areas)) + 1e-9)), passed
}

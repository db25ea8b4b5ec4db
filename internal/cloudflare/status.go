package cloudflare

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/palisade-project/palisade/internal/cloudflare/edge"
	"github.com/palisade-project/palisade/internal/firewall"
)

// Lock states in Status.
const (
	StateOn    = "on"
	StateOff   = "off"   // turned off by palisade cloudflare off
	StateNever = "never" // never turned on (or disabled in the configuration)
)

// Status is the lock as the manager and the kernel see it. Its JSON form
// is stable (docs/cloudflare.md).
type Status struct {
	State string `json:"state"`
	// Origin says who turned the lock on: "config" or "command".
	Origin string     `json:"origin,omitempty"`
	Since  *time.Time `json:"since,omitempty"`
	// Enabled is [cloudflare] enabled; Daemon is set when a running
	// daemon answered (and keeps the lock when Enabled).
	Enabled     bool   `json:"enabled"`
	Daemon      bool   `json:"daemon"`
	Ports       string `json:"ports"`
	ConfigPorts string `json:"config_ports"`
	BlockType   string `json:"blocktype"`
	URL         string `json:"url"`
	Interval    string `json:"interval"`
	// The list in force (or the last known good one while off).
	Source  string     `json:"source,omitempty"`
	ETag    string     `json:"etag,omitempty"`
	Fetched *time.Time `json:"fetched,omitempty"`
	IPv4    []string   `json:"ipv4"`
	IPv6    []string   `json:"ipv6"`
	Allow   []string   `json:"allow"`

	LastAttempt *time.Time   `json:"last_attempt,omitempty"`
	LastSuccess *time.Time   `json:"last_success,omitempty"`
	LastError   string       `json:"last_error,omitempty"`
	Failures    int          `json:"consecutive_failures"`
	NextSync    *time.Time   `json:"next_sync,omitempty"`
	Snapshot    SnapshotInfo `json:"snapshot"`
	Kernel      KernelInfo   `json:"kernel"`
	// Edge is the state of edge bans (absent when they are off).
	Edge *edge.Status `json:"edge,omitempty"`
	// Warnings are problems a human should look at.
	Warnings []string `json:"warnings"`
}

// SnapshotInfo describes the embedded snapshot.
type SnapshotInfo struct {
	Date    string `json:"date"`
	AgeDays int    `json:"age_days"`
	// InUse is set when the lock in force is the snapshot.
	InUse bool `json:"in_use"`
	// Old is set when it is older than SnapshotMaxAge.
	Old bool `json:"old"`
}

// KernelInfo is what the kernel holds.
type KernelInfo struct {
	Installed bool `json:"installed"`
	// InSync is set when the kernel holds exactly the lock in force.
	InSync bool `json:"in_sync"`
	// Refused counts packets refused since the rules were installed.
	Refused uint64 `json:"refused_packets"`
	// Repairs counts re-installations after the lock went missing.
	Repairs int    `json:"repairs"`
	Error   string `json:"error,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func strs(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// Status reports the lock, reading the kernel.
func (m *Manager) Status(ctx context.Context) Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	st := Status{
		State: StateNever, Origin: m.st.Origin, Enabled: m.cfg.Enabled,
		ConfigPorts: firewall.FormatPorts(m.cfg.Ports), BlockType: string(m.cfg.Block),
		URL: m.cfg.URL, Interval: FormatInterval(m.cfg.Interval),
		IPv4: []string{}, IPv6: []string{}, Allow: strs(m.cfg.Allow),
		LastAttempt: timePtr(m.st.LastAttempt), LastSuccess: timePtr(m.st.LastSuccess),
		LastError: m.st.LastError, Failures: m.st.Failures, NextSync: timePtr(m.due),
		Warnings: []string{},
	}
	switch m.st.Mode {
	case modeOn:
		st.State = StateOn
	case modeOff:
		st.State = StateOff
	}
	if st.State != StateNever {
		st.Since = timePtr(m.st.Since)
	} else {
		st.Origin = ""
	}
	st.Ports = st.ConfigPorts
	if len(m.st.Ports) > 0 && st.State == StateOn {
		st.Ports = firewall.FormatPorts(m.st.Ports)
	}
	if l := m.st.List; l != nil {
		st.Source, st.ETag, st.Fetched = l.Source, l.ETag, timePtr(l.Fetched)
		st.IPv4, st.IPv6 = strs(l.IPv4), strs(l.IPv6)
	}
	warn := func(format string, args ...any) { st.Warnings = append(st.Warnings, fmt.Sprintf(format, args...)) }

	if snap, err := Snapshot(); err == nil {
		age := now.Sub(snap.Fetched)
		st.Snapshot = SnapshotInfo{Date: snap.Fetched.Format(time.DateOnly), AgeDays: int(age.Hours() / 24),
			InUse: st.State == StateOn && st.Source == SnapshotSource, Old: age > SnapshotMaxAge}
		if st.Snapshot.InUse {
			if st.Snapshot.Old {
				warn("the lock uses the embedded snapshot of %s, %d days old: no list has been fetched yet, and Cloudflare may have added ranges since (run palisade cloudflare sync)", st.Snapshot.Date, st.Snapshot.AgeDays)
			} else {
				warn("the lock uses the embedded snapshot of %s (%d days old) until the first successful sync", st.Snapshot.Date, st.Snapshot.AgeDays)
			}
		}
	} else {
		warn("embedded snapshot unreadable: %v", err)
	}

	ks, err := m.deps.Lock.State(ctx)
	switch {
	case err != nil:
		st.Kernel.Error = err.Error()
	case m.kernelErr != "":
		st.Kernel.Error = m.kernelErr
	}
	st.Kernel.Installed, st.Kernel.Refused, st.Kernel.Repairs = ks.Installed, ks.Refused, m.repairs
	if st.State == StateOn && m.st.List != nil {
		st.Kernel.InSync = err == nil && ks.Same(m.spec(*m.st.List, m.st.Ports))
		if !st.Kernel.InSync {
			warn("the kernel does not hold the lock as applied (was the ruleset flushed?): a running daemon re-installs it within %v; without one, run palisade cloudflare sync", m.deps.EnsureInterval)
		}
	} else if ks.Installed {
		warn("a Cloudflare lock is in the kernel although the lock is %s (palisade cloudflare off removes it)", st.State)
	}
	if st.Kernel.Error != "" {
		warn("kernel: %s", st.Kernel.Error)
	}

	switch {
	case st.State == StateOff && m.cfg.Enabled:
		warn("turned off by palisade cloudflare off; palisade cloudflare sync turns it on again")
	case st.State == StateOn && !m.cfg.Enabled:
		warn("the lock is not kept in sync with Cloudflare: enabled = false in [cloudflare] (it was turned on by palisade cloudflare sync)")
	case st.State == StateNever && m.cfg.Enabled:
		warn("enabled in [cloudflare] but not on yet: the daemon turns it on when it starts or reloads")
	}
	if st.State == StateOn && st.Ports != st.ConfigPorts {
		warn("ports %s in force were set by palisade cloudflare sync --ports; the configuration says %s (applied at the next start or reload)", st.Ports, st.ConfigPorts)
	}
	if m.st.LastError != "" {
		warn("the last sync failed (%d in a row, last at %s): %s; the lock in force is kept", m.st.Failures, m.st.LastAttempt.Format(time.RFC3339), m.st.LastError)
	}
	if st.State == StateOn && m.cfg.Enabled && !m.st.LastSuccess.IsZero() && now.Sub(m.st.LastSuccess) > 3*m.cfg.Interval {
		warn("the list in force was fetched %s ago (interval %s)", now.Sub(m.st.LastSuccess).Round(time.Hour), m.cfg.Interval)
	}
	if m.storeErr != "" {
		warn("the lock state could not be saved: %s", m.storeErr)
	}
	return st
}

// List returns the list in force, or the last known good list, or the
// embedded snapshot (for real-ip when nothing was ever fetched).
func (m *Manager) List() List {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.List != nil {
		return *m.st.List
	}
	snap, _ := Snapshot()
	return snap
}

// FormatInterval renders a duration the way the configuration writes it
// ("1d", "6h", "90m", "45s").
func FormatInterval(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}} {
		if d >= u.d && d%u.d == 0 {
			return fmt.Sprintf("%d%s", d/u.d, u.name)
		}
	}
	return d.String()
}

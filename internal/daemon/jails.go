package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/palisade-project/palisade/internal/ban"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/filter"
	"github.com/palisade-project/palisade/internal/jail"
	"github.com/palisade-project/palisade/internal/source"
)

// LineFilter is what the daemon needs of a filter (internal/filter.Filter).
type LineFilter interface {
	Process(line string) filter.Result
	ProcessAt(line string, t time.Time) filter.Result
}

// jailRT is one running jail: its configuration, filter, jail logic and
// the subscriptions feeding it.
type jailRT struct {
	cfg     config.Jail
	jail    *jail.Jail
	sources []string // display: file patterns or "journal"
	d       *Daemon
	log     *slog.Logger

	mu       sync.Mutex // serialises filter use (filters are not concurrent-safe)
	filt     LineFilter
	journal  bool
	unsub    []func()
	buildErr string            // filter or source setup error
	srcState map[string]string // source → problem ("" when ok)
	lines    uint64
}

// errorText is the jail's current problem for status ("" when working).
func (r *jailRT) errorText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var parts []string
	if r.buildErr != "" {
		parts = append(parts, r.buildErr)
	}
	keys := make([]string, 0, len(r.srcState))
	for k := range r.srcState {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v := r.srcState[k]; v != "" {
			parts = append(parts, v)
		}
	}
	return strings.Join(parts, "; ")
}

// Status implements source.Consumer.
func (r *jailRT) Status(s source.Status) {
	r.mu.Lock()
	prev := r.srcState[s.Source]
	msg := ""
	if s.State != source.StateOK {
		msg = s.String()
	}
	r.srcState[s.Source] = msg
	r.mu.Unlock()
	if msg != prev {
		if s.State == source.StateMissing && s.Err != nil && s.Err.Error() == "not opened yet" {
			// The reader's placeholder before its first look at the file.
		} else if msg != "" {
			r.log.Warn("log source problem", "jail", r.cfg.Name, "source", s.Source, "state", s.State.String(), "err", errString(s.Err))
		} else if prev != "" {
			r.log.Info("log source ok", "jail", r.cfg.Name, "source", s.Source)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Line implements source.Consumer: filter, count, ban. It returns after
// the failure is recorded and any ban stored, so the source saves its
// position only past lines fully processed.
func (r *jailRT) Line(l source.Line) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.filt == nil {
		return
	}
	r.lines++
	var res filter.Result
	if r.journal || !l.Time.IsZero() {
		t := l.Time
		if t.IsZero() {
			t = r.d.now()
		}
		res = r.filt.ProcessAt(l.Text, t)
	} else {
		res = r.filt.Process(l.Text)
	}
	if len(res.Failures) == 0 {
		return
	}
	key := lineKey(r.cfg.Name, l.Source, l.Text)
	if r.d.fj != nil && r.d.fj.replayed(key) {
		r.log.Debug("line already counted before the restart; not counted again", "jail", r.cfg.Name, "source", l.Source)
		return
	}
	now := r.d.now()
	for _, f := range res.Failures {
		v := r.jail.Observe(f, now)
		r.d.act(r, v)
		if r.d.fj != nil && (v.Action == jail.Counted || v.Action == jail.Banned) {
			t := f.Time
			if t.IsZero() {
				t = now
			}
			if err := r.d.fj.append(failRecord{Jail: r.cfg.Name, Key: key, ID: f.ID, T: t.UnixNano(), Now: now.UnixNano()}); err != nil {
				r.log.Error("failure journal", "err", err)
			}
		}
	}
}

// act carries out a verdict (and the verdicts of further addresses).
func (d *Daemon) act(r *jailRT, v jail.Verdict) {
	switch v.Action {
	case jail.Banned:
		dec := v.Ban
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := d.bans.Ban(ctx, r.cfg.Name, dec.Prefix, dec.Duration, dec.Reason)
		cancel()
		switch {
		case errors.Is(err, ban.ErrAlreadyBanned):
		case err != nil && !errors.Is(err, ban.ErrNotEnforced):
			d.log.Error("ban failed", "jail", r.cfg.Name, "ip", banAddr(dec.Prefix), "err", err)
		default:
			if err != nil {
				d.log.Error("ban recorded, firewall refused it (retried by reconcile)", "jail", r.cfg.Name, "ip", banAddr(dec.Prefix), "err", err)
			}
			d.log.Debug("ban decided", "jail", r.cfg.Name, "ip", banAddr(dec.Prefix), "failures", dec.Failures,
				"bantime", durText(dec.Duration), "offence", dec.Offence)
			if d.opts.OnBan != nil {
				d.opts.OnBan(r.cfg.Name, dec.Prefix)
			}
		}
	case jail.Ignored:
		if v.Ignore != nil {
			d.log.Debug("ignored", "jail", r.cfg.Name, "ip", v.Addr.String(), "rule", v.Ignore.Rule, "entry", v.Ignore.Entry)
		}
	case jail.Counted:
		d.log.Debug("found", "jail", r.cfg.Name, "ip", v.Addr.String(), "failures", v.Failures)
	}
	for _, m := range v.More {
		d.act(r, m)
	}
}

func banAddr(p netip.Prefix) string {
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

func durText(d time.Duration) string {
	if d < 0 {
		return "permanent"
	}
	return d.String()
}

// jailConfig turns the configuration model into jail.Config.
func jailConfig(j config.Jail) (jail.Config, error) {
	jc := jail.Config{
		Name: j.Name, MaxRetry: j.MaxRetry, FindTime: j.FindTime, BanTime: j.BanTime,
		IgnoreSelf: j.IgnoreSelf, MaxMatches: j.MaxMatches, UseDNS: jail.UseDNS(j.UseDNS),
		MaxEntries: j.FailTableSize,
		Increment: jail.Increment{
			Enabled: j.Increment.Enabled, Factor: j.Increment.Factor, Multipliers: j.Increment.Multipliers,
			MaxTime: j.Increment.MaxTime, RndTime: j.Increment.RndTime, OverallJails: j.Increment.OverallJails,
		},
	}
	if j.IPv6Prefix < 128 {
		jc.IPv6Prefix = j.IPv6Prefix
	}
	for _, e := range j.IgnoreIP {
		jc.IgnoreIP = append(jc.IgnoreIP, e.Text)
	}
	if j.IgnoreCommand != "" {
		argv, err := jail.SplitCommand(j.IgnoreCommand)
		if err != nil {
			return jc, fmt.Errorf("ignorecommand: %w", err)
		}
		jc.IgnoreCommand = argv
	}
	return jc, nil
}

// sameJail reports whether a reload can keep the running jail (and its
// counters): nothing that shapes counting, filtering or sources changed.
func sameJail(a, b config.Jail) bool {
	if a.Name != b.Name || a.Filter.Raw != b.Filter.Raw || a.BackendName != b.BackendName ||
		a.JournalMatch != b.JournalMatch || a.MaxRetry != b.MaxRetry || a.FindTime != b.FindTime ||
		a.BanTime != b.BanTime || a.IgnoreSelf != b.IgnoreSelf || a.IgnoreCommand != b.IgnoreCommand ||
		a.MaxMatches != b.MaxMatches || a.UseDNS != b.UseDNS || a.FailTableSize != b.FailTableSize ||
		a.IPv6Prefix != b.IPv6Prefix || a.DatePattern != b.DatePattern || a.PortSpec != b.PortSpec ||
		a.Protocol != b.Protocol || a.BlockType != b.BlockType || a.LogTimezone != b.LogTimezone {
		return false
	}
	if fmt.Sprint(a.LogPaths) != fmt.Sprint(b.LogPaths) || fmt.Sprint(a.IgnoreIP) != fmt.Sprint(b.IgnoreIP) ||
		fmt.Sprint(a.Increment) != fmt.Sprint(b.Increment) || fmt.Sprint(a.BackendOptions) != fmt.Sprint(b.BackendOptions) {
		return false
	}
	return true
}

// errNoJail is bad input from the client (exit status 2 in the CLI).
var errNoJail = fmt.Errorf("%w: no such jail", control.ErrBadRequest)

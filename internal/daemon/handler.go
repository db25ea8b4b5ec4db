package daemon

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"os"
	"sort"
	"time"

	"github.com/palisade-project/palisade/internal/ban"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/duration"
	"github.com/palisade-project/palisade/internal/jail"
	"github.com/palisade-project/palisade/internal/pipeline"
	"github.com/palisade-project/palisade/internal/version"
)

// errNoJail is bad input from the client (exit status 2 in the CLI).
var errNoJail = fmt.Errorf("%w: no such jail", control.ErrBadRequest)

// handler answers the control socket.
type handler struct{ d *Daemon }

func (h handler) Handle(ctx context.Context, req control.Request) (any, error) {
	d := h.d
	switch req.Verb {
	case control.VerbPing:
		return control.PingReply{Version: version.Get().Version, PID: os.Getpid(), Started: d.started}, nil
	case control.VerbStatus:
		rep, err := d.status(req.Jail)
		// The banned lists are streamed from the ban manager as the reply
		// is written, never built whole.
		return control.StatusStream{Reply: rep, Banned: d.bannedAddrs}, err
	case control.VerbBanned:
		if req.Jail != "" {
			if err := d.knownJail(req.Jail); err != nil {
				return nil, err
			}
		}
		return control.BannedStream{Bans: d.bannedSeq(d.bans.All(req.Jail))}, nil
	case control.VerbBan:
		return d.manualBan(ctx, req)
	case control.VerbUnban:
		return d.unban(ctx, req)
	case control.VerbExplain:
		return d.explain(req.Addr()), nil
	case control.VerbReload:
		return d.Reload()
	case control.VerbCloudflare:
		return d.cloudflareOp(ctx, req.Cloudflare)
	case control.VerbConfig:
		return d.configReply(), nil
	case control.VerbFleet:
		return d.fleetOp()
	}
	return nil, fmt.Errorf("unsupported verb %q", req.Verb)
}

// jail returns the running jail of that name.
func (d *Daemon) jail(name string) (*pipeline.Jail, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.jails[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", errNoJail, name)
	}
	return r, nil
}

// knownJail accepts a running jail, and a jail that is no longer running
// but still has bans (its bans stay manageable by name until lifted).
func (d *Daemon) knownJail(name string) error {
	if _, err := d.jail(name); err == nil || d.isFleetJail(name) {
		return nil
	}
	if n, _ := d.bans.Count(name); n > 0 {
		return nil
	}
	return fmt.Errorf("%w %q", errNoJail, name)
}

func entry(b ban.Entry) control.BanEntry {
	e := control.BanEntry{Jail: b.Jail, IP: banAddr(b.Prefix), Since: b.Start, Permanent: b.Permanent(), Offences: b.Offence}
	if !b.Permanent() {
		t := b.Expires
		e.Expires = &t
	}
	return e
}

func entries(bs []ban.Entry) []control.BanEntry {
	out := make([]control.BanEntry, len(bs))
	for i, b := range bs {
		out[i] = entry(b)
	}
	return out
}

// bannedSeq maps the manager's bans to reply entries as they are
// streamed (with their fleet origins when fleet-wide bans are on).
func (d *Daemon) bannedSeq(all iter.Seq[ban.Entry]) iter.Seq[control.BanEntry] {
	fleet := d.fl.enabled()
	return func(yield func(control.BanEntry) bool) {
		one := make([]control.BanEntry, 1)
		for b := range all {
			e := entry(b)
			if fleet {
				one[0] = e
				e = d.fleetEntries(one)[0]
			}
			if !yield(e) {
				return
			}
		}
	}
}

// bannedAddrs yields a jail's banned addresses as status streams them.
func (d *Daemon) bannedAddrs(jail string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for b := range d.bans.All(jail) {
			if !yield(banAddr(b.Prefix)) {
				return
			}
		}
	}
}

func banAddr(p netip.Prefix) string {
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

func (d *Daemon) sortedJails(only string) []*pipeline.Jail {
	d.mu.Lock()
	var list []*pipeline.Jail
	for name, r := range d.jails {
		if only == "" || name == only {
			list = append(list, r)
		}
	}
	d.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Name() < list[j].Name() })
	return list
}

// status is the status reply without the jails' banned lists (the
// handler streams those).
func (d *Daemon) status(only string) (control.StatusReply, error) {
	d.mu.Lock()
	rep := control.StatusReply{Backend: d.fw.Name(), ConfigDir: d.cfg.Dir, Started: d.started, ReloadError: d.reloadErr,
		Database: databaseStatus(d.bans.Health())}
	d.mu.Unlock()
	list := d.sortedJails(only)
	if only != "" && len(list) == 0 {
		return rep, fmt.Errorf("%w %q", errNoJail, only)
	}
	env := d.opts.env()
	rep.Jails = []control.JailStatus{}
	for _, r := range list {
		p := r.Plan()
		js := control.JailStatus{Name: r.Name(), Filter: p.Jail.Filter.Raw, Sources: sourcesOf(p), Watching: p.Source.Watch(),
			Error: r.Problems(), Warnings: p.SourceWarnings(env)}
		if u := p.Filter.Stock; u != nil && u.Replaced {
			js.StockReplaced = u.File
		}
		js.Settings = settingsOf(p)
		c := r.Counters()
		js.CurrentlyFailed, js.TotalFailed, js.Evicted = c.Failing, c.Failures, c.Evicted
		js.CurrentlyBanned, js.TotalBanned = d.bans.Count(r.Name())
		rep.Jails = append(rep.Jails, js)
	}
	d.addHealth(&rep)
	rep.Fleet = d.fleetSummary()
	return rep, nil
}

// settingsOf is status's settings field: the counting the jail runs with.
func settingsOf(p *pipeline.Plan) control.JailSettings {
	l := p.Logic
	s := control.JailSettings{MaxRetry: l.MaxRetry, FindTime: int64(l.FindTime / time.Second),
		BanTime: int64(l.BanTime / time.Second), IgnoreIP: []string{}, IgnoreSelf: l.IgnoreSelf}
	if l.BanTime < 0 {
		s.BanTime = -1
	}
	for _, e := range l.IgnoreIP {
		t := e.Text
		if t == "" {
			t = e.Prefix.String()
		}
		s.IgnoreIP = append(s.IgnoreIP, t)
	}
	s.IgnoreIP = append(s.IgnoreIP, l.IgnoreHosts...)
	return s
}

// databaseStatus reports the ban database's health in status.
func databaseStatus(h ban.Health) control.DatabaseStatus {
	ds := control.DatabaseStatus{OK: h.OK, Error: h.Error, Unsaved: h.Unsaved + h.PendingOffences, PendingDeletes: h.PendingDeletes}
	if !h.OK {
		since, next := h.Since, h.NextRetry
		ds.Since, ds.NextRetry = &since, &next
	}
	return ds
}

// sourcesOf is status's sources field: the file paths and globs, or
// "journal".
func sourcesOf(p *pipeline.Plan) []string {
	if p.Source.Journal {
		return []string{"journal"}
	}
	return append([]string{}, p.Source.Files...)
}

func (d *Daemon) manualBan(ctx context.Context, req control.Request) (control.BanReply, error) {
	r, err := d.jail(req.Jail)
	if err != nil {
		return control.BanReply{}, err
	}
	// Validated: an address or a network that may be an attacker's
	// (control.ParseTarget refuses loopback, multicast, ...).
	p := req.Target()
	if !p.IsValid() {
		return control.BanReply{}, fmt.Errorf("%w: invalid address %q", control.ErrBadRequest, req.IP)
	}
	a := p.Addr()
	var dur time.Duration
	if p.IsSingleIP() {
		ex := r.Explain(a, d.now())
		if ex.Ignore != nil {
			return control.BanReply{}, fmt.Errorf("%s is exempt in jail %s (%s %s): not banned", a, req.Jail, ex.Ignore.Rule, ex.Ignore.Entry)
		}
		dur = ex.NextBanTime
		// The jail's ipv4prefix/ipv6prefix: a manual ban covers what an
		// automatic one would, unless that network holds an exempt address.
		if k := r.Logic().KeyOf(a); k.IsValid() && k.Bits() < p.Bits() && r.Logic().ExemptOverlap(k) == nil {
			p = k
		}
	} else {
		if m := r.Logic().ExemptOverlap(p); m != nil {
			return control.BanReply{}, fmt.Errorf("%s covers an address exempt in jail %s (%s %s): not banned", p, req.Jail, m.Rule, m.Entry)
		}
		dur = r.Explain(a, d.now()).NextBanTime
	}
	if req.For != "" {
		dur, err = duration.Parse(req.For)
		if err != nil {
			return control.BanReply{}, fmt.Errorf("%w: %v", control.ErrBadRequest, err)
		}
		if dur == 0 {
			return control.BanReply{}, fmt.Errorf("%w: ban duration must not be 0", control.ErrBadRequest)
		}
	}
	res := d.bans.BanMany(ctx, []ban.Request{{Jail: req.Jail, Prefix: p, Duration: dur, Reason: "manual", Origin: ban.OriginManual}})
	b, err := res[0].Entry, res[0].Err
	if errors.Is(err, ban.ErrNotAttacker) {
		return control.BanReply{}, fmt.Errorf("%w: %v", control.ErrBadRequest, err)
	}
	if err != nil && !errors.Is(err, ban.ErrAlreadyBanned) && !errors.Is(err, ban.ErrNotEnforced) {
		return control.BanReply{}, err
	}
	return control.BanReply{Ban: entry(b)}, nil
}

func (d *Daemon) unban(ctx context.Context, req control.Request) (control.UnbanReply, error) {
	if req.All {
		if req.Jail != "" {
			if err := d.knownJail(req.Jail); err != nil {
				return control.UnbanReply{}, err
			}
		}
		n, err := d.bans.UnbanAll(ctx, req.Jail)
		return control.UnbanReply{Removed: n}, err
	}
	if req.Jail != "" {
		if err := d.knownJail(req.Jail); err != nil {
			return control.UnbanReply{}, err
		}
	}
	target := req.Target()
	if !target.IsValid() {
		return control.UnbanReply{}, fmt.Errorf("%w: invalid address %q", control.ErrBadRequest, req.IP)
	}
	n := 0
	// An address lifts the ban of the address or of its aggregate prefix;
	// a network lifts the ban of exactly that network. No jail: in every
	// jail (fail2ban's "unban IP").
	for _, b := range d.bans.Find(target.Addr()) {
		if req.Jail != "" && b.Jail != req.Jail || !target.IsSingleIP() && b.Prefix != target {
			continue
		}
		_, err := d.bans.Unban(ctx, b.Jail, b.Prefix)
		if errors.Is(err, ban.ErrNotBanned) {
			continue
		}
		if err != nil {
			return control.UnbanReply{Removed: n}, err
		}
		n++
		if r, _ := d.jail(b.Jail); r != nil {
			r.Logic().Forget(b.Prefix)
		}
	}
	return control.UnbanReply{Removed: n}, nil
}

func (d *Daemon) explain(a netip.Addr) control.ExplainReply {
	rep := control.ExplainReply{IP: a.String(), Banned: d.fleetEntries(entries(d.bans.Find(a))), Jails: []control.JailExplain{}, Fleet: d.fleetExplain(a)}
	now := d.now()
	for _, r := range d.sortedJails("") {
		ex := r.Explain(a, now)
		je := control.JailExplain{
			Jail: r.Name(), Failures: ex.Counting, MaxRetry: ex.MaxRetry, FindTime: ex.FindTime.String(),
			NextBanTime: pipeline.DurationText(ex.NextBanTime), Lines: []control.ExplainLine{},
		}
		if ex.Ignore != nil {
			je.Ignored, je.IgnoreRule = true, ex.Ignore.Rule+" "+ex.Ignore.Entry
		}
		if n, _, err := d.bans.Offences(r.Name(), netip.PrefixFrom(a, a.BitLen()), false); err == nil {
			je.Offences = n
		}
		// Pair the kept matched lines with the counted failures (both
		// oldest first; the jail keeps at most maxmatches lines).
		var counted []jail.FailureRecord
		for _, f := range ex.Failures {
			if f.InWindow {
				counted = append(counted, f)
			}
		}
		off := len(counted) - len(ex.Matches)
		for i, m := range ex.Matches {
			l := control.ExplainLine{Line: m}
			if k := off + i; k >= 0 && k < len(counted) {
				l.Time = counted[k].Time
				l.Rule = fmt.Sprintf("failregex #%d", counted[k].Regex)
			}
			je.Lines = append(je.Lines, l)
		}
		rep.Jails = append(rep.Jails, je)
	}
	return rep
}

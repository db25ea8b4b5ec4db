package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"

	"github.com/palisade-project/palisade/internal/ban"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/jail"
	"github.com/palisade-project/palisade/internal/version"
)

// handler answers the control socket.
type handler struct{ d *Daemon }

func (h handler) Handle(ctx context.Context, req control.Request) (any, error) {
	d := h.d
	switch req.Verb {
	case control.VerbPing:
		return control.PingReply{Version: version.Get().Version, PID: os.Getpid(), Started: d.started}, nil
	case control.VerbStatus:
		return d.status(req.Jail)
	case control.VerbBanned:
		if req.Jail != "" {
			if _, err := d.jail(req.Jail); err != nil {
				return nil, err
			}
		}
		return control.BannedReply{Bans: entries(d.bans.List(req.Jail))}, nil
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
	}
	return nil, fmt.Errorf("unsupported verb %q", req.Verb)
}

func (d *Daemon) jail(name string) (*jailRT, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.jails[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", errNoJail, name)
	}
	return r, nil
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

func (d *Daemon) status(only string) (control.StatusReply, error) {
	d.mu.Lock()
	rep := control.StatusReply{Backend: d.fw.Name(), ConfigDir: d.cfg.Dir, Started: d.started, ReloadError: d.reloadErr}
	var list []*jailRT
	for name, r := range d.jails {
		if only == "" || name == only {
			list = append(list, r)
		}
	}
	d.mu.Unlock()
	if only != "" && len(list) == 0 {
		return rep, fmt.Errorf("%w %q", errNoJail, only)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].cfg.Name < list[j].cfg.Name })
	rep.Jails = []control.JailStatus{}
	for _, r := range list {
		js := control.JailStatus{Name: r.cfg.Name, Filter: r.cfg.Filter.Raw, Sources: r.sources, Error: r.errorText(), Banned: []string{}}
		if js.Sources == nil {
			js.Sources = []string{}
		}
		if r.jail != nil {
			st := r.jail.Stats()
			js.CurrentlyFailed, js.TotalFailed = st.Tracked, st.Failures
		}
		js.CurrentlyBanned, js.TotalBanned = d.bans.Count(r.cfg.Name)
		for _, b := range d.bans.List(r.cfg.Name) {
			js.Banned = append(js.Banned, banAddr(b.Prefix))
		}
		rep.Jails = append(rep.Jails, js)
	}
	d.addHealth(&rep)
	return rep, nil
}

func (d *Daemon) manualBan(ctx context.Context, req control.Request) (control.BanReply, error) {
	r, err := d.jail(req.Jail)
	if err != nil {
		return control.BanReply{}, err
	}
	a := req.Addr()
	if r.jail == nil {
		return control.BanReply{}, fmt.Errorf("jail %s is not working: %s", req.Jail, r.errorText())
	}
	ex := r.jail.Explain(a, d.now())
	if ex.Ignore != nil {
		return control.BanReply{}, fmt.Errorf("%s is exempt in jail %s (%s %s): not banned", a, req.Jail, ex.Ignore.Rule, ex.Ignore.Entry)
	}
	dur := ex.NextBanTime
	if req.For != "" {
		dur, err = jail.ParseDuration(req.For)
		if err != nil {
			return control.BanReply{}, fmt.Errorf("%w: %v", control.ErrBadRequest, err)
		}
		if dur == 0 {
			return control.BanReply{}, fmt.Errorf("%w: ban duration must not be 0", control.ErrBadRequest)
		}
	}
	p := netip.PrefixFrom(a, a.BitLen())
	b, err := d.bans.Ban(ctx, req.Jail, p, dur, "manual")
	if err != nil && !errors.Is(err, ban.ErrAlreadyBanned) && !errors.Is(err, ban.ErrNotEnforced) {
		return control.BanReply{}, err
	}
	return control.BanReply{Ban: entry(b)}, nil
}

func (d *Daemon) unban(ctx context.Context, req control.Request) (control.UnbanReply, error) {
	if req.All {
		if req.Jail != "" {
			if _, err := d.jail(req.Jail); err != nil {
				return control.UnbanReply{}, err
			}
		}
		n, err := d.bans.UnbanAll(ctx, req.Jail)
		return control.UnbanReply{Removed: n}, err
	}
	r, err := d.jail(req.Jail)
	if err != nil {
		return control.UnbanReply{}, err
	}
	a := req.Addr()
	n := 0
	// The ban may be of the address or of its aggregate prefix.
	for _, b := range d.bans.Find(a) {
		if b.Jail != req.Jail {
			continue
		}
		_, err := d.bans.Unban(ctx, req.Jail, b.Prefix)
		if errors.Is(err, ban.ErrNotBanned) {
			continue
		}
		if err != nil {
			return control.UnbanReply{Removed: n}, err
		}
		n++
		if r.jail != nil {
			r.jail.Forget(b.Prefix)
		}
	}
	return control.UnbanReply{Removed: n}, nil
}

func (d *Daemon) explain(a netip.Addr) control.ExplainReply {
	rep := control.ExplainReply{IP: a.String(), Banned: entries(d.bans.Find(a)), Jails: []control.JailExplain{}}
	d.mu.Lock()
	var list []*jailRT
	for _, r := range d.jails {
		list = append(list, r)
	}
	d.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].cfg.Name < list[j].cfg.Name })
	now := d.now()
	for _, r := range list {
		if r.jail == nil {
			continue
		}
		ex := r.jail.Explain(a, now)
		je := control.JailExplain{
			Jail: r.cfg.Name, Failures: ex.Counting, MaxRetry: ex.MaxRetry, FindTime: ex.FindTime.String(),
			NextBanTime: durText(ex.NextBanTime), Lines: []control.ExplainLine{},
		}
		if ex.Ignore != nil {
			je.Ignored, je.IgnoreRule = true, ex.Ignore.Rule+" "+ex.Ignore.Entry
		}
		if n, _, err := d.bans.Offences(r.cfg.Name, netip.PrefixFrom(a, a.BitLen()), false); err == nil {
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

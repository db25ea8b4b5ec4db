package notify

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Report types.
const (
	ReportEvents = "events"
	ReportDigest = "digest"
	ReportTest   = "test"
)

// ReportVersion is the version of the JSON webhook payload.
const ReportVersion = 1

// MaxLineLen caps one matched log line in a message (bytes, before
// escaping).
const MaxLineLen = 300

// Report is one message: what the JSON webhook posts, and what mail,
// Slack and ntfy messages are rendered from.
type Report struct {
	Version int    `json:"version"`
	Host    string `json:"host"`
	Route   string `json:"route"`
	// Type is ReportEvents, ReportDigest or ReportTest.
	Type    string    `json:"type"`
	Subject string    `json:"subject"`
	Sent    time.Time `json:"sent"`
	// Since and Until bound the events' times (the digest's period).
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// Total is the number of events this report stands for.
	Total  int         `json:"total"`
	Counts Counts      `json:"counts"`
	Jails  []JailCount `json:"jails"`
	// Events are the first events in detail; Omitted counts the rest.
	Events  []EventView `json:"events"`
	Omitted int         `json:"omitted"`
	// Top are a digest's most banned addresses.
	Top []AddrCount `json:"top,omitempty"`

	loc *time.Location
}

// Counts are a report's events by kind. Escalations are bans too.
type Counts struct {
	Bans        int `json:"bans"`
	Unbans      int `json:"unbans"`
	Escalations int `json:"escalations"`
	Problems    int `json:"problems"`
	Recoveries  int `json:"recoveries"`
	Starts      int `json:"starts"`
	Stops       int `json:"stops"`
}

func (c *Counts) add(ev Event) {
	switch ev.Kind {
	case KindBan:
		c.Bans++
		if ev.Escalated {
			c.Escalations++
		}
	case KindUnban:
		c.Unbans++
	case KindProblem:
		c.Problems++
	case KindRecovery:
		c.Recoveries++
	case KindStart:
		c.Starts++
	case KindStop:
		c.Stops++
	}
}

// JailCount is one jail's bans and unbans in a report.
type JailCount struct {
	Jail   string `json:"jail"`
	Bans   int    `json:"bans"`
	Unbans int    `json:"unbans"`
}

// AddrCount is an address and its number of bans.
type AddrCount struct {
	IP   string `json:"ip"`
	Bans int    `json:"bans"`
}

// EventView is one event in a report.
type EventView struct {
	Kind string    `json:"kind"`
	Time time.Time `json:"time"`
	Jail string    `json:"jail,omitempty"`
	IP   string    `json:"ip,omitempty"`
	// BanTime is "1h0m0s" or "permanent"; BanSeconds is -1 when permanent.
	BanTime    string     `json:"bantime,omitempty"`
	BanSeconds int64      `json:"bantime_seconds,omitempty"`
	Expires    *time.Time `json:"expires,omitempty"`
	Offence    int        `json:"offence,omitempty"`
	Escalated  bool       `json:"escalated,omitempty"`
	Manual     bool       `json:"manual,omitempty"`
	Cause      string     `json:"cause,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	Problem    string     `json:"problem,omitempty"`
	Lines      []string   `json:"lines,omitempty"`
}

// Addr renders a prefix as an address when it is a single one.
func Addr(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// BanTimeText renders a ban length.
func BanTimeText(d time.Duration) string {
	if d < 0 {
		return "permanent"
	}
	return d.String()
}

func (r *route) view(ev Event) EventView {
	v := EventView{Kind: ev.Kind.String(), Time: ev.Time, Jail: Clean(ev.Jail, 64), IP: Addr(ev.Prefix),
		Offence: ev.Offence, Escalated: ev.Escalated, Manual: ev.Manual, Cause: Clean(ev.Cause, 32),
		Reason: Clean(ev.Reason, 200), Problem: Clean(ev.Problem, 400)}
	if ev.Kind == KindBan {
		v.BanTime = BanTimeText(ev.BanTime)
		v.BanSeconds = int64(ev.BanTime / time.Second)
		if ev.BanTime < 0 {
			v.BanSeconds = -1
		}
		if !ev.Expires.IsZero() {
			t := ev.Expires
			v.Expires = &t
		}
		if r.cfg.Lines {
			for i, l := range ev.Lines {
				if i == r.cfg.MaxLines {
					break
				}
				v.Lines = append(v.Lines, Clean(l, MaxLineLen))
			}
		}
	}
	return v
}

// report turns a batch into a message.
func (r *route) report(b *batch, typ string, now time.Time) *Report {
	rep := &Report{Version: ReportVersion, Host: r.n.host, Route: r.cfg.Name, Type: typ, Sent: now,
		Since: b.first, Until: b.last, Total: b.total, Counts: b.counts, Jails: jailList(b.jails),
		Omitted: b.omitted, Events: make([]EventView, 0, len(b.items)), loc: r.n.loc}
	for _, ev := range b.items {
		rep.Events = append(rep.Events, r.view(ev))
	}
	if typ == ReportTest {
		rep.Total = 0
	}
	rep.Subject = r.cfg.SubjectPrefix + " " + rep.subject()
	return rep
}

func (r *route) digestReport(now time.Time) *Report {
	d := r.digest
	rep := &Report{Version: ReportVersion, Host: r.n.host, Route: r.cfg.Name, Type: ReportDigest, Sent: now,
		Since: d.since, Until: now, Total: d.bans + d.unbans, Counts: Counts{Bans: d.bans, Unbans: d.unbans},
		Jails: jailList(d.jails), Events: []EventView{}, loc: r.n.loc}
	for p, n := range d.addrs {
		rep.Top = append(rep.Top, AddrCount{IP: Addr(p), Bans: n})
	}
	sort.Slice(rep.Top, func(i, j int) bool {
		if rep.Top[i].Bans != rep.Top[j].Bans {
			return rep.Top[i].Bans > rep.Top[j].Bans
		}
		return rep.Top[i].IP < rep.Top[j].IP
	})
	if len(rep.Top) > 10 {
		rep.Top = rep.Top[:10]
	}
	rep.Subject = r.cfg.SubjectPrefix + " " + rep.subject()
	return rep
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// subject is a one-line summary (without the route's prefix).
func (rep *Report) subject() string {
	h := rep.Host
	switch rep.Type {
	case ReportTest:
		return h + ": test message"
	case ReportDigest:
		return fmt.Sprintf("%s: daily digest: %s, %s", h, plural(rep.Counts.Bans, "ban", "bans"), plural(rep.Counts.Unbans, "unban", "unbans"))
	}
	if rep.Total == 1 && len(rep.Events) == 1 {
		e := rep.Events[0]
		switch e.Kind {
		case "ban":
			what := "banned"
			if e.Escalated {
				what = "banned again (escalated)"
			}
			return fmt.Sprintf("%s: %s %s in %s for %s", h, what, e.IP, e.Jail, e.BanTime)
		case "unban":
			return fmt.Sprintf("%s: unbanned %s in %s", h, e.IP, e.Jail)
		case "health":
			return fmt.Sprintf("%s: PROBLEM in jail %s: %s", h, e.Jail, e.Problem)
		case "recovery":
			return fmt.Sprintf("%s: RECOVERED jail %s", h, e.Jail)
		case "start":
			return h + ": palisade started"
		case "stop":
			return h + ": palisade stopping"
		}
	}
	var parts []string
	c := rep.Counts
	if c.Problems > 0 {
		parts = append(parts, plural(c.Problems, "PROBLEM", "PROBLEMS"))
	}
	if c.Recoveries > 0 {
		parts = append(parts, plural(c.Recoveries, "recovery", "recoveries"))
	}
	if c.Bans > 0 {
		parts = append(parts, plural(c.Bans, "ban", "bans"))
	}
	if c.Unbans > 0 {
		parts = append(parts, plural(c.Unbans, "unban", "unbans"))
	}
	if c.Starts > 0 {
		parts = append(parts, "started")
	}
	if c.Stops > 0 {
		parts = append(parts, "stopping")
	}
	s := h + ": " + strings.Join(parts, ", ")
	if len(rep.Jails) > 0 {
		var js []string
		for i, j := range rep.Jails {
			if i == 5 {
				js = append(js, "…")
				break
			}
			js = append(js, fmt.Sprintf("%s %d", j.Jail, j.Bans+j.Unbans))
		}
		s += " (" + strings.Join(js, ", ") + ")"
	}
	return s
}

func (rep *Report) tm(t time.Time) string {
	loc := rep.loc
	if loc == nil {
		loc = time.Local
	}
	return t.In(loc).Format("2006-01-02 15:04:05 MST")
}

// Text renders the report as plain text (mail bodies, ntfy, Slack).
func (rep *Report) Text() string {
	var b strings.Builder
	switch rep.Type {
	case ReportTest:
		fmt.Fprintf(&b, "This is a test message from palisade on %s, route %q.\n", rep.Host, rep.Route)
		fmt.Fprintf(&b, "If you read this, notifications through this route work.\n")
		return b.String()
	case ReportDigest:
		fmt.Fprintf(&b, "palisade on %s, %s to %s:\n\n", rep.Host, rep.tm(rep.Since), rep.tm(rep.Until))
		fmt.Fprintf(&b, "  bans:   %d\n  unbans: %d\n", rep.Counts.Bans, rep.Counts.Unbans)
		rep.jailTable(&b)
		if len(rep.Top) > 0 {
			b.WriteString("\nMost banned addresses:\n")
			for _, t := range rep.Top {
				fmt.Fprintf(&b, "  %-40s %d\n", t.IP, t.Bans)
			}
		}
		return b.String()
	}
	if rep.Total == 1 && len(rep.Events) == 1 {
		rep.eventText(&b, rep.Events[0], true)
		return b.String()
	}
	fmt.Fprintf(&b, "palisade on %s, %s to %s: %s.\n", rep.Host, rep.tm(rep.Since), rep.tm(rep.Until), strings.TrimPrefix(rep.subject(), rep.Host+": "))
	c := rep.Counts
	fmt.Fprintf(&b, "\n  total events: %d\n", rep.Total)
	for _, kv := range []struct {
		k string
		v int
	}{{"bans", c.Bans}, {"escalated", c.Escalations}, {"unbans", c.Unbans}, {"problems", c.Problems}, {"recoveries", c.Recoveries}} {
		if kv.v > 0 {
			fmt.Fprintf(&b, "  %-12s %d\n", kv.k+":", kv.v)
		}
	}
	rep.jailTable(&b)
	b.WriteString("\n")
	for _, e := range rep.Events {
		rep.eventText(&b, e, false)
	}
	if rep.Omitted > 0 {
		fmt.Fprintf(&b, "… and %d more (palisade banned --json lists every active ban).\n", rep.Omitted)
	}
	return b.String()
}

func (rep *Report) jailTable(b *strings.Builder) {
	if len(rep.Jails) == 0 {
		return
	}
	b.WriteString("\n  jail                         bans  unbans\n")
	for _, j := range rep.Jails {
		fmt.Fprintf(b, "  %-26s %6d %7d\n", j.Jail, j.Bans, j.Unbans)
	}
}

func (rep *Report) eventText(b *strings.Builder, e EventView, alone bool) {
	switch e.Kind {
	case "ban":
		if alone {
			fmt.Fprintf(b, "palisade on %s banned %s in jail %s.\n\n", rep.Host, e.IP, e.Jail)
			fmt.Fprintf(b, "  address:  %s\n  jail:     %s\n  host:     %s\n  banned:   %s\n", e.IP, e.Jail, rep.Host, rep.tm(e.Time))
			if e.Expires != nil {
				fmt.Fprintf(b, "  ban time: %s (until %s)\n", e.BanTime, rep.tm(*e.Expires))
			} else {
				fmt.Fprintf(b, "  ban time: %s\n", e.BanTime)
			}
			if e.Offence > 0 {
				esc := ""
				if e.Escalated {
					esc = " (ban time escalated)"
				}
				fmt.Fprintf(b, "  offence:  %d%s\n", e.Offence, esc)
			}
			if e.Manual {
				b.WriteString("  manual:   yes (palisade ban)\n")
			}
			if e.Reason != "" && !e.Manual {
				fmt.Fprintf(b, "  reason:   %s\n", e.Reason)
			}
		} else {
			extra := ""
			if e.Escalated {
				extra = ", escalated"
			}
			if e.Manual {
				extra += ", manual"
			}
			fmt.Fprintf(b, "%s  ban    %-39s %-16s %s (offence %d%s)\n", rep.tm(e.Time), e.IP, e.Jail, e.BanTime, e.Offence, extra)
		}
		if len(e.Lines) > 0 {
			b.WriteString("    matched lines (from the log, escaped):\n")
			for _, l := range e.Lines {
				fmt.Fprintf(b, "    | %s\n", l)
			}
		}
	case "unban":
		if alone {
			fmt.Fprintf(b, "palisade on %s lifted the ban of %s in jail %s (%s) at %s.\n", rep.Host, e.IP, e.Jail, e.Cause, rep.tm(e.Time))
		} else {
			fmt.Fprintf(b, "%s  unban  %-39s %-16s %s\n", rep.tm(e.Time), e.IP, e.Jail, e.Cause)
		}
	case "health":
		if alone {
			fmt.Fprintf(b, "palisade on %s found a problem in jail %s at %s:\n\n  %s\n\n", rep.Host, e.Jail, rep.tm(e.Time), e.Problem)
			b.WriteString("The jail may not be protecting this host. palisade status shows its health;\na recovery message follows when the problem is gone.\n")
			return
		}
		fmt.Fprintf(b, "%s  PROBLEM in jail %s: %s\n", rep.tm(e.Time), e.Jail, e.Problem)
	case "recovery":
		if alone {
			fmt.Fprintf(b, "palisade on %s: jail %s recovered at %s from:\n\n  %s\n", rep.Host, e.Jail, rep.tm(e.Time), e.Problem)
			return
		}
		fmt.Fprintf(b, "%s  RECOVERED jail %s: %s\n", rep.tm(e.Time), e.Jail, e.Problem)
	case "start":
		fmt.Fprintf(b, "%s  palisade started on %s\n", rep.tm(e.Time), rep.Host)
	case "stop":
		fmt.Fprintf(b, "%s  palisade stopping on %s\n", rep.tm(e.Time), rep.Host)
	}
}

// Clean makes untrusted text safe for a message: invalid UTF-8 becomes
// U+FFFD, control characters (newlines included) and the Unicode
// bidirectional overrides become \xNN or \u{NNNN} escapes, and the
// result is cut to at most max bytes of input (marked with "…").
func Clean(s string, max int) string {
	cut := false
	if len(s) > max {
		s, cut = s[:max], true
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			if cut && len(s)-i < utf8.UTFMax && !utf8.FullRuneInString(s[i:]) {
				i = len(s) // a rune cut in half by the cap
				continue
			}
			b.WriteRune(utf8.RuneError)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && r < 0xa0, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x2028, r == 0x2029, r == 0xfeff:
			fmt.Fprintf(&b, `\u{%04x}`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	if cut {
		b.WriteString("…")
	}
	return b.String()
}

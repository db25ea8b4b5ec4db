package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/config/ini"
	"github.com/palisade-project/palisade/internal/datetime"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/source"
	"github.com/palisade-project/palisade/internal/source/journal"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// buildJail reads one jail section into typed values. Disabled jails are
// not read further (as in fail2ban), so a half-written disabled jail is no
// error.
func buildJail(c *ini.Config, name string, services firewall.Services) (Jail, ErrorList, []string) {
	r := &reader{c: c, section: name}
	j := Jail{Name: name}
	if v, ok := c.Raw(name, "enabled"); ok {
		j.Where, j.File, j.Line = v.Where(), v.File, v.Line
	}
	if err := firewall.CheckJailName(name); err != nil {
		r.errs = append(r.errs, &Error{File: j.File, Line: j.Line, Section: name, Msg: err.Error()})
	}
	j.Enabled = r.boolean("enabled", false)
	if !j.Enabled {
		return j, r.errs, r.warns
	}
	r.filterRef(&j)
	r.source(&j)
	r.scope(&j, services)
	r.counting(&j)
	r.ignore(&j)
	r.actions(&j)
	j.DatePattern = r.str("datepattern", "")
	if j.DatePattern != "" {
		if _, err := datetime.New(j.DatePattern, time.UTC); err != nil {
			r.fail("datepattern", "%v", err)
		}
	}
	j.LogEncoding = r.encoding("logencoding")
	if s := r.str("logtimezone", ""); s != "" {
		if loc, err := time.LoadLocation(s); err != nil {
			r.fail("logtimezone", "unknown time zone %q", s)
		} else {
			j.LogTimezone = loc
		}
	}
	// every option, known or not
	keys, _ := c.Options(name, true)
	j.Options = make(map[string]string, len(keys))
	for _, k := range keys {
		if v, err := c.GetEx(name, k, nil); err == nil {
			j.Options[k] = v
		}
	}
	return j, r.errs, r.warns
}

func (r *reader) filterRef(j *Jail) {
	raw := r.str("filter", "")
	if raw == "" {
		r.fail("filter", "an enabled jail needs a filter")
		return
	}
	fname, args, err := ini.ExtractOptions(raw)
	if err != nil {
		r.fail("filter", "%v", err)
	}
	j.Filter = FilterRef{Name: strings.TrimSpace(fname), Args: args, Raw: raw}
	if j.Filter.Name == "" {
		r.fail("filter", "empty filter name in %q", raw)
	}
}

// userSet reports whether key is set (in the jail's section or in
// DEFAULT) by a file other than palisade's built-in configuration.
func (r *reader) userSet(key string) bool {
	v, ok := r.c.Raw(r.section, key)
	return ok && !strings.HasPrefix(v.File, BuiltinName)
}

func (r *reader) source(j *Jail) {
	b, err := source.ParseBackend(r.str("backend", "auto"))
	if err != nil {
		r.fail("backend", "%v", err)
	}
	src := Source{Backend: b.Name, Journal: b.Kind == source.BackendSystemd}
	for k, v := range b.Options {
		switch k {
		case "journalpath":
			if !filepath.IsAbs(v) {
				r.fail("backend", "journalpath %q is not an absolute path", v)
			}
			src.JournalPath = v
		case "journalfiles":
			src.JournalFiles = strings.Fields(v)
			for _, f := range src.JournalFiles {
				if !filepath.IsAbs(f) {
					r.fail("backend", "journalfiles %q is not an absolute path", f)
				}
			}
		case "journalflags", "namespace":
			r.warns = append(r.warns, fmt.Sprintf("jail %s: backend option %s is accepted and ignored", j.Name, k))
		default:
			r.fail("backend", "unknown backend option %q (want journalpath, journalfiles)", k)
		}
	}
	if !src.Journal && len(b.Options) > 0 && (src.JournalPath != "" || src.JournalFiles != nil) {
		r.fail("backend", "journalpath and journalfiles need backend = systemd")
	}
	for _, line := range strings.Split(r.str("logpath", ""), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		lp := LogPath{Pattern: line}
		if i := strings.LastIndexAny(line, " \t"); i > 0 {
			switch strings.ToLower(line[i+1:]) {
			case "head":
				lp = LogPath{Pattern: strings.TrimSpace(line[:i])}
			case "tail":
				lp = LogPath{Pattern: strings.TrimSpace(line[:i]), Tail: true}
			}
		}
		if !filepath.IsAbs(lp.Pattern) {
			r.fail("logpath", "%q is not an absolute path", lp.Pattern)
			continue
		}
		if _, err := filepath.Match(lp.Pattern, ""); err != nil {
			r.fail("logpath", "%q: %v", lp.Pattern, err)
			continue
		}
		src.Files = append(src.Files, lp)
	}
	if !src.Journal && len(src.Files) == 0 && err == nil {
		r.fail("logpath", "backend %s needs a logpath", b.Name)
	}
	if src.Journal {
		// The journal has no log files: a logpath is not read (fail2ban
		// ignores it too).
		src.Files = nil
	}
	src.JournalMatch = JournalMatchLines(r.str("journalmatch", ""))
	if src.JournalMatch != "" {
		if _, err := journal.ParseMatch(src.JournalMatch); err != nil {
			r.fail("journalmatch", "%v", err)
		}
	}
	src.JournalFallback = b.Kind == source.BackendAuto && !r.userSet("backend") && !r.userSet("logpath")
	j.Source = src
}

// JournalMatchLines normalises a journalmatch value the way fail2ban
// reads it: each non-empty line is one alternative ("addjournalmatch"
// per line, ORed with the others; within a line, words are ANDed and "+"
// separates further alternatives), so lines are kept, trimmed, and empty
// ones dropped. Words are not re-split: a quoted value may hold blanks.
func JournalMatchLines(v string) string {
	var lines []string
	for ln := range strings.SplitSeq(v, "\n") {
		if ln = strings.TrimSpace(ln); ln != "" {
			lines = append(lines, ln)
		}
	}
	return strings.Join(lines, "\n")
}

func (r *reader) scope(j *Jail, services firewall.Services) {
	j.Protocol = strings.ToLower(r.str("protocol", "tcp"))
	switch j.Protocol {
	case "tcp", "udp", "sctp", "all":
	default:
		r.fail("protocol", "unknown protocol %q (want tcp, udp, sctp or all)", j.Protocol)
	}
	j.PortSpec = r.str("port", "")
	proto := j.Protocol
	if proto == "all" || proto == "sctp" {
		proto = "tcp"
	}
	if ports, err := firewall.ParsePorts(j.PortSpec, proto, services); err != nil {
		r.fail("port", "%v", err)
	} else {
		j.Ports = ports
	}
	if s := r.str("blocktype", ""); s != "" {
		if bt, ok := parseBlock(s); ok {
			j.BlockType = bt
		} else if strings.HasPrefix(s, "<") || strings.Contains(s, "%") {
			// An action's own blocktype template: leave it to the action.
		} else {
			r.warns = append(r.warns, fmt.Sprintf("jail %s: blocktype %q is not reject or drop; using the daemon default", j.Name, s))
		}
	}
}

func (r *reader) counting(j *Jail) {
	j.MaxRetry = r.integer("maxretry", 5, 1, 1000000)
	j.FindTime = r.duration("findtime", 10*time.Minute, false)
	if j.FindTime == 0 {
		r.fail("findtime", "must be longer than 0")
	}
	j.BanTime = r.duration("bantime", 10*time.Minute, true)
	if j.BanTime == 0 {
		r.fail("bantime", "must be longer than 0 (or -1 for permanent)")
	}
	j.MaxMatches = r.integer("maxmatches", j.MaxRetry, 0, 1000)
	j.FailTableSize = r.integer("failtable.size", DefaultFailTableSize, 1, 100000000)
	j.MaxBans = r.integer("maxbans", DefaultMaxBans, 0, 100000000)
	j.IPv4Prefix = r.integer("ipv4prefix", 32, 8, 32)
	j.IPv6Prefix = r.integer("ipv6prefix", 128, 16, 128)

	j.Increment = Increment{
		Enabled:      r.boolean("bantime.increment", false),
		Factor:       r.float("bantime.factor", 1),
		Formula:      r.str("bantime.formula", ""),
		MaxTime:      r.duration("bantime.maxtime", 0, false),
		RndTime:      r.duration("bantime.rndtime", 0, false),
		OverallJails: r.boolean("bantime.overalljails", false),
	}
	if s := r.str("bantime.multipliers", ""); s != "" {
		for _, f := range strings.Fields(s) {
			m, err := strconv.ParseFloat(f, 64)
			if err != nil || m <= 0 || m > 1e9 {
				r.fail("bantime.multipliers", "%q is not a positive number", f)
				break
			}
			j.Increment.Multipliers = append(j.Increment.Multipliers, m)
		}
	}
	if j.Increment.Enabled && j.Increment.Formula != "" && len(j.Increment.Multipliers) == 0 {
		r.warns = append(r.warns, fmt.Sprintf("jail %s: bantime.formula is not evaluated; palisade uses bantime * factor * 2^(n-1)", j.Name))
	}
}

func (r *reader) ignore(j *Jail) {
	j.IgnoreSelf = r.boolean("ignoreself", true)
	if s := r.str("ignorecommand", ""); s != "" {
		argv, err := sysexec.SplitArgs(s)
		switch {
		case err != nil:
			r.fail("ignorecommand", "%v", err)
		case len(argv) == 0:
			r.fail("ignorecommand", "empty command")
		default:
			j.IgnoreCommand = argv
		}
	}
	for _, item := range strings.FieldsFunc(r.str("ignoreip", ""), func(c rune) bool {
		return c == ' ' || c == ',' || c == '\t' || c == '\n' || c == '\r'
	}) {
		e, err := parseIgnore(item)
		if err != nil {
			r.fail("ignoreip", "%v", err)
			continue
		}
		j.IgnoreIP = append(j.IgnoreIP, e)
	}
	j.UseDNS = strings.ToLower(r.str("usedns", "warn"))
	switch j.UseDNS {
	case "yes", "warn", "no", "raw":
	default:
		r.fail("usedns", "%q: want yes, warn, no or raw", j.UseDNS)
	}
}

func (r *reader) actions(j *Jail) {
	parse := func(key, entry string) (ActionRef, bool) {
		name, args, err := ini.ExtractOptions(strings.TrimSpace(entry))
		if err != nil {
			r.fail(key, "%v", err)
			return ActionRef{}, false
		}
		a := ActionRef{Name: strings.TrimSpace(name), Raw: strings.TrimSpace(entry)}
		for _, o := range args {
			a.Args = append(a.Args, ini.Option{Name: strings.ToLower(strings.TrimSpace(o.Name)), Value: o.Value})
		}
		if a.Name == "" {
			r.fail(key, "empty action name in %q", entry)
			return ActionRef{}, false
		}
		return a, true
	}
	if s := r.str("banaction", ""); s != "" {
		if a, ok := parse("banaction", s); ok {
			j.BanAction = &a
		}
	}
	if s := r.str("action", ""); s != "" {
		items, err := ini.SplitWithOptions(s)
		if err != nil {
			r.fail("action", "%v", err)
			return
		}
		for _, it := range items {
			if strings.TrimSpace(it) == "" {
				continue
			}
			if a, ok := parse("action", it); ok {
				j.Actions = append(j.Actions, a)
			}
		}
	}
}

func (r *reader) encoding(key string) Encoding {
	s := strings.ToLower(strings.TrimSpace(r.str(key, "auto")))
	switch strings.ReplaceAll(s, "_", "-") {
	case "", "auto", "utf-8", "utf8", "ascii", "us-ascii":
		return EncodingUTF8
	case "latin-1", "latin1", "iso-8859-1", "iso8859-1", "l1", "cp819":
		return EncodingLatin1
	}
	r.fail(key, "unsupported encoding %q (want auto, utf-8, ascii or latin-1)", s)
	return EncodingUTF8
}

// parseIgnore reads one ignoreip item: an address, a CIDR prefix, an
// IPv4 network with a dotted mask (192.0.2.0/255.255.255.0) or a host name.
func parseIgnore(s string) (IgnoreEntry, error) {
	canon := func(p netip.Prefix) netip.Prefix {
		if a := p.Addr(); a.Is4In6() {
			p = netip.PrefixFrom(a.Unmap(), max(p.Bits()-96, 0))
		}
		return netip.PrefixFrom(p.Addr().WithZone(""), p.Bits()).Masked()
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return IgnoreEntry{Prefix: canon(p), Text: s}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap().WithZone("")
		return IgnoreEntry{Prefix: netip.PrefixFrom(a, a.BitLen()), Text: s}, nil
	}
	if i := strings.IndexByte(s, '/'); i > 0 {
		a, err1 := netip.ParseAddr(s[:i])
		m, err2 := netip.ParseAddr(s[i+1:])
		if err1 == nil && err2 == nil && a.Unmap().Is4() && m.Is4() {
			mb := m.As4()
			v := uint32(mb[0])<<24 | uint32(mb[1])<<16 | uint32(mb[2])<<8 | uint32(mb[3])
			bits := 0
			for v&0x80000000 != 0 {
				bits++
				v <<= 1
			}
			if v == 0 {
				return IgnoreEntry{Prefix: netip.PrefixFrom(a.Unmap(), bits).Masked(), Text: s}, nil
			}
			return IgnoreEntry{}, fmt.Errorf("%q: %s is not a contiguous netmask", s, m)
		}
		return IgnoreEntry{}, fmt.Errorf("%q is not an address or network", s)
	}
	if ValidHostName(s) {
		return IgnoreEntry{Host: strings.TrimSuffix(strings.ToLower(s), "."), Text: s}, nil
	}
	return IgnoreEntry{}, fmt.Errorf("%q is not an address, network or host name", s)
}

// ValidHostName reports whether s is a DNS name (letters, digits, '-',
// '_' in labels of at most 63 characters) whose last label is not numeric
// (which would be a mistyped address).
func ValidHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(strings.TrimSuffix(s, "."), ".")
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return false
	}
	for _, label := range labels {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

package audit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/harden/fsx"
)

// FirewallReader reads a firewall's configured policy: palisade's
// firewall.rules (PolicyFile) or ufw's files (UFWFiles). It returns nil
// and no error when that firewall is not configured at all.
type FirewallReader interface {
	Read(ctx context.Context) (*FirewallState, error)
}

// Firewall names.
const (
	FirewallPalisade = "palisade"
	FirewallUFW      = "ufw"
)

// FirewallState is a firewall policy as the audit evaluates it: whether it
// is enabled, its default for incoming connections and its rules in order
// (the first matching rule decides).
type FirewallState struct {
	Name string
	// Files are the files read (the first is the main one).
	Files []string
	// Enabled says whether the policy is switched on; EnabledWhere is the
	// file:line saying so ("" for the default).
	Enabled      bool
	EnabledWhere string
	// Default is deny, reject or allow; DefaultWhere as above.
	Default      string
	DefaultWhere string
	Rules        []FirewallRule
	// Warnings are lines the reader did not understand (their rules are
	// evaluated conservatively).
	Warnings []string
}

// Policy actions.
const (
	ActAllow  = "allow"
	ActDeny   = "deny"
	ActReject = "reject"
	ActLimit  = "limit"
)

// FirewallRule is one rule.
type FirewallRule struct {
	// Number is the rule's position (1-based); Where its file:line.
	Number int
	Where  string
	// Text is the rule as written.
	Text   string
	Action string
	// Proto is tcp, udp or "" (both).
	Proto string
	// Ports are the destination ports (empty: every port).
	Ports []firewall.PortRange
	// From is the source (invalid: anywhere).
	From netip.Prefix
	// Conditional is set when the rule names something the audit does not
	// evaluate (an interface, a destination address, a source port, words
	// it does not know): it may or may not apply.
	Conditional bool
	// Conn and Rate are a limit rule's options ("" rate: ufw's default).
	Conn int
	Rate string
}

func (r FirewallRule) accepting() bool { return r.Action == ActAllow || r.Action == ActLimit }

func (r FirewallRule) covers(proto string, port uint16) bool {
	if r.Proto != "" && r.Proto != proto {
		return false
	}
	if len(r.Ports) == 0 {
		return true
	}
	return slices.ContainsFunc(r.Ports, func(p firewall.PortRange) bool { return p.From <= port && port <= p.To })
}

// Verdict is what a policy does with new connections from anybody to one
// port.
type Verdict struct {
	// Reachable is set when somebody outside can connect.
	Reachable bool
	// OnPurpose is set when a rule (or an opening by the hardening
	// commands) lets them in, rather than a default that allows
	// everything.
	OnPurpose bool
	// Rule is the deciding rule (nil: the default or an opening).
	Rule   *FirewallRule
	Reason string
}

// Reach evaluates the policy for new connections to proto/port from
// anybody, the way the kernel runs the rules (first match decides), and
// conservatively: a refusing rule that may not apply does not close the
// port; an accepting rule for some sources opens it (to them). open lists
// the ports opened outside the rules (palisade's allow chain).
func (s *FirewallState) Reach(proto string, port uint16, open []ProtoPort) Verdict {
	if !s.Enabled {
		return Verdict{Reachable: true, Reason: s.Name + " is not enabled"}
	}
	for i := range s.Rules {
		r := &s.Rules[i]
		if !r.covers(proto, port) {
			continue
		}
		switch {
		case r.accepting() && !r.Conditional:
			who := "anybody"
			if r.From.IsValid() {
				who = r.From.String()
			}
			return Verdict{Reachable: true, OnPurpose: true, Rule: r, Reason: fmt.Sprintf("rule %d (%s) lets %s in", r.Number, r.Text, who)}
		case r.accepting(), r.Conditional, r.From.IsValid():
			continue
		default:
			return Verdict{Rule: r, Reason: fmt.Sprintf("rule %d (%s) refuses it", r.Number, r.Text)}
		}
	}
	if slices.Contains(open, ProtoPort{Proto: proto, Port: port}) {
		return Verdict{Reachable: true, OnPurpose: true, Reason: fmt.Sprintf("port %d/%s is opened in palisade's allow chain (palisade ssh harden / ftp port)", port, proto)}
	}
	if s.Default == "allow" {
		return Verdict{Reachable: true, Reason: "the default policy allows every port"}
	}
	return Verdict{Reason: "the default policy (" + s.Default + ") refuses it"}
}

// Limited returns the limit rule that covers every new connection to
// tcp/port from anybody, if one decides for that port.
func (s *FirewallState) Limited(port uint16) (*FirewallRule, bool) {
	v := s.Reach("tcp", port, nil)
	if v.Rule != nil && v.Rule.Action == ActLimit && !v.Rule.From.IsValid() {
		return v.Rule, true
	}
	return nil, false
}

// PolicyFile reads palisade's firewall policy file (firewall.rules in the
// configuration directory; docs/firewall-policy.md): one command per line
// in the grammar of "palisade firewall".
type PolicyFile struct {
	Path     string
	Services firewall.Services
}

// PolicyFileName is the policy file in the configuration directory.
const PolicyFileName = "firewall.rules"

// Read implements FirewallReader.
func (p PolicyFile) Read(context.Context) (*FirewallState, error) {
	data, err := fsx.ReadFile(p.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	st := &FirewallState{Name: FirewallPalisade, Files: []string{p.Path}, Default: "deny"}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	for line := 1; sc.Scan(); line++ {
		where := fmt.Sprintf("%s:%d", p.Path, line)
		words, err := splitWords(sc.Text())
		if err != nil {
			st.Warnings = append(st.Warnings, where+": "+err.Error())
			continue
		}
		if len(words) == 0 {
			continue
		}
		switch words[0] {
		case "enable":
			st.Enabled, st.EnabledWhere = true, where
		case "disable":
			st.Enabled, st.EnabledWhere = false, where
		case "default":
			if len(words) >= 2 && (len(words) == 2 || words[2] == "incoming") {
				switch words[1] {
				case "deny", "reject", "allow":
					st.Default, st.DefaultWhere = words[1], where
					continue
				}
			}
			if len(words) < 3 || words[2] != "outgoing" {
				st.Warnings = append(st.Warnings, where+": not understood: "+sc.Text())
			}
		case ActAllow, ActDeny, ActReject, ActLimit:
			n++
			r, unknown := parseRule(words, p.Services)
			r.Number, r.Where = n, where
			if unknown {
				st.Warnings = append(st.Warnings, where+": rule not understood, evaluated as one that may not apply: "+r.Text)
			}
			st.Rules = append(st.Rules, r)
		default:
			st.Warnings = append(st.Warnings, where+": not understood: "+sc.Text())
		}
	}
	return st, sc.Err()
}

// splitWords splits a policy line into words: blanks separate, quotes
// group, "#" starts a comment.
func splitWords(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == '#' && !in:
			return out, nil
		case c == ' ' || c == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, errors.New("unterminated quote")
	}
	if in {
		out = append(out, cur.String())
	}
	return out, nil
}

// parseRule reads "ACTION RULE [options]" in ufw's grammar. What it does
// not evaluate (an interface, a destination address, a source port) or
// does not understand (unknown is set then) makes the rule Conditional.
func parseRule(words []string, svc firewall.Services) (r FirewallRule, unknown bool) {
	r = FirewallRule{Action: words[0], Text: strings.Join(words, " ")}
	rest := words[1:]
	// Options (limit's --conn and --rate, comments) end the match.
	var match []string
	for i := 0; i < len(rest); i++ {
		w := rest[i]
		switch {
		case w == "comment":
			i = len(rest)
		case strings.HasPrefix(w, "--"):
			name, val, hasVal := strings.Cut(w, "=")
			if !hasVal && i+1 < len(rest) {
				i++
				val = rest[i]
			}
			switch name {
			case "--conn":
				r.Conn, _ = strconv.Atoi(val)
			case "--rate":
				r.Rate = val
			}
		default:
			match = append(match, w)
		}
	}
	if len(match) == 1 {
		ports, proto, ok := parsePortProto(match[0], svc)
		r.Ports, r.Proto, r.Conditional = ports, proto, !ok
		return r, !ok
	}
	for i := 0; i < len(match); i++ {
		w := match[i]
		next := func() string {
			if i+1 < len(match) {
				i++
				return match[i]
			}
			r.Conditional, unknown = true, true
			return ""
		}
		switch w {
		case "in":
		case "on":
			next()
			r.Conditional = true
		case "proto":
			switch p := next(); p {
			case "tcp", "udp":
				r.Proto = p
			case "any":
			default:
				r.Conditional, unknown = true, true
			}
		case "from":
			a := next()
			if a != "any" {
				pfx, err := parsePrefix(a)
				if err != nil {
					r.Conditional, unknown = true, true
				}
				r.From = pfx
			}
			if i+2 < len(match) && match[i+1] == "port" {
				i += 2
				r.Conditional = true // a source port
			}
		case "to":
			if a := next(); a != "any" {
				r.Conditional = true
			}
			if i+2 < len(match) && match[i+1] == "port" {
				ports, _, ok := parsePortProto(match[i+2], svc)
				r.Ports = ports
				if !ok {
					r.Conditional, unknown = true, true
				}
				i += 2
			}
		default:
			r.Conditional, unknown = true, true
		}
	}
	return r, unknown
}

// parsePortProto reads "22", "22/tcp", "80,443/tcp", "8000:8100", "ssh".
func parsePortProto(s string, svc firewall.Services) ([]firewall.PortRange, string, bool) {
	spec, proto, hasProto := strings.Cut(s, "/")
	if hasProto && proto != "tcp" && proto != "udp" {
		return nil, "", false
	}
	var out []firewall.PortRange
	for item := range strings.SplitSeq(spec, ",") {
		lo, hi, isRange := strings.Cut(item, ":")
		a, errA := strconv.ParseUint(lo, 10, 16)
		b, errB := a, error(nil)
		if isRange {
			b, errB = strconv.ParseUint(hi, 10, 16)
		}
		if errA == nil && errB == nil && a >= 1 && b >= a {
			out = append(out, firewall.PortRange{From: uint16(a), To: uint16(b)})
			continue
		}
		if isRange || svc == nil {
			return nil, "", false
		}
		// A service name: tcp only when it exists only for tcp.
		tp, tok := svc.Lookup(item, "tcp")
		up, uok := svc.Lookup(item, "udp")
		switch {
		case proto == "tcp" && tok, proto == "" && tok && !uok:
			out, proto = append(out, firewall.PortRange{From: tp, To: tp}), "tcp"
		case proto == "udp" && uok, proto == "" && uok && !tok:
			out, proto = append(out, firewall.PortRange{From: up, To: up}), "udp"
		case proto == "" && tok && uok && tp == up:
			out = append(out, firewall.PortRange{From: tp, To: tp})
		default:
			return nil, "", false
		}
	}
	return out, proto, len(out) > 0
}

func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// UFWFiles reads ufw's configuration: ufw.conf (ENABLED), /etc/default/ufw
// (DEFAULT_INPUT_POLICY) and the user rules (user.rules, user6.rules), all
// under Root.
type UFWFiles struct {
	Root string
}

// Read implements FirewallReader.
func (u UFWFiles) Read(context.Context) (*FirewallState, error) {
	conf := fsx.Path(u.Root, "/etc/ufw/ufw.conf")
	confData, err := fsx.ReadFile(conf)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	st := &FirewallState{Name: FirewallUFW, Files: []string{conf}, Default: "deny"}
	if v, where := shellVar(confData, conf, "ENABLED"); v != "" {
		st.Enabled, st.EnabledWhere = strings.EqualFold(v, "yes"), where
	}
	def := fsx.Path(u.Root, "/etc/default/ufw")
	if data, err := fsx.ReadFile(def); err == nil {
		st.Files = append(st.Files, def)
		switch v, where := shellVar(data, def, "DEFAULT_INPUT_POLICY"); strings.ToUpper(v) {
		case "ACCEPT":
			st.Default, st.DefaultWhere = "allow", where
		case "REJECT":
			st.Default, st.DefaultWhere = "reject", where
		case "DROP":
			st.DefaultWhere = where
		}
	}
	n := 0
	for _, f := range []string{"/etc/ufw/user.rules", "/etc/ufw/user6.rules"} {
		path := fsx.Path(u.Root, f)
		data, err := fsx.ReadFile(path)
		if err != nil {
			continue
		}
		st.Files = append(st.Files, path)
		for i, line := range fsx.SplitLines(data) {
			tuple, ok := strings.CutPrefix(strings.TrimSpace(line), "### tuple ### ")
			if !ok {
				continue
			}
			n++
			r := ufwTuple(tuple)
			r.Number, r.Where = n, fmt.Sprintf("%s:%d", path, i+1)
			st.Rules = append(st.Rules, r)
		}
	}
	return st, nil
}

// ufwTuple reads "allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in[_IFACE] [comment=...]":
// action proto dport dst sport src direction.
func ufwTuple(t string) FirewallRule {
	f := strings.Fields(t)
	r := FirewallRule{Text: "ufw " + t}
	if len(f) < 7 {
		r.Conditional = true
		return r
	}
	r.Action, _, _ = strings.Cut(f[0], "_") // allow_log
	if f[1] != "any" {
		r.Proto = f[1]
	}
	if f[2] != "any" {
		ports, _, ok := parsePortProto(f[2], nil)
		r.Ports, r.Conditional = ports, !ok
	}
	if f[3] != "0.0.0.0/0" && f[3] != "::/0" {
		r.Conditional = true
	}
	if f[4] != "any" {
		r.Conditional = true
	}
	if f[5] != "0.0.0.0/0" && f[5] != "::/0" {
		if p, err := parsePrefix(f[5]); err == nil {
			r.From = p
		} else {
			r.Conditional = true
		}
	}
	if f[6] != "in" {
		r.Conditional = true // an interface, or not incoming
	}
	return r
}

// shellVar reads KEY=value (quotes removed) from a shell-style file.
func shellVar(data []byte, file, key string) (string, string) {
	val, where := "", ""
	for i, line := range fsx.SplitLines(data) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.TrimSpace(k) != key {
			continue
		}
		val, where = strings.Trim(strings.TrimSpace(v), `"'`), fmt.Sprintf("%s:%d", file, i+1)
	}
	return val, where
}

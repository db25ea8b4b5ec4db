// Package policy is palisade's firewall policy model: the ufw-grammar RULE
// parser of `palisade firewall allow|deny|reject|limit RULE`, connection
// limits (--conn, --rate, --mode), the firewall.rules file (one command per
// line in the same grammar, comments kept), the reachability check that
// keeps the admin's SSH access open, and the import of ufw's user rules.
//
// The package is pure: it reads files it is told to read and never touches
// the kernel. internal/firewall/policynft renders a Policy into nftables;
// internal/firewall/policyctl runs the commands (lock, lockout protection,
// confirmation and rollback, apply).
package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/duration"
	"github.com/palisade-project/palisade/internal/firewall"
)

// Action is what a rule does with a new connection it matches.
type Action string

// Actions (ufw's verbs).
const (
	Allow  Action = "allow"
	Deny   Action = "deny"   // drop silently
	Reject Action = "reject" // TCP reset / ICMP port unreachable
	Limit  Action = "limit"  // accept unless a connection limit is over
)

// ParseAction parses an action word.
func ParseAction(s string) (Action, bool) {
	switch a := Action(s); a {
	case Allow, Deny, Reject, Limit:
		return a, true
	}
	return "", false
}

// Default is the verdict for incoming connections no rule matches.
type Default string

// Default policies.
const (
	DefaultDeny   Default = "deny"
	DefaultReject Default = "reject"
	DefaultAllow  Default = "allow"
)

// ParseDefault parses a default policy word.
func ParseDefault(s string) (Default, bool) {
	switch d := Default(s); d {
	case DefaultDeny, DefaultReject, DefaultAllow:
		return d, true
	}
	return "", false
}

// Mode is how a --rate limit treats attempts while over the limit.
type Mode string

// Rate modes.
const (
	// Penalty counts attempts in a window that starts with the first one;
	// once over, every further attempt is refused and restarts the window
	// (iptables' recent --update). The default.
	Penalty Mode = "penalty"
	// Bucket is a token bucket: N attempts at once, refilled at N per DUR.
	Bucket Mode = "bucket"
)

// Limits of a limit rule. The zero value (no --conn, no --rate) is ufw's
// plain limit: see Effective.
type Limits struct {
	// Conn is the most concurrent connections per source network (0: no
	// concurrency limit).
	Conn int `json:"conn,omitempty"`
	// Mask4 and Mask6 group sources into networks of that prefix length
	// (defaults 32 and 128: each address on its own).
	Mask4 int `json:"mask,omitempty"`
	Mask6 int `json:"mask6,omitempty"`
	// Rate new connections per source network within Per (0: no rate
	// limit, unless plain).
	Rate int           `json:"rate,omitempty"`
	Per  time.Duration `json:"-"`
	Mode Mode          `json:"mode,omitempty"`
	// Size is the capacity of each of the rule's kernel sets (0: DefaultSetSize).
	Size int `json:"size,omitempty"`
	// Backstop is the shared rate (Backstop per BackstopPer) for new
	// connections from sources a full set cannot track (0: the default, 16
	// times the per-source allowance).
	Backstop    int           `json:"backstop,omitempty"`
	BackstopPer time.Duration `json:"-"`
}

// Set size bounds.
const (
	DefaultSetSize = 65536
	MaxSetSize     = 1 << 20
)

// ufw's limit: 6 or more new connections within 30 s are refused.
const (
	UFWRate = 5
	UFWPer  = 30 * time.Second
)

// Plain reports whether l is ufw's plain limit (no --conn, no --rate).
func (l Limits) Plain() bool { return l.Conn == 0 && l.Rate == 0 }

// Effective returns l with every default filled in: plain limits become
// ufw's 5 per 30 s in penalty mode, masks default to whole addresses, the
// set size and the backstop get their defaults.
func (l Limits) Effective() Limits {
	if l.Plain() {
		l.Rate, l.Per = UFWRate, UFWPer
	}
	if l.Mask4 == 0 && l.Mask6 == 0 {
		l.Mask4, l.Mask6 = 32, 128
	}
	if l.Mode == "" {
		l.Mode = Penalty
	}
	if l.Size == 0 {
		l.Size = DefaultSetSize
	}
	if l.Backstop == 0 {
		if l.Rate > 0 {
			l.Backstop, l.BackstopPer = 16*l.Rate, l.Per
		} else {
			l.Backstop, l.BackstopPer = 16*l.Conn, time.Second
		}
	}
	return l
}

// Rule is one allow, deny, reject or limit rule for incoming traffic.
type Rule struct {
	Action Action
	// Iface restricts the rule to packets arriving on one interface.
	Iface string
	// From and To are the source and destination networks; the zero
	// Prefix means any address.
	From netip.Prefix
	To   netip.Prefix
	// FromPorts and ToPorts are source and destination ports (nil: any).
	FromPorts []firewall.PortRange
	ToPorts   []firewall.PortRange
	// Proto is "tcp", "udp" or "" (any: with ports, tcp and udp; without,
	// every protocol).
	Proto string
	// Service is the port as written when it was a service name ("ssh",
	// "http/tcp"), kept for display.
	Service string
	// Limit holds the limits of a limit rule.
	Limit   Limits
	Comment string
}

// Family returns 4 or 6 when the rule's addresses restrict it to one
// address family, 0 otherwise.
func (r Rule) Family() int {
	for _, p := range []netip.Prefix{r.From, r.To} {
		if p.IsValid() {
			if p.Addr().Is4() {
				return 4
			}
			return 6
		}
	}
	return 0
}

// Protos returns the transport protocols the rule's port matches apply to:
// nil when the rule matches every protocol.
func (r Rule) Protos() []string {
	if r.Proto != "" {
		return []string{r.Proto}
	}
	if len(r.ToPorts) > 0 || len(r.FromPorts) > 0 {
		return []string{"tcp", "udp"}
	}
	return nil
}

// Block is the verdict for connections over a limit rule's limits: ufw's
// plain limit rejects, explicit --conn and --rate drop (as the hardening
// guide's iptables rules do).
func (r Rule) Block() Action {
	if r.Limit.Plain() {
		return Reject
	}
	return Deny
}

// simple reports whether the rule can be written in the short form
// "PORT[/PROTO]" or "SERVICE".
func (r Rule) simple() bool {
	return r.Iface == "" && !r.From.IsValid() && !r.To.IsValid() && len(r.FromPorts) == 0 && len(r.ToPorts) > 0
}

func formatPorts(rs []firewall.PortRange) string {
	parts := make([]string, len(rs))
	for i, p := range rs {
		if p.From == p.To {
			parts[i] = strconv.Itoa(int(p.From))
		} else {
			parts[i] = strconv.Itoa(int(p.From)) + ":" + strconv.Itoa(int(p.To))
		}
	}
	return strings.Join(parts, ",")
}

func formatAddr(p netip.Prefix) string {
	if !p.IsValid() {
		return "any"
	}
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// Match renders the rule's match (everything but the action, the limits
// and the comment) in canonical form with numeric ports: two rules with the
// same Match select the same traffic.
func (r Rule) Match() string {
	r.Service = ""
	return r.matchText()
}

func (r Rule) matchText() string {
	var b strings.Builder
	if r.Iface != "" {
		b.WriteString("in on " + r.Iface + " ")
	}
	if r.simple() {
		if r.Service != "" {
			b.WriteString(r.Service)
		} else {
			b.WriteString(formatPorts(r.ToPorts))
			if r.Proto != "" {
				b.WriteString("/" + r.Proto)
			}
		}
		return strings.TrimSpace(b.String())
	}
	b.WriteString("from " + formatAddr(r.From))
	if len(r.FromPorts) > 0 {
		b.WriteString(" port " + formatPorts(r.FromPorts))
	}
	if r.To.IsValid() || len(r.ToPorts) > 0 {
		b.WriteString(" to " + formatAddr(r.To))
		if len(r.ToPorts) > 0 {
			b.WriteString(" port " + formatPorts(r.ToPorts))
		}
	}
	if r.Proto != "" {
		b.WriteString(" proto " + r.Proto)
	}
	return b.String()
}

// FormatRate renders N/DUR ("2/1s", "5/30s", "10/1m").
func FormatRate(n int, per time.Duration) string {
	return strconv.Itoa(n) + "/" + FormatDuration(per)
}

// FormatDuration renders a duration in its largest whole unit ("30s",
// "2m", "1h", "1500ms").
func FormatDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// Options renders the limit options as command-line flags, defaults left
// out ("--conn 2 --mask 24 --rate 1/1s").
func (l Limits) Options() []string {
	var out []string
	if l.Conn > 0 {
		out = append(out, "--conn", strconv.Itoa(l.Conn))
	}
	if l.Mask4 != 0 || l.Mask6 != 0 {
		if l.Mask4 != 32 {
			out = append(out, "--mask", strconv.Itoa(l.Mask4))
		}
		if l.Mask6 != 128 {
			out = append(out, "--mask6", strconv.Itoa(l.Mask6))
		}
	}
	if l.Rate > 0 {
		out = append(out, "--rate", FormatRate(l.Rate, l.Per))
	}
	if l.Mode != "" && l.Mode != Penalty {
		out = append(out, "--mode", string(l.Mode))
	}
	if l.Size != 0 && l.Size != DefaultSetSize {
		out = append(out, "--size", strconv.Itoa(l.Size))
	}
	if l.Backstop > 0 {
		out = append(out, "--backstop", FormatRate(l.Backstop, l.BackstopPer))
	}
	return out
}

// String renders the rule as a command: "allow 22/tcp",
// "limit 22/tcp --conn 2 --rate 1/1s", "deny from 203.0.113.0/24".
func (r Rule) String() string {
	parts := []string{string(r.Action), r.matchText()}
	if r.Action == Limit {
		parts = append(parts, r.Limit.Options()...)
	}
	if r.Comment != "" {
		parts = append(parts, "comment", quote(r.Comment))
	}
	return strings.Join(parts, " ")
}

func quote(s string) string {
	if strings.Contains(s, "'") {
		return `"` + s + `"`
	}
	return "'" + s + "'"
}

// Names resolves service names in rules.
type Names struct {
	// Services is /etc/services.
	Services firewall.Services
}

// SyntaxError is malformed input; Token is the offending word.
type SyntaxError struct {
	Token string
	Msg   string
}

func (e *SyntaxError) Error() string {
	if e.Token == "" {
		return e.Msg
	}
	return fmt.Sprintf("%q: %s", e.Token, e.Msg)
}

func syntaxErr(tok, format string, args ...any) error {
	return &SyntaxError{Token: tok, Msg: fmt.Sprintf(format, args...)}
}

// ParseRule parses the words of a RULE for action, options included
// ("22/tcp", "from 198.51.100.0/24 to any port 22 proto tcp",
// "22/tcp --conn 2 --rate 1/1s", "80,443/tcp comment 'web'"). It also
// returns the names of the limit options given (for merging into an
// existing rule). Errors are *SyntaxError values naming the bad word.
func ParseRule(action Action, words []string, names Names) (Rule, []string, error) {
	r := Rule{Action: action}
	rest, given, err := parseOptions(action, words, &r.Limit)
	if err != nil {
		return Rule{}, nil, err
	}
	if err := parseMatch(&r, rest, names); err != nil {
		return Rule{}, nil, err
	}
	if action == Limit {
		if err := checkLimits(r.Limit, given); err != nil {
			return Rule{}, nil, err
		}
	}
	return r, given, nil
}

var limitOptions = []string{"--conn", "--mask", "--mask6", "--rate", "--mode", "--size", "--backstop"}

// parseOptions takes the --options out of words.
func parseOptions(action Action, words []string, l *Limits) ([]string, []string, error) {
	var rest, given []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if !strings.HasPrefix(w, "--") {
			rest = append(rest, w)
			continue
		}
		name, val, hasVal := strings.Cut(w, "=")
		if !slices.Contains(limitOptions, name) {
			return nil, nil, syntaxErr(w, "unknown option (limit options: %s)", strings.Join(limitOptions, ", "))
		}
		if action != Limit {
			return nil, nil, syntaxErr(name, "only limit rules take %s", name)
		}
		if slices.Contains(given, name) {
			return nil, nil, syntaxErr(name, "given twice")
		}
		if !hasVal {
			if i+1 >= len(words) {
				return nil, nil, syntaxErr(name, "needs a value")
			}
			i++
			val = words[i]
		}
		if err := setOption(l, name, val); err != nil {
			return nil, nil, err
		}
		given = append(given, name)
	}
	return rest, given, nil
}

func setOption(l *Limits, name, val string) error {
	intIn := func(lo, hi int, what string) (int, error) {
		n, err := strconv.Atoi(val)
		if err != nil || n < lo || n > hi {
			return 0, syntaxErr(val, "%s: a number %d-%d %s", name, lo, hi, what)
		}
		return n, nil
	}
	var err error
	switch name {
	case "--conn":
		l.Conn, err = intIn(1, 1_000_000, "(concurrent connections per source)")
	case "--mask":
		l.Mask4, err = intIn(0, 32, "(IPv4 prefix length; --mask6 for IPv6)")
		if err == nil && l.Mask6 == 0 {
			l.Mask6 = 128
		}
	case "--mask6":
		l.Mask6, err = intIn(0, 128, "(IPv6 prefix length)")
		if err == nil && l.Mask4 == 0 {
			l.Mask4 = 32
		}
	case "--rate":
		l.Rate, l.Per, err = ParseRate(val, name)
	case "--backstop":
		l.Backstop, l.BackstopPer, err = ParseRate(val, name)
	case "--mode":
		switch Mode(val) {
		case Penalty, Bucket:
			l.Mode = Mode(val)
		default:
			err = syntaxErr(val, "--mode: penalty or bucket")
		}
	case "--size":
		l.Size, err = intIn(1, MaxSetSize, "(entries per set)")
	}
	return err
}

// Rate window bounds.
const (
	MinPer = time.Second
	MaxPer = 24 * time.Hour
)

// ParseRate parses N/DUR: "2/1s", "5/30s", "10/m", "100/1h", "1/second".
func ParseRate(s, option string) (int, time.Duration, error) {
	ns, ds, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, syntaxErr(s, "%s: N/DURATION, for example 2/1s or 5/30s", option)
	}
	n, err := strconv.Atoi(ns)
	if err != nil || n < 1 || n > 1_000_000 {
		return 0, 0, syntaxErr(s, "%s: the count %q must be a number 1-1000000", option, ns)
	}
	d, err := parseDuration(ds)
	if err != nil {
		return 0, 0, syntaxErr(s, "%s: bad duration %q (for example 1s, 30s, 1m, 1h)", option, ds)
	}
	if d < MinPer || d > MaxPer {
		return 0, 0, syntaxErr(s, "%s: the window must be 1s to 24h", option)
	}
	if d%time.Millisecond != 0 {
		return 0, 0, syntaxErr(s, "%s: the window must be whole milliseconds", option)
	}
	return n, d, nil
}

func parseDuration(s string) (time.Duration, error) {
	switch s {
	case "s", "sec", "second":
		return time.Second, nil
	case "m", "min", "minute":
		return time.Minute, nil
	case "h", "hour":
		return time.Hour, nil
	case "d", "day":
		return 24 * time.Hour, nil
	}
	// Everything else: palisade's one duration syntax (fail2ban's and Go's).
	return duration.Parse(s)
}

func checkLimits(l Limits, given []string) error {
	if l.Rate == 0 && slices.Contains(given, "--mode") && l.Conn > 0 {
		return syntaxErr("--mode", "--mode applies to a rate: give --rate N/DUR")
	}
	e := l.Effective()
	if e.Mode == Penalty && e.Rate > 0 {
		// The kernel keeps the window's allowance in nanoseconds (int64).
		if float64(e.Rate)*float64(PenaltyUnit(e.Per)) >= 9.2e18 {
			return syntaxErr(FormatRate(e.Rate, e.Per), "--rate: too many connections for so long a window in penalty mode (use --mode bucket, or a shorter window)")
		}
	}
	return nil
}

// PenaltyUnit is the refill period of a penalty-mode window's bucket: the
// smallest of the kernel's limit units (minute, hour, day, week) longer
// than the window, so that nothing refills while the window lasts.
func PenaltyUnit(per time.Duration) time.Duration {
	for _, u := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour} {
		if u > per {
			return u
		}
	}
	return 7 * 24 * time.Hour
}

var keywords = []string{"in", "out", "on", "from", "to", "port", "proto", "comment", "app"}

func parseMatch(r *Rule, words []string, names Names) error {
	i := 0
	next := func() (string, bool) {
		if i < len(words) {
			i++
			return words[i-1], true
		}
		return "", false
	}
	need := func(kw, what string) (string, error) {
		v, ok := next()
		if !ok {
			return "", syntaxErr(kw, "needs %s after it", what)
		}
		return v, nil
	}
	if len(words) == 0 {
		return syntaxErr("", "missing RULE: PORT[/PROTO], SERVICE, or from ADDR [to ADDR] [port PORT] [proto tcp|udp]")
	}
	// Direction and interface.
	for i < len(words) && (words[i] == "in" || words[i] == "out" || words[i] == "on") {
		w, _ := next()
		switch w {
		case "out":
			return syntaxErr("out", "palisade filters incoming traffic only (outgoing is allowed)")
		case "on":
			v, err := need("on", "an interface name")
			if err != nil {
				return err
			}
			if err := checkIface(v); err != nil {
				return err
			}
			if r.Iface != "" {
				return syntaxErr("on", "given twice")
			}
			r.Iface = v
		}
	}
	if i >= len(words) {
		return syntaxErr(words[len(words)-1], "missing RULE after it")
	}
	// Short form: PORT[/PROTO] or SERVICE [comment TEXT].
	if !slices.Contains(keywords, words[i]) {
		w, _ := next()
		ports, proto, svc, err := parsePortSpec(w, names)
		if err != nil {
			return err
		}
		r.ToPorts, r.Proto, r.Service = ports, proto, svc
		if i < len(words) && words[i] == "comment" {
			next()
			c, err := need("comment", "a text")
			if err != nil {
				return err
			}
			if r.Comment, err = checkComment(c); err != nil {
				return err
			}
		}
		if i < len(words) {
			return syntaxErr(words[i], "unexpected after %s (the full form is: from ADDR [port PORT] to ADDR [port PORT] proto tcp|udp)", w)
		}
		return nil
	}
	// Full form.
	seen := map[string]bool{}
	last := "" // "from" or "to": which side a "port" belongs to
	for i < len(words) {
		w, _ := next()
		key := w
		if w == "port" {
			key = last + " port"
		}
		if seen[key] && w != "in" {
			return syntaxErr(w, "given twice")
		}
		seen[key] = true
		switch w {
		case "from", "to":
			v, err := need(w, "an address, a network (CIDR) or any")
			if err != nil {
				return err
			}
			p, err := ParseAddr(v)
			if err != nil {
				return err
			}
			if w == "from" {
				r.From = p
			} else {
				r.To = p
			}
			last = w
		case "port":
			if last == "" {
				return syntaxErr("port", "needs from ADDR or to ADDR before it (for example: to any port 22)")
			}
			v, err := need("port", "a port, a list (80,443) or a range (6000:6007)")
			if err != nil {
				return err
			}
			ports, proto, svc, err := parsePortSpec(v, names)
			if err != nil {
				return err
			}
			if proto != "" {
				if r.Proto != "" && r.Proto != proto {
					return syntaxErr(v, "protocol %s conflicts with proto %s", proto, r.Proto)
				}
				r.Proto = proto
			}
			if last == "from" {
				r.FromPorts = ports
			} else {
				r.ToPorts, r.Service = ports, ""
				_ = svc
			}
		case "proto":
			v, err := need("proto", "tcp, udp or any")
			if err != nil {
				return err
			}
			switch v {
			case "tcp", "udp":
				if r.Proto != "" && r.Proto != v {
					return syntaxErr(v, "conflicts with the protocol given with the port (%s)", r.Proto)
				}
				r.Proto = v
			case "any":
			default:
				return syntaxErr(v, "protocol: tcp, udp or any")
			}
		case "comment":
			v, err := need("comment", "a text")
			if err != nil {
				return err
			}
			if r.Comment, err = checkComment(v); err != nil {
				return err
			}
		case "app":
			return syntaxErr("app", "application profiles are not supported: give the port (for example 22/tcp)")
		case "in", "on", "out":
			return syntaxErr(w, "direction and interface come first (in on IFACE from ...)")
		default:
			return syntaxErr(w, "unexpected word (expected from, to, port, proto or comment)")
		}
	}
	if r.From.IsValid() && r.To.IsValid() && r.From.Addr().Is4() != r.To.Addr().Is4() {
		return syntaxErr(formatAddr(r.To), "from %s and to %s are different address families", formatAddr(r.From), formatAddr(r.To))
	}
	if !seen["from"] && !seen["to"] {
		return syntaxErr(words[0], "the full form needs from ADDR or to ADDR")
	}
	return nil
}

func checkIface(v string) error {
	if v == "" || len(v) > 15 {
		return syntaxErr(v, "interface name: 1 to 15 characters")
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.:@+", c)) {
			return syntaxErr(v, "interface name: character %q not allowed", c)
		}
	}
	return nil
}

func checkComment(c string) (string, error) {
	if len(c) > 128 {
		return "", syntaxErr(c[:20]+"...", "comment longer than 128 bytes")
	}
	for _, ch := range c {
		if ch < ' ' || ch == 0x7f {
			return "", syntaxErr(c, "control character in comment")
		}
	}
	if strings.Contains(c, "'") && strings.Contains(c, `"`) {
		return "", syntaxErr(c, "a comment may hold ' or \" but not both")
	}
	return c, nil
}

// ParseAddr parses "any", an address or a network in CIDR notation.
// Host bits of a network are cleared; zones are refused.
func ParseAddr(s string) (netip.Prefix, error) {
	if s == "any" {
		return netip.Prefix{}, nil
	}
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, syntaxErr(s, "not an address or network (CIDR such as 198.51.100.0/24 or 2001:db8::/32)")
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, syntaxErr(s, "not an address, network (CIDR) or any")
		}
		if a.Zone() != "" {
			return netip.Prefix{}, syntaxErr(s, "addresses with a zone are not supported")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	c, err := firewall.Canonical(p)
	if err != nil {
		return netip.Prefix{}, syntaxErr(s, "%v", err)
	}
	return c, nil
}

// parsePortSpec parses PORT[/PROTO]: "22", "22/tcp", "80,443/tcp",
// "6000:6007/udp", "ssh", "http/tcp".
func parsePortSpec(s string, names Names) ([]firewall.PortRange, string, string, error) {
	spec, proto, hasProto := strings.Cut(s, "/")
	if hasProto && proto != "tcp" && proto != "udp" {
		return nil, "", "", syntaxErr(s, "protocol %q: tcp or udp", proto)
	}
	if spec == "" {
		return nil, "", "", syntaxErr(s, "missing port")
	}
	var out []firewall.PortRange
	svc := ""
	for _, item := range strings.Split(spec, ",") {
		if item == "" {
			return nil, "", "", syntaxErr(s, "empty item in the port list")
		}
		from, to, isRange := strings.Cut(item, ":")
		if isDigits(from) && (!isRange || isDigits(to)) {
			a, err := portNum(from, s)
			if err != nil {
				return nil, "", "", err
			}
			b := a
			if isRange {
				if b, err = portNum(to, s); err != nil {
					return nil, "", "", err
				}
				if b < a {
					return nil, "", "", syntaxErr(s, "port range %s: the first port is larger than the second", item)
				}
			}
			out = append(out, firewall.PortRange{From: a, To: b})
			continue
		}
		if isRange {
			return nil, "", "", syntaxErr(s, "port range %q: two numbers 1-65535 (6000:6007)", item)
		}
		// A service name.
		p, sp, err := lookupService(item, proto, names)
		if err != nil {
			return nil, "", "", syntaxErr(s, "%v", err)
		}
		if !hasProto && sp != "" {
			if len(strings.Split(spec, ",")) > 1 {
				return nil, "", "", syntaxErr(s, "service %s is %s only: give the protocol (%s/%s)", item, sp, spec, sp)
			}
			proto = sp
		}
		out = append(out, firewall.PortRange{From: p, To: p})
		svc = s
	}
	return firewall.MergePorts(out), proto, svc, nil
}

func lookupService(name, proto string, names Names) (uint16, string, error) {
	if proto != "" {
		p, ok := names.Services.Lookup(name, proto)
		if !ok {
			return 0, "", fmt.Errorf("unknown port or service %s/%s (not a number 1-65535, not in /etc/services)", name, proto)
		}
		return p, "", nil
	}
	t, okT := names.Services.Lookup(name, "tcp")
	u, okU := names.Services.Lookup(name, "udp")
	switch {
	case okT && okU && t == u:
		return t, "", nil
	case okT && okU:
		return 0, "", fmt.Errorf("service %s has different tcp and udp ports: give the protocol (%s/tcp)", name, name)
	case okT:
		return t, "tcp", nil
	case okU:
		return u, "udp", nil
	}
	return 0, "", fmt.Errorf("unknown port or service %s (not a number 1-65535, not in /etc/services)", name)
}

func portNum(s, tok string) (uint16, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, syntaxErr(tok, "port %s: a number 1-65535", s)
	}
	return uint16(n), nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// MergeLimits puts the options given in upd into the limits of old: a
// later `limit RULE --rate ...` for the same traffic adds to or changes the
// rule's limits rather than adding a second rule.
func MergeLimits(old, upd Limits, given []string) Limits {
	for _, g := range given {
		switch g {
		case "--conn":
			old.Conn = upd.Conn
		case "--mask":
			old.Mask4 = upd.Mask4
			if old.Mask6 == 0 {
				old.Mask6 = 128
			}
		case "--mask6":
			old.Mask6 = upd.Mask6
			if old.Mask4 == 0 {
				old.Mask4 = 32
			}
		case "--rate":
			old.Rate, old.Per = upd.Rate, upd.Per
		case "--mode":
			old.Mode = upd.Mode
		case "--size":
			old.Size = upd.Size
		case "--backstop":
			old.Backstop, old.BackstopPer = upd.Backstop, upd.BackstopPer
		}
	}
	return old
}

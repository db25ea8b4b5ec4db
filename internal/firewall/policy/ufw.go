package policy

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/palisade-project/palisade/internal/firewall"
)

// UFW's files, relative to the root.
const (
	UFWRules4  = "/etc/ufw/user.rules"
	UFWRules6  = "/etc/ufw/user6.rules"
	UFWConf    = "/etc/ufw/ufw.conf"
	UFWDefault = "/etc/default/ufw"
)

// Import is ufw's configuration translated into palisade's terms.
type Import struct {
	// Rules in ufw's order (IPv4 and IPv6 rules merged: a rule ufw keeps
	// for both families becomes one rule).
	Rules []Rule
	// Default is ufw's DEFAULT_INPUT_POLICY.
	Default Default
	// Enabled is ufw.conf's ENABLED.
	Enabled bool
	// Files are the files read; Warnings what could not be translated.
	Files    []string
	Warnings []string
}

// ImportUFW reads ufw's user rules (user.rules, user6.rules), its default
// incoming policy (/etc/default/ufw) and whether it is enabled (ufw.conf),
// every path under root.
func ImportUFW(root string) (*Import, error) {
	imp := &Import{Default: DefaultDeny}
	read := func(p string) ([]byte, error) {
		full := filepath.Join(root, p)
		data, err := os.ReadFile(full)
		if err == nil {
			imp.Files = append(imp.Files, full)
		}
		return data, err
	}
	def, err := read(UFWDefault)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("import ufw: %w", err)
	}
	vars := shellVars(def)
	switch strings.ToUpper(vars["DEFAULT_INPUT_POLICY"]) {
	case "ACCEPT":
		imp.Default = DefaultAllow
	case "REJECT":
		imp.Default = DefaultReject
	case "DROP", "":
		imp.Default = DefaultDeny
	default:
		imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s: unknown DEFAULT_INPUT_POLICY %q: using deny", UFWDefault, vars["DEFAULT_INPUT_POLICY"]))
	}
	if p := strings.ToUpper(vars["DEFAULT_OUTPUT_POLICY"]); p != "" && p != "ACCEPT" {
		imp.Warnings = append(imp.Warnings, fmt.Sprintf("DEFAULT_OUTPUT_POLICY=%s not imported: palisade allows outgoing traffic", p))
	}
	conf, err := read(UFWConf)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("import ufw: %w", err)
	}
	imp.Enabled = strings.EqualFold(shellVars(conf)["ENABLED"], "yes")
	v4data, err := read(UFWRules4)
	if err != nil {
		return nil, fmt.Errorf("import ufw: %w (is ufw installed?)", err)
	}
	v4 := imp.tuples(v4data, UFWRules4, false)
	var v6 []ufwRule
	if !strings.EqualFold(vars["IPV6"], "no") {
		v6data, err := read(UFWRules6)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("import ufw: %w", err)
		}
		v6 = imp.tuples(v6data, UFWRules6, true)
	}
	imp.merge(v4, v6)
	return imp, nil
}

// shellVars reads KEY=value lines (quotes removed).
func shellVars(data []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		out[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	return out
}

type ufwRule struct {
	rule    Rule
	anyAddr bool // both addresses are the family's "any": the rule exists for both families
}

// tuples reads the "### tuple ###" lines ufw writes above each rule:
// ACTION PROTO DPORT DST SPORT SRC [DAPP SAPP] DIRECTION [comment=HEX].
func (imp *Import) tuples(data []byte, file string, v6 bool) []ufwRule {
	var out []ufwRule
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		l, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "### tuple ###")
		if !ok {
			continue
		}
		warn := func(format string, args ...any) {
			imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s:%d: %s", file, n, fmt.Sprintf(format, args...)))
		}
		comment := ""
		if i := strings.Index(l, " comment="); i >= 0 {
			raw, err := hex.DecodeString(strings.TrimSpace(l[i+len(" comment="):]))
			if err == nil {
				comment = string(raw)
			}
			l = l[:i]
		}
		f := strings.Fields(l)
		if len(f) != 7 && len(f) != 9 {
			warn("skipped: malformed tuple")
			continue
		}
		action, dir := f[0], f[len(f)-1]
		if strings.HasPrefix(action, "route:") {
			warn("skipped: route rules (routed traffic) are not imported")
			continue
		}
		action, logged, _ := strings.Cut(action, "_")
		a, ok := ParseAction(action)
		if !ok {
			warn("skipped: unknown action %q", f[0])
			continue
		}
		if logged != "" {
			warn("%s: logging is not imported", f[0])
		}
		r := Rule{Action: a, Comment: comment}
		if dir != "in" {
			iface, ok := strings.CutPrefix(dir, "in_")
			if !ok || strings.Contains(iface, "!") {
				warn("skipped: outgoing rule (%s): palisade filters incoming traffic only", dir)
				continue
			}
			if checkIface(iface) != nil {
				warn("skipped: interface %q", iface)
				continue
			}
			r.Iface = iface
		}
		switch f[1] {
		case "any":
		case "tcp", "udp":
			r.Proto = f[1]
		default:
			warn("skipped: protocol %s is not supported (tcp, udp or any)", f[1])
			continue
		}
		var err error
		if r.ToPorts, err = ufwPorts(f[2]); err == nil {
			r.FromPorts, err = ufwPorts(f[4])
		}
		if err != nil {
			warn("skipped: %v", err)
			continue
		}
		anyAll := true
		for _, side := range []struct {
			text string
			dst  *netip.Prefix
		}{{f[3], &r.To}, {f[5], &r.From}} {
			p, err := ParseAddr(side.text)
			if err != nil || p.Addr().Is6() != v6 {
				warn("skipped: address %q", side.text)
				anyAll = false
				r.Action = ""
				break
			}
			if p.Bits() != 0 {
				*side.dst = p
				anyAll = false
			}
		}
		if r.Action == "" {
			continue
		}
		if len(f) == 9 && f[6] != "-" {
			r.Comment = strings.TrimSpace(r.Comment + " " + strings.ReplaceAll(f[6], "%20", " "))
		}
		if _, err := checkComment(r.Comment); err != nil {
			r.Comment = ""
		}
		out = append(out, ufwRule{rule: r, anyAddr: anyAll})
	}
	return out
}

// ufwPorts parses a tuple's port field: "any", "22", "80,443", "6000:6007".
func ufwPorts(s string) ([]firewall.PortRange, error) {
	if s == "any" {
		return nil, nil
	}
	var out []firewall.PortRange
	for _, item := range strings.Split(s, ",") {
		from, to, isRange := strings.Cut(item, ":")
		a, err := portNum(from, s)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = portNum(to, s); err != nil {
				return nil, err
			}
		}
		if b < a {
			return nil, syntaxErr(s, "bad port range")
		}
		out = append(out, firewall.PortRange{From: a, To: b})
	}
	return firewall.MergePorts(out), nil
}

// merge joins the IPv4 and IPv6 rule lists, keeping each family's order:
// a rule for every address that both lists hold (ufw writes "allow 22/tcp"
// into both) becomes one rule; one that only one list holds is limited to
// its family (from 0.0.0.0/0 or ::/0). Duplicates are dropped.
func (imp *Import) merge(v4, v6 []ufwRule) {
	only := func(u ufwRule, six bool) Rule {
		r := u.rule
		if u.anyAddr {
			if six {
				r.From = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
			} else {
				r.From = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			}
		}
		return r
	}
	var out []Rule
	j := 0
	for _, a := range v4 {
		if !a.anyAddr {
			out = append(out, a.rule)
			continue
		}
		k := -1
		for i := j; i < len(v6); i++ {
			if v6[i].anyAddr && v6[i].rule.String() == a.rule.String() {
				k = i
				break
			}
		}
		if k < 0 {
			out = append(out, only(a, false))
			continue
		}
		for _, b := range v6[j:k] {
			out = append(out, only(b, true))
		}
		out = append(out, a.rule)
		j = k + 1
	}
	for _, b := range v6[j:] {
		out = append(out, only(b, true))
	}
	for _, r := range out {
		dup := false
		for i, o := range imp.Rules {
			if o.Action == r.Action && o.Match() == r.Match() {
				imp.Warnings = append(imp.Warnings, fmt.Sprintf("%s: the same rule as imported rule %d, skipped", r, i+1))
				dup = true
				break
			}
		}
		if !dup {
			imp.Rules = append(imp.Rules, r)
		}
	}
}

// File returns the imported policy as a policy file: the header, a note
// on where it came from, enabled as given, ufw's default and its rules.
func (imp *Import) File(path string, enabled bool, note string) *File {
	f := NewFile(path)
	if note != "" {
		f.lines = slices.Insert(f.lines, len(f.lines)-2, &line{text: "# " + note})
	}
	f.SetEnabled(enabled)
	f.SetDefault(imp.Default)
	for _, r := range imp.Rules {
		f.lines = append(f.lines, &line{kind: kindRule, rule: r, dirty: true})
	}
	return f
}

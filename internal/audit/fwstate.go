package audit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/policy"
	"github.com/palisade-project/palisade/internal/harden/fsx"
)

// FirewallReader reads a firewall's configured policy: palisade's
// firewall.rules (PolicyFile) or ufw's files (UFWFiles), both through
// internal/firewall/policy. It returns nil and no error when that firewall
// is not configured at all.
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
	// Errors are the file's parse errors (file:line): nothing of it can
	// be applied. Warnings are what the reader could not translate.
	Errors   []string
	Warnings []string
}

// Policy actions.
const (
	ActAllow  = string(policy.Allow)
	ActDeny   = string(policy.Deny)
	ActReject = string(policy.Reject)
	ActLimit  = string(policy.Limit)
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
// the ports opened outside the rules (palisade's allow chain). It is
// policy.Policy.Reach's evaluation for the general endpoint, for TCP and
// UDP alike (the policy's own answers the lockout question, for TCP).
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
// tcp/port from anybody (or every address of a family: ufw's IPv4-only
// rules are "from 0.0.0.0/0"), if one decides for that port.
func (s *FirewallState) Limited(port uint16) (*FirewallRule, bool) {
	v := s.Reach("tcp", port, nil)
	if v.Rule != nil && v.Rule.Action == ActLimit && (!v.Rule.From.IsValid() || v.Rule.From.Bits() == 0) {
		return v.Rule, true
	}
	return nil, false
}

// PolicyFile reads palisade's firewall policy file (firewall.rules in the
// configuration directory; docs/firewall-policy.md) with
// internal/firewall/policy, the parser "palisade firewall" uses.
type PolicyFile struct {
	Path  string
	Names policy.Names
}

// Read implements FirewallReader. A file that does not parse gives a state
// with Errors (the commands and the daemon refuse it too).
func (p PolicyFile) Read(context.Context) (*FirewallState, error) {
	data, err := fsx.ReadFile(p.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	st := &FirewallState{Name: FirewallPalisade, Files: []string{p.Path}, Default: string(policy.DefaultDeny)}
	f, err := policy.Parse(p.Path, data, p.Names)
	if err != nil {
		st.Errors = append(st.Errors, strings.Split(err.Error(), "\n")...)
		return st, nil
	}
	pol := f.Policy()
	st.Enabled, st.Default = pol.Enabled, string(pol.Default)
	// The file's lines in order: directives and rules, for file:line.
	var ruleLines []int
	for i, raw := range strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n") {
		words, _, err := policy.Split(raw)
		if err != nil || len(words) == 0 {
			continue
		}
		where := fmt.Sprintf("%s:%d", p.Path, i+1)
		switch words[0] {
		case "enable", "disable":
			st.EnabledWhere = where
		case "default":
			if _, out, err := policy.ParseDefaultArgs(words[1:]); err == nil && !out {
				st.DefaultWhere = where
			}
		default:
			if _, ok := policy.ParseAction(words[0]); ok {
				ruleLines = append(ruleLines, i+1)
			}
		}
	}
	for i, r := range pol.Rules {
		fr := fromPolicy(r)
		fr.Number = i + 1
		if i < len(ruleLines) {
			fr.Where = fmt.Sprintf("%s:%d", p.Path, ruleLines[i])
		}
		st.Rules = append(st.Rules, fr)
	}
	return st, nil
}

// fromPolicy is a policy rule as the audit evaluates it.
func fromPolicy(r policy.Rule) FirewallRule {
	fr := FirewallRule{Text: r.String(), Action: string(r.Action), Proto: r.Proto, Ports: r.ToPorts, From: r.From,
		Conditional: r.Iface != "" || r.To.IsValid() || len(r.FromPorts) > 0, Conn: r.Limit.Conn}
	if r.Limit.Rate > 0 {
		fr.Rate = policy.FormatRate(r.Limit.Rate, r.Limit.Per)
	}
	return fr
}

// UFWFiles reads ufw's configuration with policy.ImportUFW (ufw.conf's
// ENABLED, /etc/default/ufw's DEFAULT_INPUT_POLICY, the user rules), all
// under Root.
type UFWFiles struct {
	Root string
}

// Read implements FirewallReader.
func (u UFWFiles) Read(context.Context) (*FirewallState, error) {
	conf := fsx.Path(u.Root, policy.UFWConf)
	if _, err := os.Stat(conf); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	imp, err := policy.ImportUFW(u.Root)
	if err != nil {
		return nil, err
	}
	st := &FirewallState{Name: FirewallUFW, Files: imp.Files, Enabled: imp.Enabled, EnabledWhere: conf,
		Default: string(imp.Default), DefaultWhere: fsx.Path(u.Root, policy.UFWDefault), Warnings: imp.Warnings}
	for i, r := range imp.Rules {
		fr := fromPolicy(r)
		fr.Number, fr.Where = i+1, fmt.Sprintf("ufw rule %d (%s, %s)", i+1, fsx.Path(u.Root, policy.UFWRules4), fsx.Path(u.Root, policy.UFWRules6))
		st.Rules = append(st.Rules, fr)
	}
	return st, nil
}

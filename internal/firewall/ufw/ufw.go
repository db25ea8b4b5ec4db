// Package ufw is palisade's ufw firewall backend: it runs the ufw program
// (through sysexec, argv only) to prepend one rule per ban and port group,
// tagged with the comment "palisade:JAIL".
//
// ufw has no timeouts: Expires is informational and the ban manager lifts
// expired bans itself with Remove. List parses "ufw show added" for
// palisade's rules and fills Expires from what this process added (zero,
// permanent, for rules it does not know). Every ban costs one ufw run per
// group of up to 15 ports (ufw is slow: roughly a few runs per second), so
// this backend suits hosts with few bans; use nftables or ipset for more.
// Changes are not atomic across bans.
package ufw

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// Options configure a Backend.
type Options struct {
	Runner sysexec.Runner
	Logger *slog.Logger
	// Program is the ufw binary (default "ufw").
	Program string
}

// Backend is the ufw backend. It is safe for concurrent use.
type Backend struct {
	mu      sync.Mutex
	opts    Options
	log     *slog.Logger
	jails   map[string]firewall.JailSpec
	expires map[string]firewall.Ban // "jail prefix" -> last ban added
}

var _ firewall.Backend = (*Backend)(nil)

// New returns a ufw backend.
func New(opts Options) (*Backend, error) {
	if opts.Runner == nil {
		return nil, errors.New("ufw backend: no program runner")
	}
	if opts.Program == "" {
		opts.Program = "ufw"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Backend{opts: opts, log: log, jails: map[string]firewall.JailSpec{}, expires: map[string]firewall.Ban{}}, nil
}

// Name implements firewall.Backend.
func (b *Backend) Name() string { return "ufw" }

func (b *Backend) ufw(ctx context.Context, args ...string) (string, error) {
	res, err := b.opts.Runner.Run(ctx, sysexec.Cmd{Name: b.opts.Program, Args: args})
	if err != nil {
		return "", err
	}
	return string(res.Stdout), nil
}

// Setup implements firewall.Backend. ufw must be active, or bans would
// silently not apply.
func (b *Backend) Setup(ctx context.Context, jails []firewall.JailSpec) error {
	for _, j := range jails {
		if err := firewall.CheckJailName(j.Name); err != nil {
			return fmt.Errorf("ufw setup: %w", err)
		}
		switch normProto(j.Scope.Protocol) {
		case "tcp", "udp", "all":
		default:
			return fmt.Errorf("ufw setup: jail %s: ufw supports tcp, udp or all, not %q", j.Name, j.Scope.Protocol)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	out, err := b.ufw(ctx, "status")
	if err != nil {
		return fmt.Errorf("ufw setup: %w", err)
	}
	if !strings.Contains(out, "Status: active") {
		return errors.New("ufw setup: ufw is not active (run \"ufw enable\" or choose another firewall backend)")
	}
	for _, j := range jails {
		b.jails[j.Name] = j
	}
	return nil
}

func normProto(p string) string {
	p = strings.ToLower(strings.TrimSpace(p))
	if p == "" {
		return "tcp"
	}
	return p
}

// RuleArgs returns the ufw rule specification (after "prepend" or "delete")
// for one ban, one per group of up to 15 ports.
func RuleArgs(j firewall.JailSpec, p netip.Prefix) [][]string {
	action := "reject"
	if j.Block == firewall.Drop {
		action = "deny"
	}
	from := p.Addr().String()
	if p.Bits() != p.Addr().BitLen() {
		from = p.String()
	}
	base := []string{action, "from", from}
	proto := normProto(j.Scope.Protocol)
	if proto == "all" {
		return [][]string{base}
	}
	if len(j.Scope.Ports) == 0 {
		return [][]string{slices.Concat(base, []string{"to", "any", "proto", proto})}
	}
	var out [][]string
	for _, g := range firewall.GroupPorts(firewall.MergePorts(j.Scope.Ports), 15) {
		out = append(out, slices.Concat(base, []string{"to", "any", "port", firewall.FormatPorts(g), "proto", proto}))
	}
	return out
}

// Add implements firewall.Backend.
func (b *Backend) Add(ctx context.Context, bans []firewall.Ban) error {
	return b.change(ctx, "prepend", bans)
}

// Remove implements firewall.Backend.
func (b *Backend) Remove(ctx context.Context, bans []firewall.Ban) error {
	return b.change(ctx, "delete", bans)
}

func (b *Backend) change(ctx context.Context, verb string, bans []firewall.Ban) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ban := range bans {
		j, ok := b.jails[ban.Jail]
		if !ok {
			return fmt.Errorf("ufw %s: jail %q is not set up", verb, ban.Jail)
		}
		p, err := firewall.Canonical(ban.Prefix)
		if err != nil {
			return fmt.Errorf("ufw %s: jail %s: %w", verb, ban.Jail, err)
		}
		for _, rule := range RuleArgs(j, p) {
			args := append([]string{verb}, rule...)
			if verb == "prepend" {
				args = append(args, "comment", "palisade:"+j.Name)
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if _, err := b.ufw(ctx, args...); err != nil {
				return fmt.Errorf("ufw %s: jail %s: %w", verb, ban.Jail, err)
			}
		}
		key := ban.Jail + " " + p.String()
		if verb == "prepend" {
			ban.Prefix = p
			b.expires[key] = ban
		} else {
			delete(b.expires, key)
		}
	}
	return nil
}

// rule is one palisade rule parsed from "ufw show added".
type rule struct {
	jail   string
	prefix netip.Prefix
	args   []string // the rule specification, for delete
}

// parseAdded reads "ufw show added" lines such as
// "ufw reject from 192.0.2.2 to any port 22 proto tcp comment 'palisade:sshd'".
func parseAdded(out string) []rule {
	var rules []rule
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		spec, comment, ok := strings.Cut(line, " comment ")
		if !ok || !strings.HasPrefix(spec, "ufw ") {
			continue
		}
		comment = strings.Trim(comment, "'\"")
		jail, ok := strings.CutPrefix(comment, "palisade:")
		if !ok || firewall.CheckJailName(jail) != nil {
			continue
		}
		f := strings.Fields(strings.TrimPrefix(spec, "ufw "))
		if len(f) < 3 || f[1] != "from" || (f[0] != "reject" && f[0] != "deny") {
			continue
		}
		var p netip.Prefix
		var err error
		if strings.Contains(f[2], "/") {
			p, err = netip.ParsePrefix(f[2])
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(f[2])
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if err != nil {
			continue
		}
		rules = append(rules, rule{jail: jail, prefix: p, args: f})
	}
	return rules
}

func (b *Backend) added(ctx context.Context) ([]rule, error) {
	out, err := b.ufw(ctx, "show", "added")
	if err != nil {
		return nil, err
	}
	return parseAdded(out), nil
}

// List implements firewall.Backend.
func (b *Backend) List(ctx context.Context) ([]firewall.Ban, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rules, err := b.added(ctx)
	if err != nil {
		return nil, fmt.Errorf("ufw list: %w", err)
	}
	seen := map[string]bool{}
	var out []firewall.Ban
	for _, r := range rules {
		key := r.jail + " " + r.prefix.String()
		if seen[key] {
			continue
		}
		seen[key] = true
		ban := firewall.Ban{Jail: r.jail, Prefix: r.prefix}
		if rec, ok := b.expires[key]; ok {
			ban.Expires = rec.Expires
		}
		out = append(out, ban)
	}
	slices.SortFunc(out, func(x, y firewall.Ban) int {
		if c := strings.Compare(x.Jail, y.Jail); c != 0 {
			return c
		}
		return x.Prefix.Addr().Compare(y.Prefix.Addr())
	})
	return out, nil
}

// Teardown implements firewall.Backend: deletes every rule commented
// "palisade:..." (whoever added it).
func (b *Backend) Teardown(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	rules, err := b.added(ctx)
	if err != nil {
		return fmt.Errorf("ufw teardown: %w", err)
	}
	var errs []error
	for _, r := range rules {
		if _, err := b.ufw(ctx, append([]string{"delete"}, r.args...)...); err != nil {
			errs = append(errs, err)
		}
	}
	b.jails = map[string]firewall.JailSpec{}
	b.expires = map[string]firewall.Ban{}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ufw teardown: %w", err)
	}
	return nil
}

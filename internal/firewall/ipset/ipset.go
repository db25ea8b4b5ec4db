// Package ipset is palisade's iptables + ipset firewall backend, for hosts
// without nftables or when asked for. Programs run through sysexec with an
// argument vector, never a shell; bulk changes go to "ipset restore" on
// standard input in one run.
//
// Layout (for IPv4 with iptables, and the same for IPv6 with ip6tables):
//
//	ipset pal_JAIL_4 / pal_JAIL_6   hash:net family inet / inet6, timeout 0
//	                                (per-entry timeouts; "timeout 0" = permanent)
//	chain palisade                  jumped to from the top of INPUT
//	chain pal_JAIL                  jumped to from palisade; one rule per
//	                                group of up to 15 ports:
//	  -p tcp -m multiport --dports 22,8000:8100 -m set --match-set pal_JAIL_4 src
//	  -j REJECT --reject-with tcp-reset   (or icmp port unreachable, or DROP)
//
// Adding an entry that exists refreshes its timeout (ipset -exist).
// ipset restore applies lines in order and stops at the first error, so a
// failing bulk call may be partly applied; the ban manager re-adds on retry.
// hash:net cannot hold a /0 prefix. Bans longer than MaxTimeout (about 24.8
// days) are stored without a kernel timeout. ipset names are at most 31 characters:
// longer jail names are shortened with a hash suffix.
package ipset

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// Options configure a Backend.
type Options struct {
	// Runner runs ipset, iptables and ip6tables.
	Runner sysexec.Runner
	// IPv6 also installs ip6tables rules and IPv6 sets (default on via New).
	NoIPv6 bool
	// MaxElem is each set's capacity (default 1,000,000).
	MaxElem int
	Logger  *slog.Logger
	Now     func() time.Time
}

// Backend is the iptables + ipset backend. It is safe for concurrent use.
type Backend struct {
	mu    sync.Mutex
	opts  Options
	log   *slog.Logger
	jails map[string]firewall.JailSpec
}

var _ firewall.Backend = (*Backend)(nil)

// New returns a backend; nothing is installed until Setup.
func New(opts Options) (*Backend, error) {
	if opts.Runner == nil {
		return nil, errors.New("ipset backend: no program runner")
	}
	if opts.MaxElem <= 0 {
		opts.MaxElem = 1_000_000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Backend{opts: opts, log: log, jails: map[string]firewall.JailSpec{}}, nil
}

// Name implements firewall.Backend.
func (b *Backend) Name() string { return "ipset" }

// MaxTimeout is ipset's largest entry timeout in seconds (about 24.8
// days). Longer bans are stored without a timeout (permanent in the kernel)
// and lifted by the ban manager's Remove; List then reports them as
// permanent.
const MaxTimeout = 2147483

// TopChain is the chain jumped to from INPUT.
const TopChain = "palisade"

type family struct {
	v       int    // 4 or 6
	iptable string // iptables / ip6tables
	inet    string // inet / inet6
}

func (b *Backend) families() []family {
	f := []family{{4, "iptables", "inet"}}
	if !b.opts.NoIPv6 {
		f = append(f, family{6, "ip6tables", "inet6"})
	}
	return f
}

// baseName is the jail's part of set and chain names: the jail name, or
// for long names (ipset names hold 31 characters) and names with "@" or ":"
// a prefix and a hash (firewall.ObjectName).
func baseName(jail string) string { return firewall.ObjectName(jail, 24) }

// SetName returns the ipset name of a jail for IP version 4 or 6.
func SetName(jail string, v int) string { return fmt.Sprintf("pal_%s_%d", baseName(jail), v) }

func chainName(jail string) string { return "pal_" + baseName(jail) }

func (b *Backend) run(ctx context.Context, name string, args ...string) (sysexec.Result, error) {
	return b.opts.Runner.Run(ctx, sysexec.Cmd{Name: name, Args: args})
}

func (b *Backend) ipt(ctx context.Context, f family, args ...string) error {
	_, err := b.run(ctx, f.iptable, append([]string{"-w", "5"}, args...)...)
	return err
}

// iptOK runs a check command (-C, -L): a non-zero exit means "no".
func (b *Backend) iptOK(ctx context.Context, f family, args ...string) (bool, error) {
	err := b.ipt(ctx, f, args...)
	var ee *sysexec.ExitError
	if errors.As(err, &ee) {
		return false, nil
	}
	return err == nil, err
}

// chainHolds reports whether chain ch holds exactly rules (each present,
// and no other rule).
func (b *Backend) chainHolds(ctx context.Context, f family, ch string, rules [][]string) (bool, error) {
	res, err := b.run(ctx, f.iptable, "-w", "5", "-S", ch)
	if err != nil {
		return false, err
	}
	n := 0
	for _, l := range strings.Split(string(res.Stdout), "\n") {
		if strings.HasPrefix(l, "-A ") {
			n++
		}
	}
	if n != len(rules) {
		return false, nil
	}
	for _, r := range rules {
		ok, err := b.iptOK(ctx, f, append([]string{"-C", ch}, r...)...)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// Setup implements firewall.Backend.
func (b *Backend) Setup(ctx context.Context, jails []firewall.JailSpec) error {
	for _, j := range jails {
		if err := firewall.CheckJailName(j.Name); err != nil {
			return fmt.Errorf("ipset setup: %w", err)
		}
		switch normProto(j.Scope.Protocol) {
		case "tcp", "udp", "sctp", "all":
		default:
			return fmt.Errorf("ipset setup: jail %s: unsupported protocol %q", j.Name, j.Scope.Protocol)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, f := range b.families() {
		for _, j := range jails {
			if _, err := b.run(ctx, "ipset", "create", SetName(j.Name, f.v), "hash:net", "family", f.inet,
				"timeout", "0", "maxelem", strconv.Itoa(b.opts.MaxElem), "-exist"); err != nil {
				return fmt.Errorf("ipset setup: jail %s: %w", j.Name, err)
			}
		}
		if ok, err := b.iptOK(ctx, f, "-n", "-L", TopChain); err != nil {
			return fmt.Errorf("ipset setup: %w", err)
		} else if !ok {
			if err := b.ipt(ctx, f, "-N", TopChain); err != nil {
				return fmt.Errorf("ipset setup: %w", err)
			}
		}
		if ok, err := b.iptOK(ctx, f, "-C", "INPUT", "-j", TopChain); err != nil {
			return fmt.Errorf("ipset setup: %w", err)
		} else if !ok {
			if err := b.ipt(ctx, f, "-I", "INPUT", "1", "-j", TopChain); err != nil {
				return fmt.Errorf("ipset setup: %w", err)
			}
		}
		for _, j := range jails {
			ch := chainName(j.Name)
			ok, err := b.iptOK(ctx, f, "-n", "-L", ch)
			if err != nil {
				return fmt.Errorf("ipset setup: %w", err)
			}
			rules := Rules(j, f.v)
			if ok {
				// A restart finds the chain as it left it: rewriting it
				// would open a window in which the jail's bans are not
				// enforced, so it is kept when it already holds exactly
				// the wanted rules.
				var same bool
				same, err = b.chainHolds(ctx, f, ch, rules)
				if err != nil {
					return fmt.Errorf("ipset setup: jail %s: %w", j.Name, err)
				}
				if same {
					rules = nil
				} else {
					err = b.ipt(ctx, f, "-F", ch)
				}
			} else {
				err = b.ipt(ctx, f, "-N", ch)
			}
			if err != nil {
				return fmt.Errorf("ipset setup: jail %s: %w", j.Name, err)
			}
			for _, rule := range rules {
				if err := b.ipt(ctx, f, append([]string{"-A", ch}, rule...)...); err != nil {
					return fmt.Errorf("ipset setup: jail %s: %w", j.Name, err)
				}
			}
			if ok, err := b.iptOK(ctx, f, "-C", TopChain, "-j", ch); err != nil {
				return fmt.Errorf("ipset setup: %w", err)
			} else if !ok {
				if err := b.ipt(ctx, f, "-A", TopChain, "-j", ch); err != nil {
					return fmt.Errorf("ipset setup: jail %s: %w", j.Name, err)
				}
			}
		}
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

// Rules returns the iptables rule arguments (after "-A CHAIN") of a jail
// for IP version v.
func Rules(j firewall.JailSpec, v int) [][]string {
	set := []string{"-m", "set", "--match-set", SetName(j.Name, v), "src"}
	proto := normProto(j.Scope.Protocol)
	unreach := "icmp-port-unreachable"
	if v == 6 {
		unreach = "icmp6-port-unreachable"
	}
	verdict := func(tcp bool) []string {
		switch {
		case j.Block == firewall.Drop:
			return []string{"-j", "DROP"}
		case tcp:
			return []string{"-j", "REJECT", "--reject-with", "tcp-reset"}
		default:
			return []string{"-j", "REJECT", "--reject-with", unreach}
		}
	}
	if proto == "all" {
		if j.Block == firewall.Drop {
			return [][]string{slices.Concat(set, verdict(false))}
		}
		return [][]string{
			slices.Concat([]string{"-p", "tcp"}, set, verdict(true)),
			slices.Concat(set, verdict(false)),
		}
	}
	p := []string{"-p", proto}
	if len(j.Scope.Ports) == 0 {
		return [][]string{slices.Concat(p, set, verdict(proto == "tcp"))}
	}
	var out [][]string
	for _, group := range firewall.GroupPorts(firewall.MergePorts(j.Scope.Ports), 15) {
		out = append(out, slices.Concat(p, []string{"-m", "multiport", "--dports", firewall.FormatPorts(group)}, set, verdict(proto == "tcp")))
	}
	return out
}

// Add implements firewall.Backend: one "ipset restore -exist" run.
func (b *Backend) Add(ctx context.Context, bans []firewall.Ban) error {
	return b.restore(ctx, "add", bans)
}

// Remove implements firewall.Backend: one "ipset restore -exist" run.
func (b *Backend) Remove(ctx context.Context, bans []firewall.Ban) error {
	return b.restore(ctx, "del", bans)
}

func (b *Backend) restore(ctx context.Context, verb string, bans []firewall.Ban) error {
	if len(bans) == 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.opts.Now()
	var buf bytes.Buffer
	buf.Grow(len(bans) * 48)
	n := 0
	for _, ban := range bans {
		if _, ok := b.jails[ban.Jail]; !ok {
			return fmt.Errorf("ipset %s: jail %q is not set up", verb, ban.Jail)
		}
		p, err := canonical(ban.Prefix)
		if err != nil {
			return fmt.Errorf("ipset %s: jail %s: %w", verb, ban.Jail, err)
		}
		v := 4
		if p.Addr().Is6() {
			if b.opts.NoIPv6 {
				return fmt.Errorf("ipset %s: jail %s: %v: IPv6 is disabled", verb, ban.Jail, p)
			}
			v = 6
		}
		secs := 0 // permanent
		if verb == "add" && !ban.Expires.IsZero() {
			d := ban.Expires.Sub(now)
			if d <= 0 {
				continue // already over
			}
			secs = int((d + time.Second - 1) / time.Second) // round up; ipset counts seconds
			if secs > MaxTimeout {
				// Longer than ipset can count: enforce it as permanent in
				// the kernel; the ban manager lifts it when it expires.
				secs = 0
			}
		}
		buf.WriteString(verb)
		buf.WriteByte(' ')
		buf.WriteString(SetName(ban.Jail, v))
		buf.WriteByte(' ')
		buf.WriteString(p.String())
		if verb == "add" {
			buf.WriteString(" timeout ")
			buf.WriteString(strconv.Itoa(secs))
		}
		buf.WriteByte('\n')
		n++
	}
	if n == 0 {
		return nil
	}
	if _, err := b.opts.Runner.Run(ctx, sysexec.Cmd{Name: "ipset", Args: []string{"restore", "-exist"}, Stdin: buf.Bytes()}); err != nil {
		return fmt.Errorf("ipset %s of %d entries: %w", verb, n, err)
	}
	return nil
}

// canonical is firewall.Canonical plus ipset's own limit: hash:net cannot
// hold a /0.
func canonical(p netip.Prefix) (netip.Prefix, error) {
	c, err := firewall.Canonical(p)
	if err == nil && c.Bits() == 0 {
		return netip.Prefix{}, fmt.Errorf("prefix %v: ipset hash:net cannot hold a /0", p)
	}
	return c, err
}

// List implements firewall.Backend by parsing "ipset save" of palisade's
// sets. Sets of jails with shortened names are attributed to the jail set
// up under that name in this process.
func (b *Backend) List(ctx context.Context) ([]firewall.Ban, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	names, err := b.ourSets(ctx)
	if err != nil {
		return nil, err
	}
	jailOf := map[string]string{}
	for j := range b.jails {
		jailOf[baseName(j)] = j
	}
	now := b.opts.Now()
	var out []firewall.Ban
	for _, set := range names {
		res, err := b.run(ctx, "ipset", "save", set)
		if err != nil {
			return nil, fmt.Errorf("ipset list: %w", err)
		}
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(set, "pal_"), "_4"), "_6")
		jail := base
		if j, ok := jailOf[base]; ok {
			jail = j
		}
		bans, err := parseSave(res.Stdout, set, jail, now)
		if err != nil {
			return nil, fmt.Errorf("ipset list: %w", err)
		}
		out = append(out, bans...)
	}
	slices.SortFunc(out, func(x, y firewall.Ban) int {
		if c := strings.Compare(x.Jail, y.Jail); c != 0 {
			return c
		}
		return x.Prefix.Addr().Compare(y.Prefix.Addr())
	})
	return out, nil
}

func (b *Backend) ourSets(ctx context.Context) ([]string, error) {
	res, err := b.run(ctx, "ipset", "list", "-n")
	if err != nil {
		return nil, fmt.Errorf("ipset list: %w", err)
	}
	var out []string
	for _, l := range strings.Split(string(res.Stdout), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "pal_") && (strings.HasSuffix(l, "_4") || strings.HasSuffix(l, "_6")) {
			out = append(out, l)
		}
	}
	return out, nil
}

// parseSave reads "add SET ADDR[/LEN] timeout N" lines of "ipset save".
func parseSave(data []byte, set, jail string, now time.Time) ([]firewall.Ban, error) {
	var out []firewall.Ban
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "add" || f[1] != set {
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
			return nil, fmt.Errorf("set %s: bad entry %q: %w", set, sc.Text(), err)
		}
		ban := firewall.Ban{Jail: jail, Prefix: p}
		for i := 3; i+1 < len(f); i++ {
			if f[i] == "timeout" {
				secs, err := strconv.Atoi(f[i+1])
				if err != nil {
					return nil, fmt.Errorf("set %s: bad timeout in %q", set, sc.Text())
				}
				if secs > 0 {
					ban.Expires = now.Add(time.Duration(secs) * time.Second)
				}
			}
		}
		out = append(out, ban)
	}
	return out, sc.Err()
}

// Teardown implements firewall.Backend: removes the INPUT jump, palisade's
// chains and its sets.
func (b *Backend) Teardown(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, f := range b.families() {
		for i := 0; i < 100; i++ { // remove every copy of the jump, bounded
			ok, err := b.iptOK(ctx, f, "-C", "INPUT", "-j", TopChain)
			if err != nil || !ok {
				break
			}
			if err := b.ipt(ctx, f, "-D", "INPUT", "-j", TopChain); err != nil {
				errs = append(errs, err)
				break
			}
		}
		res, err := b.run(ctx, f.iptable, "-w", "5", "-S")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var chains []string
		for _, l := range strings.Split(string(res.Stdout), "\n") {
			fs := strings.Fields(l)
			if len(fs) == 2 && fs[0] == "-N" && (fs[1] == TopChain || strings.HasPrefix(fs[1], "pal_")) {
				chains = append(chains, fs[1])
			}
		}
		for _, c := range chains {
			if err := b.ipt(ctx, f, "-F", c); err != nil {
				errs = append(errs, err)
			}
		}
		for _, c := range chains {
			if err := b.ipt(ctx, f, "-X", c); err != nil {
				errs = append(errs, err)
			}
		}
	}
	sets, err := b.ourSets(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for _, s := range sets {
		if _, err := b.run(ctx, "ipset", "destroy", s); err != nil {
			errs = append(errs, err)
		}
	}
	b.jails = map[string]firewall.JailSpec{}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ipset teardown: %w", err)
	}
	return nil
}

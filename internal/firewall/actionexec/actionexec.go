// Package actionexec runs fail2ban action.d files that have no native
// palisade equivalent, without a shell.
//
// Compile takes an action's options as the configuration layer read them
// (the [Definition] commands actionstart, actionstop, actioncheck,
// actionban, actionunban, plus the [Init] values; options of
// [Init?family=inet6] are given as "KEY?family=inet6"). It expands option
// tags (<iptables>, <name>, <port>, <blocktype>, ...) textually, because
// they come from the administrator's files, then splits every command line
// into an argument vector with a small quoting grammar that refuses all
// shell syntax. Run-time tags are substituted into single words only, and
// only from validated values:
//
//	<ip>       the banned address or prefix (netip)
//	<ip-rev>   the address in reverse-DNS order (1.2.0.192 for 192.0.2.1)
//	<family>   inet4 or inet6
//	<bantime>  seconds until expiry, -1 for permanent
//	<time>     the current Unix time
//
// Tags that carry attacker-controlled text (<matches>, <ipmatches>,
// <ipjailmatches>, <fid>, <F-*>, <user>, <ip-host>, <raw-ticket>, ...) are
// refused at compile time, as are tags palisade cannot fill.
package actionexec

import (
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

// hooks are the action commands palisade runs.
func hooks() [6]string {
	return [...]string{"actionstart", "actionstop", "actioncheck", "actionban", "actionunban", "actionflush"}
}

// families are fail2ban's <family> values.
func families() [2]string { return [...]string{"inet4", "inet6"} }

// tagClass says how a tag is handled.
type tagClass int

const (
	optionTag      tagClass = iota // looked up in the action's options
	runtimeTag                     // filled per ban from validated values
	refusedTag                     // carries attacker-controlled text
	unavailableTag                 // exists in fail2ban, not filled by palisade
)

func classify(name string) tagClass {
	switch name {
	case "ip", "ip-rev", "family", "bantime", "time":
		return runtimeTag
	case "matches", "ipmatches", "ipjailmatches", "fid", "user", "ip-host", "raw-ticket":
		return refusedTag
	case "failures", "ipfailures", "ipjailfailures", "bancount", "fq-hostname", "sh-hostname":
		return unavailableTag
	}
	if strings.HasPrefix(name, "F-") {
		return refusedTag
	}
	return optionTag
}

// Action is a compiled action file.
type Action struct {
	Name string
	// cmds[hook][family] is the command list (nil if the hook is empty).
	cmds map[string]map[string][]command
}

// Error is a compile error naming the action, option and command line.
type Error struct {
	Action, Option string
	Line           string
	Err            error
}

func (e *Error) Error() string {
	if e.Line == "" {
		return fmt.Sprintf("action %s: %s: %v", e.Action, e.Option, e.Err)
	}
	return fmt.Sprintf("action %s: %s: %q: %v", e.Action, e.Option, e.Line, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Compile validates and compiles an action. name is the action's name
// (for messages and Backend.Name). Errors name the option and line.
func Compile(name string, opts map[string]string) (*Action, error) {
	a := &Action{Name: name, cmds: map[string]map[string][]command{}}
	for _, h := range hooks() {
		for _, fam := range families() {
			text, err := expand(opts, h, fam)
			if err != nil {
				return nil, &Error{Action: name, Option: h, Err: err}
			}
			var cmds []command
			for _, line := range strings.Split(text, "\n") {
				line = strings.TrimSpace(line)
				if line == "" {
					continue
				}
				c, err := split(line)
				if err != nil {
					return nil, &Error{Action: name, Option: h, Line: strings.ReplaceAll(line, string(tagMark), ""), Err: err}
				}
				if h != "actionban" && h != "actionunban" && usesIP(c) {
					return nil, &Error{Action: name, Option: h, Line: strings.ReplaceAll(line, string(tagMark), ""), Err: errors.New("<ip> is only known in actionban and actionunban")}
				}
				if len(c) > 0 {
					cmds = append(cmds, c)
				}
			}
			if a.cmds[h] == nil {
				a.cmds[h] = map[string][]command{}
			}
			a.cmds[h][fam] = cmds
		}
	}
	if len(a.cmds["actionban"]["inet4"]) == 0 {
		return nil, &Error{Action: name, Option: "actionban", Err: errors.New("empty: the action bans nothing")}
	}
	return a, nil
}

func usesIP(c command) bool {
	for _, w := range c {
		for _, p := range w {
			if p.tag == "ip" || p.tag == "ip-rev" {
				return true
			}
		}
	}
	return false
}

// lookup finds an option, preferring its family-specific variant.
func lookup(opts map[string]string, key, fam string) (string, bool) {
	if fam == "inet6" {
		if v, ok := opts[key+"?family=inet6"]; ok {
			return v, true
		}
	}
	v, ok := opts[key]
	return v, ok
}

// maxExpansion bounds tag expansion (depth and size).
const (
	maxDepth = 20
	maxSize  = 64 << 10
)

// expand replaces option tags recursively and marks run-time tags.
func expand(opts map[string]string, key, fam string) (string, error) {
	v, ok := lookup(opts, key, fam)
	if !ok {
		return "", nil
	}
	return expandText(opts, v, fam, 0, []string{key})
}

func expandText(opts map[string]string, s, fam string, depth int, stack []string) (string, error) {
	if depth > maxDepth {
		return "", fmt.Errorf("tag expansion deeper than %d (through %s)", maxDepth, strings.Join(stack, " -> "))
	}
	if strings.ContainsRune(s, tagMark) {
		return "", errors.New("NUL character in option value")
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			b.WriteString(s)
			break
		}
		j := strings.IndexByte(s[i+1:], '>')
		if j < 0 {
			b.WriteString(s)
			break
		}
		name := s[i+1 : i+1+j]
		if !isTagName(name) {
			// not a tag (for example a redirection "2>&1"): keep the '<'
			b.WriteString(s[:i+1])
			s = s[i+1:]
			continue
		}
		b.WriteString(s[:i])
		s = s[i+2+j:]
		switch classify(name) {
		case refusedTag:
			return "", fmt.Errorf("tag <%s> carries attacker-controlled text and is refused", name)
		case runtimeTag:
			b.WriteRune(tagMark)
			b.WriteString(name)
			b.WriteRune(tagMark)
			continue
		case unavailableTag:
			return "", fmt.Errorf("tag <%s> is not available in palisade's action runner", name)
		}
		if slices.Contains(stack, name) {
			return "", fmt.Errorf("tag <%s> refers to itself (%s)", name, strings.Join(append(stack, name), " -> "))
		}
		val, ok := lookup(opts, name, fam)
		if !ok {
			return "", fmt.Errorf("unknown tag <%s>", name)
		}
		sub, err := expandText(opts, val, fam, depth+1, append(stack, name))
		if err != nil {
			return "", err
		}
		b.WriteString(sub)
		if b.Len() > maxSize {
			return "", fmt.Errorf("expansion larger than %d bytes", maxSize)
		}
	}
	return b.String(), nil
}

func isTagName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '/' || c == '.') {
			return false
		}
	}
	return true
}

// Values are the run-time values of one invocation.
type Values struct {
	Prefix  netip.Prefix // zero for start/stop/check/flush
	Expires time.Time    // zero = permanent
	Family  string       // inet4 or inet6
	Now     time.Time
}

func (v Values) tag(name string) (string, error) {
	switch name {
	case "family":
		return v.Family, nil
	case "time":
		return strconv.FormatInt(v.Now.Unix(), 10), nil
	case "bantime":
		if v.Expires.IsZero() {
			return "-1", nil
		}
		return strconv.FormatInt(int64(max(0, v.Expires.Sub(v.Now).Round(time.Second)/time.Second)), 10), nil
	case "ip", "ip-rev":
		if !v.Prefix.IsValid() {
			return "", fmt.Errorf("tag <%s> used outside actionban/actionunban", name)
		}
		a := v.Prefix.Addr()
		if name == "ip-rev" {
			return reverse(a), nil
		}
		if v.Prefix.Bits() == a.BitLen() {
			return a.String(), nil
		}
		return v.Prefix.String(), nil
	}
	return "", fmt.Errorf("unknown run-time tag <%s>", name)
}

func reverse(a netip.Addr) string {
	b := a.AsSlice()
	var parts []string
	if a.Is4() {
		for i := len(b) - 1; i >= 0; i-- {
			parts = append(parts, strconv.Itoa(int(b[i])))
		}
	} else {
		const hex = "0123456789abcdef"
		for i := len(b) - 1; i >= 0; i-- {
			parts = append(parts, string(hex[b[i]&0xf]), string(hex[b[i]>>4]))
		}
	}
	return strings.Join(parts, ".")
}

// Argv renders the commands of a hook for the given values.
func (a *Action) Argv(hook string, v Values) ([][]string, error) {
	cmds := a.cmds[hook][v.Family]
	out := make([][]string, 0, len(cmds))
	for _, c := range cmds {
		argv := make([]string, 0, len(c))
		for _, w := range c {
			var sb strings.Builder
			for _, p := range w {
				if p.tag == "" {
					sb.WriteString(p.lit)
					continue
				}
				s, err := v.tag(p.tag)
				if err != nil {
					return nil, fmt.Errorf("action %s: %s: %w", a.Name, hook, err)
				}
				sb.WriteString(s)
			}
			argv = append(argv, sb.String())
		}
		out = append(out, argv)
	}
	return out, nil
}

// Backend runs one compiled action for one jail as a firewall.Backend.
// It cannot list bans (List returns firewall.ErrNotListable): the ban
// manager's store is the record. actionstart runs at Setup for IPv4 and
// before the first IPv6 ban for IPv6 (when its commands differ);
// actionstop runs at Teardown for every started family.
type Backend struct {
	mu      sync.Mutex
	action  *Action
	run     sysexec.Runner
	log     *slog.Logger
	now     func() time.Time
	started map[string]bool
}

var _ firewall.Backend = (*Backend)(nil)

// NewBackend returns a Backend for a compiled action. log may be nil.
func NewBackend(a *Action, run sysexec.Runner, log *slog.Logger) *Backend {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Backend{action: a, run: run, log: log, now: time.Now, started: map[string]bool{}}
}

// Name implements firewall.Backend.
func (b *Backend) Name() string { return "exec:" + b.action.Name }

func (b *Backend) hook(ctx context.Context, hook string, v Values) error {
	v.Now = b.now()
	cmds, err := b.action.Argv(hook, v)
	if err != nil {
		return err
	}
	for _, argv := range cmds {
		if _, err := b.run.Run(ctx, sysexec.Cmd{Name: argv[0], Args: argv[1:]}); err != nil {
			return fmt.Errorf("action %s: %s: %w", b.action.Name, hook, err)
		}
	}
	return nil
}

func (b *Backend) start(ctx context.Context, fam string) error {
	if b.started[fam] {
		return nil
	}
	if fam == "inet6" && b.started["inet4"] && b.sameForFamilies("actionstart") && b.sameForFamilies("actioncheck") {
		b.started[fam] = true
		return nil
	}
	if err := b.hook(ctx, "actionstart", Values{Family: fam}); err != nil {
		return err
	}
	if err := b.hook(ctx, "actioncheck", Values{Family: fam}); err != nil {
		return err
	}
	b.started[fam] = true
	return nil
}

// sameForFamilies reports whether a hook runs the very same commands for
// IPv4 and IPv6 (then it runs once).
func (b *Backend) sameForFamilies(hook string) bool {
	now := b.now()
	v4, err4 := b.action.Argv(hook, Values{Family: "inet4", Now: now})
	v6, err6 := b.action.Argv(hook, Values{Family: "inet6", Now: now})
	if err4 != nil || err6 != nil {
		return false
	}
	return slices.EqualFunc(v4, v6, slices.Equal[[]string])
}

// Setup implements firewall.Backend: runs actionstart (and actioncheck)
// once for IPv4. The jail specs are not used: the action's own options
// carry its ports and protocol.
func (b *Backend) Setup(ctx context.Context, _ []firewall.JailSpec) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.start(ctx, "inet4")
}

// Add implements firewall.Backend: actionban per ban. Every ban is tried;
// the errors are joined.
func (b *Backend) Add(ctx context.Context, bans []firewall.Ban) error {
	return b.each(ctx, "actionban", bans)
}

// Remove implements firewall.Backend: actionunban per ban.
func (b *Backend) Remove(ctx context.Context, bans []firewall.Ban) error {
	return b.each(ctx, "actionunban", bans)
}

func (b *Backend) each(ctx context.Context, hook string, bans []firewall.Ban) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, ban := range bans {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := ban.Prefix
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("invalid prefix %v", p))
			continue
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		p = netip.PrefixFrom(p.Addr().WithZone(""), p.Bits()).Masked()
		fam := "inet4"
		if p.Addr().Is6() {
			fam = "inet6"
		}
		if hook == "actionban" {
			if err := b.start(ctx, fam); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if err := b.hook(ctx, hook, Values{Prefix: p, Expires: ban.Expires, Family: fam}); err != nil {
			errs = append(errs, err)
		}
		if len(errs) >= 10 {
			errs = append(errs, errors.New("further bans not attempted after 10 errors"))
			break
		}
	}
	return errors.Join(errs...)
}

// List implements firewall.Backend.
func (b *Backend) List(context.Context) ([]firewall.Ban, error) { return nil, firewall.ErrNotListable }

// Teardown implements firewall.Backend: actionstop for each started family.
func (b *Backend) Teardown(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	v4 := b.started["inet4"]
	for _, fam := range families() {
		if !b.started[fam] {
			continue
		}
		delete(b.started, fam)
		if fam == "inet6" && v4 && b.sameForFamilies("actionstop") {
			continue // the IPv4 stop already did it
		}
		if err := b.hook(ctx, "actionstop", Values{Family: fam}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

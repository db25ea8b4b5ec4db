package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/jail"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// Bounds of the stage beside a jail.
const (
	// lookupTimeout bounds one DNS lookup.
	lookupTimeout = 5 * time.Second
	// cacheMax bounds each cache (command answers, host names).
	cacheMax = 10000
	// maxAddrsPerHost bounds the addresses one host-name failure counts.
	maxAddrsPerHost = 16
	// hostRefresh is how often ignoreip host names and the host's own
	// addresses are looked up again.
	hostRefresh = 5 * time.Minute
)

// Resolver resolves host names (net.Resolver implements it).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// SelfAddrs returns the host's own addresses (every interface), for
// ignoreself. Errors yield an empty list: loopback is covered anyway.
func SelfAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap().WithZone(""))
		}
	}
	return out
}

type cmdAnswer struct {
	ignore bool
	at     time.Time
}

type dnsAnswer struct {
	addrs []netip.Addr
	err   error
	at    time.Time
}

// stage does, beside one jail, what needs the outside world: running the
// ignorecommand and resolving host names, each bounded in time, cached and
// cancelled when the jail stops. The jail itself stays pure.
type stage struct {
	cfg      StageConfig
	logic    *jail.Jail
	runner   sysexec.Runner
	resolver Resolver
	self     func() []netip.Addr
	clock    func() time.Time
	log      *slog.Logger
	ctx      context.Context

	mu   sync.Mutex
	cmds map[netip.Addr]cmdAnswer
	// running holds the ignorecommand runs in flight: a second failure
	// of the same address waits for the first run's answer instead of
	// running the command again.
	running map[netip.Addr]chan struct{}
	dns     map[string]dnsAnswer
}

// lookupMode says whether a failure's id can be used now.
type lookupMode int

const (
	addrsReady lookupMode = iota // addresses known
	needSlow                     // a lookup or command must run first
	skipID                       // the id cannot be counted (reason given)
)

// addrs returns the addresses a failure whose id is not an address counts
// for without waiting: a host-name id's cached addresses (Jail.handle
// counts an address id itself).
func (s *stage) addrs(id string) ([]netip.Addr, lookupMode, string) {
	id = strings.TrimSpace(id)
	switch {
	case id == "":
		return nil, skipID, "failure has no address"
	case s.cfg.UseDNS == "no":
		return nil, skipID, "id " + strconv.Quote(id) + " is not an address (usedns = no)"
	case s.cfg.UseDNS == "raw":
		return nil, skipID, "id " + strconv.Quote(id) + " is not an address (usedns = raw): cannot be banned in the firewall"
	case !config.ValidHostName(id):
		return nil, skipID, "id " + strconv.Quote(id) + " is neither an address nor a host name"
	}
	s.mu.Lock()
	ans, ok := s.dns[strings.ToLower(id)]
	s.mu.Unlock()
	if !ok || s.clock().Sub(ans.at) >= s.cfg.CacheTTL {
		return nil, needSlow, ""
	}
	return s.resolved(id, ans)
}

func (s *stage) resolved(id string, ans dnsAnswer) ([]netip.Addr, lookupMode, string) {
	if ans.err != nil || len(ans.addrs) == 0 {
		return nil, skipID, "host name " + strconv.Quote(id) + " does not resolve"
	}
	return ans.addrs, addrsReady, ""
}

// resolve looks a host-name id up (bounded, cached).
func (s *stage) resolve(ctx context.Context, id string) ([]netip.Addr, lookupMode, string) {
	if addrs, mode, why := s.addrs(id); mode != needSlow {
		return addrs, mode, why
	}
	ans := s.lookup(ctx, strings.ToLower(strings.TrimSpace(id)))
	if ans.err == nil && s.cfg.UseDNS == "warn" {
		s.log.Warn("failure identified by host name, not address; the address may be forged (set usedns = no to stop this)",
			"jail", s.logic.Name(), "host", id, "addresses", len(ans.addrs))
	}
	return s.resolved(id, ans)
}

func (s *stage) lookup(ctx context.Context, host string) dnsAnswer {
	if s.resolver == nil {
		return dnsAnswer{err: errors.New("no resolver"), at: s.clock()}
	}
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	addrs, err := s.resolver.LookupNetIP(lctx, "ip", host)
	cancel()
	if ctx.Err() != nil {
		return dnsAnswer{err: ctx.Err()} // stopping: not cached
	}
	var out []netip.Addr
	for _, a := range addrs {
		if a = a.Unmap().WithZone(""); a.IsValid() && len(out) < maxAddrsPerHost {
			out = append(out, a)
		}
	}
	ans := dnsAnswer{addrs: out, err: err, at: s.clock()}
	s.mu.Lock()
	if len(s.dns) >= cacheMax {
		clear(s.dns)
	}
	// host may be a substring of the read its line came in (source.Line):
	// the cache keeps a copy, not the read.
	s.dns[strings.Clone(host)] = ans
	s.mu.Unlock()
	return ans
}

// facts returns, without waiting, what the stage knows about an address:
// ok is false when the ignorecommand must run first.
func (s *stage) facts(a netip.Addr) (jail.Facts, bool) {
	if len(s.cfg.Command) == 0 {
		return jail.Facts{}, true
	}
	if s.logic.Exempt(a) != nil {
		return jail.Facts{}, true // exempt anyway: no need to ask
	}
	s.mu.Lock()
	ans, ok := s.cmds[a.Unmap()]
	s.mu.Unlock()
	if !ok || s.clock().Sub(ans.at) >= s.cfg.CacheTTL {
		return jail.Facts{}, false
	}
	return s.fact(ans.ignore, true), true
}

func (s *stage) fact(ignore, cached bool) jail.Facts {
	if !ignore {
		return jail.Facts{}
	}
	return jail.Facts{Command: jail.CommandMatch(s.cfg.Command, cached)}
}

// command runs the ignorecommand for a (bounded, cached).
func (s *stage) command(ctx context.Context, a netip.Addr) jail.Facts {
	if f, ok := s.facts(a); ok {
		return f
	}
	a = a.Unmap()
	s.mu.Lock()
	if wait, ok := s.running[a]; ok {
		s.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return jail.Facts{}
		}
		if f, ok := s.facts(a); ok {
			return f
		}
		s.mu.Lock() // that run gave no answer (it was stopped): run it here
	}
	if s.running == nil {
		s.running = map[netip.Addr]chan struct{}{}
	}
	done := make(chan struct{})
	s.running[a] = done
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.running[a] == done {
			delete(s.running, a)
		}
		s.mu.Unlock()
		close(done)
	}()
	ip := a.String()
	args := make([]string, len(s.cfg.Command)-1)
	for i, x := range s.cfg.Command[1:] {
		args[i] = strings.ReplaceAll(x, "<ip>", ip)
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CommandTimeout)
	_, err := s.runner.Run(cctx, sysexec.Cmd{Name: strings.ReplaceAll(s.cfg.Command[0], "<ip>", ip), Args: args})
	cancel()
	if ctx.Err() != nil {
		return jail.Facts{} // stopping: not cached
	}
	ignore := err == nil
	var ee *sysexec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode == 1) {
		s.log.Error("ignorecommand failed; address not ignored", "jail", s.logic.Name(), "addr", ip, "err", err)
	}
	s.mu.Lock()
	if len(s.cmds) >= cacheMax {
		clear(s.cmds)
	}
	s.cmds[a] = cmdAnswer{ignore: ignore, at: s.clock()}
	s.mu.Unlock()
	return s.fact(ignore, false)
}

// cachedIgnore is the ignorecommand's cached "ignore" for a, for explain.
func (s *stage) cachedIgnore(a netip.Addr) *jail.IgnoreMatch {
	if len(s.cfg.Command) == 0 {
		return nil
	}
	s.mu.Lock()
	ans, ok := s.cmds[a.Unmap()]
	s.mu.Unlock()
	if ok && ans.ignore && s.clock().Sub(ans.at) < s.cfg.CacheTTL {
		return jail.CommandMatch(s.cfg.Command, true)
	}
	return nil
}

// refreshIgnore looks up the ignoreip host names and the host's own
// addresses and hands them to the jail.
func (s *stage) refreshIgnore(ctx context.Context) {
	var self []netip.Addr
	if s.self != nil {
		self = s.self()
	}
	hosts := make([]jail.ResolvedHost, 0, len(s.cfg.Hosts))
	for _, h := range s.cfg.Hosts {
		ans := s.lookup(ctx, h)
		if ctx.Err() != nil {
			return
		}
		if ans.err != nil {
			s.log.Warn("ignoreip host name does not resolve", "jail", s.logic.Name(), "host", h, "err", ans.err)
		}
		hosts = append(hosts, jail.ResolvedHost{Host: h, Addrs: ans.addrs, Err: ans.err})
	}
	s.logic.SetIgnoreExtra(self, hosts)
}

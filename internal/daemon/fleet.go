package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/fleet"
)

// Fleet-wide bans in the daemon (internal/fleet), a Subsystem: Start
// builds the node when [fleet] is enabled (a missing key is logged and
// shown by status, never fatal), Run runs it beside the jails, Reload
// follows the trust file and the policy (and starts or stops the node when
// [fleet] is turned on or off), Stop stops it. The fleet jail enforces the
// remote bans through the same ban manager, router and firewall set-up as
// every other jail (fleetSpecs, called by setupFirewall). Without [fleet]
// enabled = true nothing here runs: no goroutine, no socket.

// fleetRT is the daemon's fleet node.
type fleetRT struct {
	d *Daemon

	mu     sync.Mutex
	on     bool // [fleet] enabled in the running configuration
	cfg    config.FleetSettings
	node   *fleet.Node
	err    string
	ctx    context.Context // Serve's, once serving
	cancel context.CancelFunc
	done   chan struct{}

	smu      sync.Mutex
	sessions []netip.Addr
	readAt   time.Time
}

// fleetSubsystem is the fleet's entry in subsystems().
func (d *Daemon) fleetSubsystem() Subsystem {
	d.fl = &fleetRT{d: d}
	return d.fl
}

// Name implements Subsystem.
func (f *fleetRT) Name() string { return "fleet" }

// Start implements Subsystem: it builds the node when [fleet] is enabled.
func (f *fleetRT) Start(context.Context) error {
	cfg := f.d.config()
	if !cfg.Daemon.Fleet.Enabled {
		return nil
	}
	f.build(cfg)
	return nil
}

// Run implements Subsystem: it starts the node (if any) and returns; the
// node runs until ctx is done or Stop.
func (f *fleetRT) Run(ctx context.Context) error {
	f.mu.Lock()
	f.ctx = ctx
	f.mu.Unlock()
	f.run()
	return nil
}

// Stop implements Subsystem.
func (f *fleetRT) Stop(context.Context) error {
	f.stop()
	return nil
}

// build makes the node of cfg, recording why it cannot run.
func (f *fleetRT) build(cfg *config.Config) {
	node, err := f.d.newFleetNode(cfg)
	f.mu.Lock()
	f.on, f.cfg, f.node, f.err = true, cfg.Daemon.Fleet, node, ""
	if err != nil {
		f.err = err.Error()
	}
	f.mu.Unlock()
	if err != nil {
		f.d.log.Error("fleet not started", "err", err)
	}
}

// enabled reports whether the fleet is configured in the running
// configuration.
func (f *fleetRT) enabled() bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.on
}

// utmpPath lists the sessions logged in now.
const utmpPath = "/var/run/utmp"

// fleetSpecs is the fleet jail's firewall set-up (every port, the
// default block type) when [fleet] is enabled; setupFirewall sets it up
// with the jails'.
func fleetSpecs(cfg *config.Config) []firewall.JailSpec {
	f := cfg.Daemon.Fleet
	if !f.Enabled {
		return nil
	}
	b := cfg.Daemon.Firewall.BlockType
	if b == "" {
		b = firewall.Reject
	}
	return []firewall.JailSpec{{Name: f.Jail, Scope: firewall.Scope{Protocol: "all"}, Block: b}}
}

// fleetJails names the fleet jail for the ban manager's restore.
func fleetJails(cfg *config.Config) []string {
	if !cfg.Daemon.Fleet.Enabled {
		return nil
	}
	return []string{cfg.Daemon.Fleet.Jail}
}

// originName is the host name as an origin name.
func originName() string {
	h, _ := os.Hostname()
	h, _, _ = strings.Cut(h, ".")
	var b strings.Builder
	for _, c := range h {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
			b.WriteRune(c)
		case b.Len() > 0:
			b.WriteByte('-')
		}
	}
	s := strings.TrimRight(b.String(), "-_")
	if len(s) > 64 {
		s = s[:64]
	}
	if !fleet.ValidName(s) {
		return "palisade"
	}
	return s
}

// FleetName is this server's origin name: [fleet] name, or the host name.
func FleetName(f config.FleetSettings) string { return fleetName(f) }

// fleetName is this server's origin name.
func fleetName(f config.FleetSettings) string {
	if f.Name != "" {
		return f.Name
	}
	return originName()
}

func shareFunc(list []string) func(string) bool {
	if list == nil {
		return nil
	}
	set := map[string]bool{}
	for _, j := range list {
		set[j] = true
	}
	return func(j string) bool { return set[j] }
}

// fleetPolicy builds the fleet's policy from the configuration.
func (d *Daemon) fleetPolicy(cfg *config.Config) fleet.Policy {
	f := cfg.Daemon.Fleet
	type ign struct {
		p    netip.Prefix
		rule string
	}
	var ignores []ign
	for _, p := range f.IgnoreIP {
		ignores = append(ignores, ign{p, "[fleet] ignoreip " + p.String()})
	}
	for _, j := range cfg.Enabled() {
		for _, e := range j.IgnoreIP {
			if e.Prefix.IsValid() {
				ignores = append(ignores, ign{e.Prefix, fmt.Sprintf("ignoreip %s of jail %s", e.Text, j.Name)})
			}
		}
	}
	return fleet.Policy{
		Apply:  shareFunc(f.Apply),
		Quorum: f.Quorum,
		Caps:   fleet.Caps{Rate: f.Rate, Active: f.MaxBans, TTL: f.MaxTTL, Prefix4: f.Prefix4, Prefix6: f.Prefix6},
		Exempt: func(p netip.Prefix) (string, bool) {
			if err := d.bans.Check(p); err != nil {
				return err.Error(), true
			}
			for _, i := range ignores {
				if i.p.Overlaps(p) {
					return i.rule, true
				}
			}
			if d.fl.enabled() {
				for _, a := range d.fl.loggedIn() {
					if p.Contains(a) {
						return "an SSH session logged in from " + a.String(), true
					}
				}
			}
			return "", false
		},
	}
}

// loggedIn returns the addresses of the sessions logged in now (read at
// most every 5 seconds).
func (f *fleetRT) loggedIn() []netip.Addr {
	f.smu.Lock()
	defer f.smu.Unlock()
	if time.Since(f.readAt) > 5*time.Second {
		l, err := fleet.LoggedIn(f.d.opts.rooted(utmpPath))
		if err == nil {
			f.sessions = l
		}
		f.readAt = time.Now()
	}
	return f.sessions
}

// newFleetNode reads the key and the trust file and builds the node.
func (d *Daemon) newFleetNode(cfg *config.Config) (*fleet.Node, error) {
	f := cfg.Daemon.Fleet
	if j, ok := cfg.Jail(f.Jail); ok && j.Enabled {
		return nil, fmt.Errorf("[fleet] jail = %s names a configured jail: remote bans need a jail of their own", f.Jail)
	}
	key, err := fleet.ReadKey(d.opts.rooted(f.Key))
	if err != nil {
		return nil, err
	}
	trust, err := fleet.ReadTrust(d.opts.rooted(f.Trust))
	if err != nil {
		return nil, err
	}
	r := d.opts.rooted
	return fleet.New(fleet.Config{
		Name: fleetName(f), Key: key, Trust: trust, Stream: f.Stream, Jail: f.Jail, Share: shareFunc(f.Share),
		Policy: d.fleetPolicy(cfg), QueueMax: f.Queue,
		Conn: fleet.Conn{Servers: f.Servers, Creds: r(f.Creds), NKey: r(f.NKey), User: f.User, Password: f.Password,
			CA: r(f.TLSCA), Cert: r(f.TLSCert), Key: r(f.TLSKey)},
	}, fleet.Deps{Bans: d.bans, Store: d.st, Now: d.now, Logger: d.log})
}

func (f *fleetRT) run() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.node == nil || f.ctx == nil || f.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	f.cancel, f.done = cancel, done
	node := f.node
	go func() {
		defer close(done)
		if err := node.Run(ctx); err != nil {
			f.d.log.Error("fleet", "err", err)
		}
	}()
	f.d.log.Info("fleet started", "name", node.Name(), "servers", strings.Join(f.cfg.Servers, ","), "stream", f.cfg.Stream)
}

func (f *fleetRT) stop() {
	f.mu.Lock()
	cancel, done := f.cancel, f.done
	f.cancel, f.done = nil, nil
	f.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Reload implements Reloader: the trust set and the policy change in
// place; other changes restart the node; [fleet] turned on starts it (its
// jail set up first), turned off stops it and lifts its remote bans, as a
// removed jail's are.
func (f *fleetRT) Reload(ctx context.Context, d *Daemon) error {
	cfg := d.config()
	n := cfg.Daemon.Fleet
	f.mu.Lock()
	on, old, node := f.on, f.cfg, f.node
	f.mu.Unlock()
	switch {
	case !on && !n.Enabled:
		return nil
	case !n.Enabled:
		f.stop()
		f.mu.Lock()
		f.on, f.node, f.err = false, nil, ""
		f.mu.Unlock()
		lifted, err := d.bans.UnbanAll(ctx, old.Jail)
		d.log.Info("[fleet] disabled: fleet-wide bans stopped, remote bans lifted", "lifted", lifted)
		if err != nil {
			return fmt.Errorf("lifting the remote bans: %w", err)
		}
		return nil
	case !on:
		d.setupFirewall(ctx, d.runningPlans())
		f.build(cfg)
		f.run()
		return nil
	}
	if node != nil && sameFleetConn(old, n) {
		trust, err := fleet.ReadTrust(d.opts.rooted(n.Trust))
		if err != nil {
			return fmt.Errorf("trust file not reloaded; the previous one stays in force: %w", err)
		}
		f.mu.Lock()
		f.cfg = n
		f.mu.Unlock()
		node.Reconfigure(trust, d.fleetPolicy(cfg), shareFunc(n.Share))
		d.log.Info("fleet: trust file and policy reloaded", "trusted", len(trust.Names()))
		return nil
	}
	f.stop()
	if old.Jail != n.Jail {
		d.setupFirewall(ctx, d.runningPlans())
		if _, err := d.bans.UnbanAll(ctx, old.Jail); err != nil {
			d.log.Error("fleet jail renamed: lifting the old jail's remote bans", "jail", old.Jail, "err", err)
		}
	}
	f.build(cfg)
	f.run()
	return nil
}

// sameFleetConn reports whether two settings share everything but the
// trust file contents and the policy.
func sameFleetConn(a, b config.FleetSettings) bool {
	return strings.Join(a.Servers, " ") == strings.Join(b.Servers, " ") && a.Name == b.Name && a.Key == b.Key &&
		a.Trust == b.Trust && a.Creds == b.Creds && a.NKey == b.NKey && a.User == b.User && a.Password == b.Password &&
		a.TLSCA == b.TLSCA && a.TLSCert == b.TLSCert && a.TLSKey == b.TLSKey && a.Stream == b.Stream && a.Jail == b.Jail &&
		a.Queue == b.Queue
}

func (f *fleetRT) current() (*fleet.Node, string, config.FleetSettings) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.node, f.err, f.cfg
}

// isFleetJail reports whether name is the jail of remote bans.
func (d *Daemon) isFleetJail(name string) bool {
	if !d.fl.enabled() {
		return false
	}
	_, _, c := d.fl.current()
	return c.Jail == name
}

// fleetOp answers the fleet verb.
func (d *Daemon) fleetOp() (any, error) {
	if !d.fl.enabled() {
		return nil, errors.New("fleet-wide bans are not configured here ([fleet] enabled = true in palisade.local; see docs/fleet.md)")
	}
	node, errText, c := d.fl.current()
	if node == nil {
		return fleet.Status{Name: fleetName(c), Servers: c.Servers, Jail: c.Jail, Refused: map[string]uint64{}, Peers: []fleet.Peer{},
			Error: errText, Daemon: true}, nil
	}
	st := node.Status()
	st.Daemon = true
	return st, nil
}

// fleetSummary is the fleet's part of status.
func (d *Daemon) fleetSummary() *control.FleetSummary {
	if !d.fl.enabled() {
		return nil
	}
	node, errText, c := d.fl.current()
	if node == nil {
		return &control.FleetSummary{Name: fleetName(c), Jail: c.Jail, Error: errText}
	}
	st := node.Status()
	s := &control.FleetSummary{Name: st.Name, Connected: st.Connected, Server: st.Server, CaughtUp: st.CaughtUp, Jail: st.Jail,
		RemoteBans: st.RemoteBans, Peers: len(st.Peers), Queue: st.Queue.Depth}
	d.mu.Lock()
	fwErr := d.fwErr[st.Jail]
	d.mu.Unlock()
	switch {
	case fwErr != "":
		s.Error = fwErr
	case !st.Connected && st.LastError != "":
		s.Error = st.LastError
	case st.Stream.Error != "":
		s.Error = st.Stream.Error
	case st.Stream.Problem != "":
		s.Error = st.Stream.Problem
	}
	return s
}

// fleetEntries adds to the fleet jail's bans the origins they enforce.
func (d *Daemon) fleetEntries(list []control.BanEntry) []control.BanEntry {
	if !d.fl.enabled() {
		return list
	}
	node, _, c := d.fl.current()
	if node == nil {
		return list
	}
	for i, e := range list {
		if e.Jail != c.Jail {
			continue
		}
		p, err := netip.ParsePrefix(e.IP)
		if err != nil {
			a, aerr := netip.ParseAddr(e.IP)
			if aerr != nil {
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		list[i].Origins = node.Origins(p)
	}
	return list
}

// fleetExplain lists the fleet's records for a.
func (d *Daemon) fleetExplain(a netip.Addr) []control.FleetOrigin {
	if !d.fl.enabled() {
		return nil
	}
	node, _, _ := d.fl.current()
	if node == nil {
		return nil
	}
	return node.Explain(a)
}

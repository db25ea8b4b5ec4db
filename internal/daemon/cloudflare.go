package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/palisade-project/palisade/internal/ban"
	"github.com/palisade-project/palisade/internal/cloudflare"
	"github.com/palisade-project/palisade/internal/cloudflare/edge"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/nft"
	"github.com/palisade-project/palisade/internal/jail"
	"github.com/palisade-project/palisade/internal/store"
)

// The Cloudflare origin lock and edge bans in the daemon. Wiring: New
// calls startCloudflare after the bans are restored and before the jails
// start (so every jail sees the lock's ranges as an implicit ignore),
// Serve calls serveCloudflare, Reload calls reloadCloudflare, and the
// control socket's cloudflare verb reaches cloudflareOp.

// IgnoreRuleCloudflare names the implicit ignore in explain.
const IgnoreRuleCloudflare = "cloudflare"

// cloudflareRT is the daemon's lock manager and edge-ban mirror.
type cloudflareRT struct {
	d     *Daemon
	mgr   *cloudflare.Manager
	close func() error
	// base is the ban manager's protected list without Cloudflare's ranges.
	base []netip.Prefix

	mu         sync.Mutex
	ctx        context.Context // Serve's, once serving
	edgeCfg    config.CloudflareSettings
	mirror     *edge.Mirror
	edgeErr    string
	edgeCancel context.CancelFunc
	edgeDone   chan struct{}
}

// errLock stands in for a lock whose netlink connection could not open.
type errLock struct{ err error }

func (e errLock) Apply(context.Context, firewall.LockSpec) error { return e.err }
func (e errLock) State(context.Context) (firewall.LockState, error) {
	return firewall.LockState{}, e.err
}
func (e errLock) Remove(context.Context) error { return e.err }

// newCloudflareLock returns the kernel lock (nftables in the current
// network namespace) and its closer.
func newCloudflareLock(given cloudflare.Lock) (cloudflare.Lock, func() error) {
	if given != nil {
		return given, func() error { return nil }
	}
	l, err := nft.NewCloudflareLock(nft.Options{})
	if err != nil {
		return errLock{fmt.Errorf("the Cloudflare lock needs nftables: %w", err)}, func() error { return nil }
	}
	return l, l.Close
}

// managerConfig maps the configuration section to the manager's.
func managerConfig(cf config.CloudflareSettings) cloudflare.Config {
	return cloudflare.Config{Enabled: cf.Enabled, Ports: cf.Ports, URL: cf.URL, Interval: cf.Interval, Allow: cf.Allow, Block: cf.BlockType}
}

// newCloudflareManager builds a manager over st and lock.
func newCloudflareManager(cf config.CloudflareSettings, st *store.Store, lock cloudflare.Lock, log *slog.Logger, now func() time.Time, onChange func([]netip.Prefix)) (*cloudflare.Manager, error) {
	return cloudflare.New(managerConfig(cf), cloudflare.Deps{
		Lock: lock, Store: st, Now: now, Logger: log, OnChange: onChange,
	})
}

// startCloudflare builds the lock manager and brings the kernel in line
// with the configuration. Failures are logged and shown by status; they
// never stop the daemon.
func (d *Daemon) startCloudflare(ctx context.Context, cfg *config.Config) error {
	c := &cloudflareRT{d: d, base: d.bans.Protected(), edgeCfg: cfg.Daemon.Cloudflare}
	lock, closer := newCloudflareLock(d.opts.CloudflareLock)
	c.close = closer
	mgr, err := newCloudflareManager(cfg.Daemon.Cloudflare, d.st, lock, d.log, d.now, c.protect)
	if err != nil {
		closer()
		return err
	}
	c.mgr = mgr
	d.cf = c
	if err := mgr.Start(ctx, managerConfig(cfg.Daemon.Cloudflare)); err != nil {
		d.log.Error("cloudflare lock not applied", "err", err)
	}
	return nil
}

// protect keeps Cloudflare's ranges unbannable while the lock is on: the
// ban manager refuses them (last line of defence) and bans already on them
// are lifted, since a banned edge address takes the site down for every
// visitor routed through it.
func (c *cloudflareRT) protect(ranges []netip.Prefix) {
	if err := c.d.bans.SetProtected(slices.Concat(c.base, ranges)); err != nil {
		c.d.log.Error("cloudflare: cannot protect the lock's ranges", "err", err)
	}
	if len(ranges) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, e := range c.d.bans.List("") {
		if !slices.ContainsFunc(ranges, e.Prefix.Overlaps) {
			continue
		}
		if _, err := c.d.bans.Unban(ctx, e.Jail, e.Prefix); err != nil && !errors.Is(err, ban.ErrNotBanned) {
			c.d.log.Error("cloudflare: cannot lift a ban on a Cloudflare address", "jail", e.Jail, "prefix", e.Prefix, "err", err)
			continue
		}
		c.d.log.Warn("cloudflare: lifted a ban on a Cloudflare address (the origin lock is on)", "jail", e.Jail, "prefix", e.Prefix)
	}
}

// cloudflareIgnore is every jail's implicit ignore: Cloudflare's ranges
// while the lock is on.
func (d *Daemon) cloudflareIgnore(a netip.Addr) *jail.IgnoreMatch {
	if d.cf == nil {
		return nil
	}
	p, ok := d.cf.mgr.Covering(a)
	if !ok {
		return nil
	}
	return &jail.IgnoreMatch{Rule: IgnoreRuleCloudflare, Entry: p.String() + ", a Cloudflare range while the origin lock is on"}
}

// serveCloudflare runs the lock's sync loop and the edge-ban mirror until
// ctx is done.
func (d *Daemon) serveCloudflare(ctx context.Context, wg *sync.WaitGroup) {
	if d.cf == nil {
		return
	}
	wg.Add(1)
	go func() { defer wg.Done(); d.cf.mgr.Run(ctx) }()
	d.cf.mu.Lock()
	d.cf.ctx = ctx
	d.cf.mu.Unlock()
	d.cf.startEdge()
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		d.cf.stopEdge()
	}()
}

// reloadCloudflare applies a reloaded [cloudflare] section.
func (d *Daemon) reloadCloudflare(cfg *config.Config) {
	if d.cf == nil {
		return
	}
	if err := d.cf.mgr.Start(context.Background(), managerConfig(cfg.Daemon.Cloudflare)); err != nil {
		d.log.Error("cloudflare lock after reload", "err", err)
	}
	c := d.cf
	c.mu.Lock()
	old := c.edgeCfg
	c.edgeCfg = cfg.Daemon.Cloudflare
	serving := c.ctx != nil
	c.mu.Unlock()
	n := cfg.Daemon.Cloudflare
	if serving && (old.EdgeBans != n.EdgeBans || old.Zone != n.Zone || old.TokenFile != n.TokenFile || old.APIURL != n.APIURL) {
		c.stopEdge()
		c.startEdge()
	}
}

// mirrored reports whether a jail's bans go to the edge: its ports (of
// tcp, or every protocol) include a locked port.
func (c *cloudflareRT) mirrored(jailName string) bool {
	d := c.d
	d.mu.Lock()
	j, ok := d.cfg.Jail(jailName)
	d.mu.Unlock()
	if !ok {
		return false
	}
	c.mu.Lock()
	locked := c.edgeCfg.Ports
	c.mu.Unlock()
	return jailCoversLock(j, locked)
}

func jailCoversLock(j config.Jail, locked []firewall.PortRange) bool {
	switch j.Protocol {
	case "", "tcp", "all":
	default:
		return false
	}
	if len(j.Ports) == 0 {
		return true
	}
	for _, a := range j.Ports {
		for _, b := range locked {
			if a.From <= b.To && b.From <= a.To {
				return true
			}
		}
	}
	return false
}

func (c *cloudflareRT) startEdge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mirror, c.edgeErr = nil, ""
	cf := c.edgeCfg
	if !cf.EdgeBans || c.ctx == nil {
		return
	}
	token, err := edge.ReadToken(c.d.opts.rooted(cf.TokenFile))
	var api *edge.Client
	if err == nil {
		api, err = edge.NewClient(edge.ClientConfig{BaseURL: cf.APIURL, Zone: cf.Zone, Token: token})
	}
	var m *edge.Mirror
	if err == nil {
		host, _ := os.Hostname()
		m, err = edge.New(edge.Config{Zone: cf.Zone, Host: host, Mirrored: c.mirrored},
			edge.Deps{Bans: c.d.bans, API: api, Store: c.d.st, Now: c.d.now, Logger: c.d.log})
	}
	if err != nil {
		c.edgeErr = err.Error()
		c.d.log.Error("edge bans not started", "err", err)
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	done := make(chan struct{})
	c.mirror, c.edgeCancel, c.edgeDone = m, cancel, done
	go func() {
		defer close(done)
		_ = m.Run(ctx)
	}()
	c.d.log.Info("edge bans started", "zone", cf.Zone)
}

func (c *cloudflareRT) stopEdge() {
	c.mu.Lock()
	cancel, done := c.edgeCancel, c.edgeDone
	c.edgeCancel, c.edgeDone = nil, nil
	c.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func (c *cloudflareRT) closeAll() {
	c.stopEdge()
	if err := c.close(); err != nil {
		c.d.log.Warn("cloudflare lock: close", "err", err)
	}
}

// edgeStatus is the mirror's state for status (nil when edge bans are off).
func (c *cloudflareRT) edgeStatus() *edge.Status {
	c.mu.Lock()
	on, m, zone, errText := c.edgeCfg.EdgeBans, c.mirror, c.edgeCfg.Zone, c.edgeErr
	c.mu.Unlock()
	if !on {
		return nil
	}
	if m == nil {
		return &edge.Status{Zone: zone, Failures: []edge.Failure{}, Error: errText}
	}
	st := m.Status()
	return &st
}

// cloudflareOp answers the control socket's cloudflare verb.
func (d *Daemon) cloudflareOp(ctx context.Context, args *control.CloudflareArgs) (any, error) {
	if d.cf == nil {
		return nil, errors.New("the Cloudflare lock is not available in this daemon")
	}
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	return runCloudflareOp(ctx, d.cf.mgr, cfg, d.opts.Root, args, func(st *cloudflare.Status) {
		st.Daemon = true
		st.Edge = d.cf.edgeStatus()
		if st.Edge != nil && st.Edge.Error != "" {
			st.Warnings = append(st.Warnings, "edge bans are not running: "+st.Edge.Error)
		}
		if st.Edge != nil && st.Edge.Failing > 0 {
			st.Warnings = append(st.Warnings, fmt.Sprintf("%d edge ban(s) failing at Cloudflare's API (retried with backoff): %s", st.Edge.Failing, st.Edge.LastError))
		}
	})
}

// runCloudflareOp is the cloudflare verb over mgr, for the daemon and for
// a command run without one. finish completes a status.
func runCloudflareOp(ctx context.Context, mgr *cloudflare.Manager, cfg *config.Config, root string, args *control.CloudflareArgs, finish func(*cloudflare.Status)) (any, error) {
	switch args.Op {
	case control.CloudflareSync:
		var ports []firewall.PortRange
		if args.Ports != "" {
			p, err := cloudflare.ParsePorts(args.Ports)
			if err != nil {
				return nil, fmt.Errorf("%w: --ports: %v", control.ErrBadRequest, err)
			}
			ports = p
		}
		if args.Source != "" {
			if _, err := cloudflare.CheckSource(args.Source); err != nil {
				return nil, fmt.Errorf("%w: --source: %v", control.ErrBadRequest, err)
			}
		}
		return mgr.Sync(ctx, cloudflare.SyncOptions{Source: args.Source, Ports: ports, DryRun: args.DryRun, Force: args.Force})
	case control.CloudflareOff:
		if err := mgr.Off(ctx); err != nil {
			return nil, err
		}
		return control.CloudflareOffReply{Removed: true}, nil
	case control.CloudflareStatus:
		st := mgr.Status(ctx)
		finish(&st)
		if st.State == cloudflare.StateOn {
			st.Warnings = append(st.Warnings, cloudflare.CheckRealIP(webJailLogs(cfg, mgr.Config().Ports, root), mgr.List())...)
		}
		return st, nil
	}
	return nil, fmt.Errorf("%w: unknown cloudflare operation %q", control.ErrBadRequest, args.Op)
}

// webJailLogs lists the enabled jails on locked ports with their log
// files, for the real-IP check.
func webJailLogs(cfg *config.Config, locked []firewall.PortRange, root string) []cloudflare.JailLog {
	var out []cloudflare.JailLog
	for _, j := range cfg.Enabled() {
		if !jailCoversLock(j, locked) || len(j.Source.Files) == 0 {
			continue
		}
		jl := cloudflare.JailLog{Jail: j.Name}
		for _, lp := range j.Source.Files {
			p := lp.Pattern
			if root != "" {
				p = filepath.Join(root, p)
			}
			jl.Paths = append(jl.Paths, p)
		}
		out = append(out, jl)
	}
	return out
}

// CloudflareCommand runs a cloudflare operation without a daemon: it opens
// the database and the kernel lock itself, does the work and closes them.
// The daemon must not be running (the database would be locked).
func CloudflareCommand(ctx context.Context, opts Options, args control.CloudflareArgs) (any, error) {
	if err := (control.Request{Verb: control.VerbCloudflare, Cloudflare: &args}).Validate(); err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(opts)
	if err != nil {
		return nil, err
	}
	dbPath := opts.DB
	if dbPath == "" {
		dbPath = opts.rooted(cfg.Daemon.DBFile)
	}
	st, err := store.Open(dbPath, store.Options{LockTimeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("%w (is a daemon running on another socket?)", err)
	}
	defer st.Close()
	lock, closer := newCloudflareLock(opts.CloudflareLock)
	defer closer()
	log := slog.New(slog.DiscardHandler)
	mgr, err := newCloudflareManager(cfg.Daemon.Cloudflare, st, lock, log, opts.Now, nil)
	if err != nil {
		return nil, err
	}
	return runCloudflareOp(ctx, mgr, cfg, opts.Root, &args, func(s *cloudflare.Status) {
		msg := "no daemon is running: nothing keeps the lock in sync or re-installs it after a flush, and jails do not run"
		if s.State == cloudflare.StateOn || s.Enabled {
			s.Warnings = append(s.Warnings, msg)
		}
		if cfg.Daemon.Cloudflare.EdgeBans {
			recs, _ := st.Records(edge.StoreSpace)
			s.Edge = &edge.Status{Zone: cfg.Daemon.Cloudflare.Zone, Rules: len(recs), Failures: []edge.Failure{},
				Error: "the daemon is not running: bans are not mirrored"}
		}
	})
}

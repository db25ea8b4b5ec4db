// Package daemon is palisade's composition root: it builds the store, the
// firewall backend, the ban book, one shared reader per log file, one
// filter and one jail per configured jail, routes lines → filters → jails →
// bans, answers the control socket, reloads on SIGHUP, and tells systemd
// where it stands (READY, RELOADING, STOPPING).
//
// Every jail is isolated: a missing log file, an unreadable journal or a
// broken filter in one jail is logged and shown by status, and the other
// jails keep working. A broken configuration at start-up is fatal; on
// reload it is reported and the running configuration kept.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	sdd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/palisade-project/palisade/internal/ban"
	"github.com/palisade-project/palisade/internal/cloudflare"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/filter"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/detect"
	"github.com/palisade-project/palisade/internal/jail"
	"github.com/palisade-project/palisade/internal/source"
	"github.com/palisade-project/palisade/internal/source/filetail"
	"github.com/palisade-project/palisade/internal/source/journal"
	"github.com/palisade-project/palisade/internal/store"
	"github.com/palisade-project/palisade/internal/sysexec"
	"github.com/palisade-project/palisade/internal/version"
)

// ErrConfig wraps a configuration that cannot be loaded at start-up.
var ErrConfig = errors.New("configuration error")

// Options configure a daemon. ConfigDir, LoadFilter and NewFilter are
// required; the rest have defaults.
type Options struct {
	// ConfigDir is the configuration directory.
	ConfigDir string
	// Socket and DB override the configuration's socket and dbfile.
	Socket string
	DB     string
	// Root prefixes every system path taken from the configuration
	// (logpath, socket, dbfile, logtarget, /etc/services).
	Root string
	// Builtin is palisade's built-in configuration tree.
	Builtin fs.FS
	// LoadFilter reads a jail's filter definition (config.LoadFilter).
	LoadFilter func(cfg *config.Config, j config.Jail) (filter.Definition, error)
	// NewFilter compiles a definition for a jail.
	NewFilter func(def filter.Definition, j config.Jail) (LineFilter, error)
	// Stderr receives the log when the log target is STDERR (default
	// os.Stderr).
	Stderr io.Writer
	// Backend, when set, is used instead of the configured firewall.
	Backend firewall.Backend
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Notify sends a systemd notification (default: sd_notify when
	// NOTIFY_SOCKET is set).
	Notify func(state string)
	// AllowUID widens the control socket's peer check (tests only).
	AllowUID func(uid uint32) bool
	// PollInterval and CheckpointEvery tune the file tailer.
	PollInterval    time.Duration
	CheckpointEvery time.Duration
	// OnBan is called after each new automatic ban (benchmarks).
	OnBan func(jail string, p netip.Prefix)
	// CloudflareLock, when set, replaces the nftables origin lock (tests).
	CloudflareLock cloudflare.Lock
}

// Daemon is a running palisade.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	logFile *os.File
	now     func() time.Time
	started time.Time

	st      *store.Store
	fw      firewall.Backend // the router
	router  *router
	defKind string // the default backend's kind ("" when given or log)
	native  map[string]firewall.Backend

	bans    *ban.Manager
	logW    io.Writer
	level   *slog.LevelVar
	tailer  *filetail.Tailer
	journal *journal.Reader
	fj      *failJournal
	srv     *control.Server
	dbPath  string
	cf      *cloudflareRT // the Cloudflare lock and edge bans (cloudflare.go)
	obs     observer      // notifications, metrics, health (observe.go)

	rmu      sync.Mutex // guards routes, routeErr
	routes   map[string]Route
	routeErr map[string]string

	mu        sync.Mutex // guards cfg, jails, reloadErr
	cfg       *config.Config
	jails     map[string]*jailRT
	reloadErr string
}

func (o *Options) rooted(p string) string {
	if o.Root == "" || p == "" {
		return p
	}
	return filepath.Join(o.Root, p)
}

// LoadConfig loads the configuration the daemon would use.
func LoadConfig(opts Options) (*config.Config, error) {
	services := wellKnownServices()
	for _, p := range []string{opts.rooted("/etc/services"), "/etc/services"} {
		if s, err := firewall.LoadServices(p); err == nil {
			services = s
			break
		}
	}
	cfg, err := config.Load(opts.ConfigDir, config.LoadOptions{Builtin: opts.Builtin, Services: services})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return cfg, nil
}

// Run builds the daemon and runs it until ctx is done.
func Run(ctx context.Context, opts Options) error {
	d, err := New(ctx, opts)
	if err != nil {
		return err
	}
	return d.Serve(ctx)
}

// New builds everything and restores the stored bans; the daemon is ready
// to Serve.
func New(ctx context.Context, opts Options) (_ *Daemon, err error) {
	if opts.LoadFilter == nil || opts.NewFilter == nil {
		return nil, errors.New("daemon: LoadFilter and NewFilter are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.Notify == nil {
		opts.Notify = func(state string) { _, _ = sdd.SdNotify(false, state) }
	}
	cfg, err := LoadConfig(opts)
	if err != nil {
		return nil, err
	}
	d := &Daemon{opts: opts, now: opts.Now, cfg: cfg, jails: map[string]*jailRT{},
		native: map[string]firewall.Backend{}, routes: map[string]Route{}, routeErr: map[string]string{}}
	defer func() {
		if err != nil {
			d.close(context.Background())
		}
	}()
	if err := d.openLog(cfg.Daemon); err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings {
		d.log.Warn("configuration: " + w)
	}

	d.dbPath = opts.DB
	if d.dbPath == "" {
		d.dbPath = opts.rooted(cfg.Daemon.DBFile)
	}
	if err := os.MkdirAll(filepath.Dir(d.dbPath), 0o700); err != nil {
		return nil, fmt.Errorf("database directory: %w", err)
	}
	d.st, err = store.Open(d.dbPath, store.Options{Logger: d.log})
	if err != nil {
		return nil, err
	}
	def, err := d.backend(cfg.Daemon.Firewall)
	if err != nil {
		return nil, err
	}
	d.router = newRouter(ctx, d.meter(def))
	d.fw = d.router
	d.routeJails(ctx, cfg)
	if err := d.fw.Setup(ctx, d.specs(cfg)); err != nil {
		return nil, fmt.Errorf("firewall %s setup: %w", d.fw.Name(), err)
	}
	var protected []netip.Prefix
	for _, a := range selfAddrs() {
		protected = append(protected, netip.PrefixFrom(a, a.BitLen()))
	}
	d.bans, err = ban.New(ban.Config{Protected: protected, HistoryMaxAge: cfg.Daemon.DBPurgeAge},
		ban.Deps{Store: d.st, Backend: d.fw, Now: d.now, Logger: d.log, BanLog: d.logW})
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	rs, err := d.bans.Restore(ctx)
	if err != nil {
		// The bans stay stored and marked unenforced; reconcile retries.
		d.log.Error("restoring bans in the firewall", "err", err)
	}
	d.log.Debug("ban restore took", "took", time.Since(t0).Round(time.Millisecond).String(), "restored", rs.Restored)
	if err := d.startCloudflare(ctx, cfg); err != nil {
		d.log.Error("cloudflare lock unavailable", "err", err)
	}

	keep, _ := journalBounds(cfg, d.now())
	t1 := time.Now()
	fj, all, err := openFailJournal(d.dbPath+".failures", keep)
	if err != nil {
		return nil, err
	}
	d.log.Info("failure journal read", "records", len(all), "took", time.Since(t1).Round(time.Millisecond).String())
	d.fj = fj
	recs := map[string][]failRecord{}
	for _, r := range all {
		recs[r.Jail] = append(recs[r.Jail], r)
	}
	all = nil
	d.tailer = filetail.New(filetail.Config{
		Store: positions{d.st, d.fj}, Logger: d.log,
		PollInterval: opts.PollInterval, CheckpointEvery: opts.CheckpointEvery,
	})

	d.journal = journal.New(journal.Config{Store: positions{d.st, d.fj}, Logger: d.log, CheckpointEvery: opts.CheckpointEvery})

	socket := opts.Socket
	if socket == "" {
		socket = opts.rooted(cfg.Daemon.Socket)
	}
	d.srv, err = control.Listen(socket, control.Options{Logger: d.log, AllowUID: opts.AllowUID})
	if err != nil {
		return nil, err
	}

	if err := d.startObserve(cfg); err != nil {
		return nil, err
	}
	for _, j := range cfg.Enabled() {
		d.jails[j.Name] = d.startJail(cfg, j, recs[j.Name])
	}
	d.settleSources(3 * time.Second)
	d.started = d.now()
	return d, nil
}

// settleSources waits (bounded) until every file reader has opened its
// file or found it missing, so that lines written after READY are never
// skipped by a reader that starts at the end of its file.
func (d *Daemon) settleSources(max time.Duration) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		pending := false
		for _, fs := range d.tailer.Stats() {
			if fs.Status.State == source.StateMissing && fs.Status.Err != nil && fs.Status.Err.Error() == "not opened yet" {
				pending = true
				break
			}
		}
		if !pending {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	d.log.Warn("some log files were not opened within the start-up wait", "wait", max.String())
}

func (d *Daemon) openLog(ds config.Daemon) error {
	var w io.Writer = d.opts.Stderr
	switch ds.LogTarget {
	case "STDERR", "":
	case "STDOUT":
		w = os.Stdout
	default:
		p := d.opts.rooted(ds.LogTarget)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("log target: %w", err)
		}
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o640)
		if err != nil {
			return fmt.Errorf("log target: %w", err)
		}
		d.logFile = f
		w = f
	}
	d.level = new(slog.LevelVar)
	d.level.Set(ds.LogLevel)
	d.logW = w
	d.log = NewLogger(w, d.level)
	return nil
}

// backend picks the firewall backend: the configured one, or the first
// usable of nftables, iptables+ipset and ufw (internal/firewall/detect).
func (d *Daemon) backend(fs config.FirewallSettings) (firewall.Backend, error) {
	if d.opts.Backend != nil {
		return d.opts.Backend, nil
	}
	if fs.Backend == "log" {
		return &logBackend{Fake: firewall.NewFake()}, nil
	}
	kind, reason, err := detect.Choose(fs.Backend, d.detectDeps())
	if err != nil {
		return nil, err
	}
	b, err := detect.New(kind, d.detectDeps())
	if err != nil {
		return nil, err
	}
	d.defKind = kind
	d.native[kind] = b
	d.log.Info("firewall backend chosen", "backend", kind, "why", reason)
	return b, nil
}

// logBackend records bans in memory only: bans are logged by the ban
// book, nothing reaches the kernel.
type logBackend struct{ *firewall.Fake }

// Name implements firewall.Backend.
func (logBackend) Name() string { return "log" }

func (d *Daemon) specs(cfg *config.Config) []firewall.JailSpec {
	var out []firewall.JailSpec
	d.rmu.Lock()
	defer d.rmu.Unlock()
	for _, j := range cfg.Enabled() {
		if _, bad := d.routeErr[j.Name]; bad {
			continue
		}
		s := j.Spec(cfg.Daemon.Firewall.BlockType)
		if d.routes[j.Name].AllPorts {
			s.Scope.Ports = nil
		}
		out = append(out, s)
	}
	return out
}

// startJail builds one jail. Problems are recorded in the jail, never
// returned: the other jails keep working.
func (d *Daemon) startJail(cfg *config.Config, j config.Jail, replay []failRecord) *jailRT {
	r := &jailRT{cfg: j, d: d, log: d.log, srcState: map[string]string{}}
	d.rmu.Lock()
	rerr := d.routeErr[j.Name]
	d.rmu.Unlock()
	if rerr != "" {
		r.buildErr = rerr
		return r
	}
	jc, err := jailConfig(j)
	if err == nil {
		r.jail, err = jail.New(jc, jail.Deps{
			History: d.bans, Logger: d.log, SelfAddrs: selfAddrs,
			Runner: sysexec.NewExec(10 * time.Second), Resolver: resolver{}, Implicit: d.cloudflareIgnore,
		})
	}
	if err != nil {
		r.buildErr = err.Error()
		d.log.Error("jail not started", "jail", j.Name, "err", err)
		return r
	}
	def, err := d.opts.LoadFilter(cfg, j)
	if err == nil {
		r.filt, err = d.opts.NewFilter(def, j)
	}
	if err != nil {
		r.buildErr = fmt.Sprintf("filter %s: %v", j.Filter.Name, err)
		r.filt = nil
		d.log.Error("jail has no working filter", "jail", j.Name, "err", err)
		return r
	}
	if len(replay) > 0 {
		t0 := time.Now()
		d.replay(r, replay)
		d.log.Info("failures restored", "jail", j.Name, "records", len(replay), "took", time.Since(t0).Round(time.Millisecond).String())
	}
	b := source.Backend{Kind: source.BackendAuto}
	if pb, err := source.ParseBackend(j.BackendName); err == nil {
		b = pb
	}
	var patterns []string
	head := false
	for _, lp := range j.LogPaths {
		patterns = append(patterns, d.opts.rooted(lp.Pattern))
		head = head || lp.Head
	}
	switch b.Resolve(patterns) {
	case source.BackendSystemd:
		r.journal = true
		r.sources = []string{"journal"}
		match := j.JournalMatch
		if match == "" {
			match = def.JournalMatch
		}
		spec := journal.Spec{Match: match, Directory: j.BackendOptions["journalpath"], Lookback: j.FindTime}
		if f := j.BackendOptions["journalfiles"]; f != "" {
			spec.Files = strings.Fields(f)
		}
		unsub, err := d.journal.Subscribe(spec, r)
		if err != nil {
			r.buildErr = "journal: " + err.Error()
			d.log.Error("jail source", "jail", j.Name, "err", err)
			return r
		}
		r.unsub = append(r.unsub, unsub)
	default:
		r.sources = patterns
		if len(patterns) == 0 {
			r.buildErr = "no logpath"
			return r
		}
		unsub, err := d.tailer.Subscribe(patterns, filetail.Options{Head: head}, r)
		if err != nil {
			r.buildErr = err.Error()
			d.log.Error("jail source", "jail", j.Name, "err", err)
			return r
		}
		r.unsub = append(r.unsub, unsub)
	}
	d.log.Info("jail started", "jail", j.Name, "filter", j.Filter.Raw, "sources", fmt.Sprint(r.sources))
	return r
}

// replay feeds the journal's records of r's jail that are still inside
// findtime back into the jail and remembers their lines.
func (d *Daemon) replay(r *jailRT, recs []failRecord) {
	now := d.now()
	limit := now.Add(-r.cfg.FindTime).UnixNano()
	for _, rec := range recs {
		if rec.Jail != r.cfg.Name || rec.T <= limit {
			continue
		}
		f := filter.Failure{ID: rec.ID, Time: time.Unix(0, rec.T), Attempts: 1}
		if a, err := netip.ParseAddr(rec.ID); err == nil {
			f.Addr = a
		}
		// Bans these failures led to are in the store already.
		_ = r.jail.Observe(f, time.Unix(0, rec.Now))
		d.fj.remember(rec.Key, time.Unix(0, rec.T).Add(r.cfg.FindTime))
	}
}

func (r *jailRT) stop() {
	r.mu.Lock()
	unsub := r.unsub
	r.unsub = nil
	r.mu.Unlock()
	for _, u := range unsub {
		u()
	}
}

// Serve runs until ctx is done: control socket, ban expiry, SIGHUP
// reloads. It tells systemd READY=1 once serving.
func (d *Daemon) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.mu.Lock()
	njails := len(d.jails)
	d.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		if err := d.bans.Run(ctx); err != nil {
			d.log.Error("ban manager", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := d.srv.Serve(ctx, handler{d}); err != nil {
			d.log.Error("control socket", "err", err)
		}
	}()
	go func() { defer wg.Done(); d.maintain(ctx) }()
	d.serveCloudflare(ctx, &wg)
	d.startFirewall(ctx, &wg)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	d.log.Info("palisade ready", "version", version.Get().Version, "jails", njails, "socket", d.srv.Path(), "db", d.dbPath)
	d.opts.Notify(sdd.SdNotifyReady)
	d.serveObserve(ctx)
	for {
		select {
		case <-ctx.Done():
			d.opts.Notify(sdd.SdNotifyStopping)
			d.log.Info("palisade stopping")
			cancel()
			wg.Wait()
			return d.close(context.Background())
		case <-hup:
			if _, err := d.Reload(); err != nil {
				d.log.Error("reload failed; the running configuration is kept", "err", err)
			}
		}
	}
}

// maintain compacts the failure journal.
func (d *Daemon) maintain(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if d.fj.size() < 100000 && time.Since(last) < 10*time.Minute {
			continue
		}
		last = time.Now()
		d.compactJournal()
	}
}

// compactJournal drops the failure records that can no longer matter:
// outside findtime, of a jail no longer running, or of an address the
// jail's failure table does not hold any more (evicted, banned, forgotten).
func (d *Daemon) compactJournal() {
	d.mu.Lock()
	inWindow, limit := journalBounds(d.cfg, d.now())
	running := map[string]*jail.Jail{}
	for name, r := range d.jails {
		if r.jail != nil {
			running[name] = r.jail
		}
	}
	d.mu.Unlock()
	now := d.now()
	keep := func(r failRecord) bool {
		if !inWindow(r) {
			return false
		}
		j := running[r.Jail]
		if j == nil {
			return false
		}
		a, err := netip.ParseAddr(r.ID)
		if err != nil {
			return true // a host-name id: keep
		}
		return j.Explain(a, now).Tracked
	}
	t0 := time.Now()
	before := d.fj.size()
	if err := d.fj.compact(keep, limit); err != nil {
		d.log.Warn("compacting the failure journal", "err", err)
		return
	}
	d.log.Debug("failure journal compacted", "before", before, "after", d.fj.size(), "took", time.Since(t0).Round(time.Millisecond).String())
}

// journalBounds says which failure records can still matter: those of an
// enabled jail inside its findtime, at most failtable.size × maxretry per
// jail (the most its failure table can hold).
func journalBounds(cfg *config.Config, now time.Time) (func(failRecord) bool, func(string) int) {
	find := map[string]int64{}
	lim := map[string]int{}
	for _, j := range cfg.Enabled() {
		find[j.Name] = j.FindTime.Nanoseconds()
		lim[j.Name] = j.FailTableSize * j.MaxRetry
	}
	n := now.UnixNano()
	keep := func(r failRecord) bool {
		ft, ok := find[r.Jail]
		return ok && r.T > n-ft
	}
	return keep, func(jail string) int { return lim[jail] }
}

// Reload re-reads the configuration. Unchanged jails keep their counters;
// a broken configuration is refused and the running one kept.
func (d *Daemon) Reload() (control.ReloadReply, error) {
	d.opts.Notify(sdd.SdNotifyReloading)
	defer d.opts.Notify(sdd.SdNotifyReady)
	cfg, err := LoadConfig(d.opts)
	if err != nil {
		d.mu.Lock()
		d.reloadErr = err.Error()
		d.mu.Unlock()
		return control.ReloadReply{}, err
	}
	d.routeJails(context.Background(), cfg)
	var rep control.ReloadReply
	d.mu.Lock()
	old := d.cfg
	next := map[string]*jailRT{}
	for _, j := range cfg.Enabled() {
		if r, ok := d.jails[j.Name]; ok && sameJail(r.cfg, j) && r.buildErr == "" && !d.routeFailed(j.Name) {
			// Unchanged: the running jail (and its counters) stays.
			next[j.Name] = r
			continue
		}
		if r, ok := d.jails[j.Name]; ok {
			r.stop()
			rep.Changed = append(rep.Changed, j.Name)
		} else {
			rep.Added = append(rep.Added, j.Name)
		}
		next[j.Name] = d.startJail(cfg, j, nil)
	}
	for name, r := range d.jails {
		if _, ok := next[name]; !ok {
			r.stop()
			rep.Removed = append(rep.Removed, name)
		}
	}
	d.jails = next
	d.cfg = cfg
	d.reloadErr = ""
	for name := range next {
		rep.Jails = append(rep.Jails, name)
	}
	d.mu.Unlock()
	sort.Strings(rep.Jails)
	d.reloadObserve(cfg)
	d.level.Set(cfg.Daemon.LogLevel)
	if old.Daemon.Socket != cfg.Daemon.Socket || old.Daemon.DBFile != cfg.Daemon.DBFile ||
		old.Daemon.LogTarget != cfg.Daemon.LogTarget || old.Daemon.Firewall != cfg.Daemon.Firewall {
		d.log.Warn("socket, dbfile, logtarget and [firewall] changes take effect at the next restart")
	}
	if err := d.fw.Setup(context.Background(), d.specs(cfg)); err != nil {
		d.log.Error("firewall setup after reload", "err", err)
	}
	d.reloadCloudflare(cfg)
	d.log.Info("configuration reloaded", "jails", len(rep.Jails), "added", fmt.Sprint(rep.Added),
		"removed", fmt.Sprint(rep.Removed), "changed", fmt.Sprint(rep.Changed))
	return rep, nil
}

// close releases everything New built (safe on a partly built daemon).
func (d *Daemon) close(ctx context.Context) error {
	d.closeObserve()
	d.mu.Lock()
	jails := d.jails
	d.jails = map[string]*jailRT{}
	d.mu.Unlock()
	for _, r := range jails {
		r.stop()
	}
	if d.srv != nil {
		d.srv.Close()
	}
	if d.cf != nil {
		d.cf.closeAll()
	}
	if d.tailer != nil {
		d.tailer.Close()
	}
	if d.journal != nil {
		d.journal.Close()
	}
	if d.fj != nil {
		d.fj.Close()
	}
	var err error
	if d.fw != nil && d.cfg != nil && d.cfg.Daemon.Firewall.RemoveOnStop {
		err = d.fw.Teardown(ctx)
	}
	if d.router != nil {
		d.router.close(d.opts.Backend)
	}
	if d.st != nil {
		if e := d.st.Close(); err == nil {
			err = e
		}
	}
	if d.logFile != nil {
		d.logFile.Close()
	}
	return err
}

// selfAddrs lists the host's addresses for ignoreself.
func selfAddrs() []netip.Addr {
	ifs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range ifs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// resolver resolves ignoreip host names and host-name failure ids with a
// bounded wait.
type resolver struct{}

func (resolver) LookupHost(host string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// wellKnownServices names the ports of the usual jails, for hosts (or
// --root trees) without /etc/services.
func wellKnownServices() firewall.Services {
	s := firewall.Services{}
	for name, port := range map[string]uint16{
		"ssh": 22, "ftp": 21, "ftp-data": 20, "ftps": 990, "ftps-data": 989, "smtp": 25, "submission": 587,
		"submissions": 465, "smtps": 465, "pop3": 110, "pop3s": 995, "imap": 143, "imap2": 143, "imaps": 993,
		"http": 80, "https": 443, "domain": 53, "sieve": 4190,
	} {
		s[name+"/tcp"] = port
		s[name+"/udp"] = port
	}
	return s
}

// Package daemon is palisade's composition root: it builds the store, the
// firewall backends and the router between them, the ban manager, the
// failure journal, one shared reader per log file and one journal reader,
// and one running jail (internal/pipeline) per enabled jail; it answers the
// control socket, reloads on SIGHUP, and tells systemd where it stands
// (READY, RELOADING, STOPPING). Lines flow from the sources into the jails
// and from there to the ban manager; the daemon only wires them.
//
// What is a configuration error and what is a jail's problem:
//
//   - Anything `palisade config check` reports as an error (syntax, bad
//     values, a filter that is missing or does not compile, an action that
//     does not compile) stops start-up with exit status 2 and makes a
//     reload refuse the whole new configuration; the check and the daemon
//     run the same builder (pipeline.Build), so they agree.
//   - Problems of the running system (a log file that does not exist yet,
//     no journal, a firewall backend that refuses a jail, such as an
//     inactive ufw) are warnings in config check and per-jail errors in
//     status at run time; the daemon and the other jails keep working.
//     The only one that stops start-up is having no usable firewall
//     backend at all (exit status 1).
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	sdd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/palisade-project/palisade/internal/ban"
	"github.com/palisade-project/palisade/internal/cloudflare"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/config/stock"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/failjournal"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/detect"
	"github.com/palisade-project/palisade/internal/pipeline"
	"github.com/palisade-project/palisade/internal/source"
	"github.com/palisade-project/palisade/internal/source/filetail"
	"github.com/palisade-project/palisade/internal/source/journal"
	"github.com/palisade-project/palisade/internal/store"
)

// ErrConfig wraps a configuration that cannot be loaded or built.
var ErrConfig = errors.New("configuration error")

// Options configure a daemon. ConfigDir is required; the rest have
// defaults.
type Options struct {
	// ConfigDir is the configuration directory.
	ConfigDir string
	// RequireConfigDir makes a missing ConfigDir an error (it was named
	// on the command line); otherwise a missing directory means "no
	// configuration": the built-ins.
	RequireConfigDir bool
	// Socket and DB override the configuration's socket and dbfile.
	Socket string
	DB     string
	// Root prefixes every system path taken from the configuration
	// (logpath, socket, dbfile, logtarget, /etc/services).
	Root string
	// Builtin is palisade's built-in configuration tree (jail.conf,
	// palisade.conf); Filters its built-in filters (filter.d/*.conf).
	Builtin fs.FS
	Filters fs.FS
	// Stderr receives the log when the log target is STDERR (default
	// os.Stderr).
	Stderr io.Writer
	// Backend, when set, is used instead of the configured firewall.
	Backend firewall.Backend
	// NewBackend, when set, builds the native backend of a kind a jail's
	// banaction names (tests; default: internal/firewall/detect).
	NewBackend func(kind string) (firewall.Backend, error)
	// Probe checks whether a firewall backend kind is usable here, for
	// config check's warnings (default: detection plus "ufw status").
	Probe func(kind string) error
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
	// Journal bounds the failure journal (zero: failjournal's defaults).
	Journal failjournal.Options
	// Resolver resolves host names for the jails (default: the host's
	// resolver).
	Resolver pipeline.Resolver
	// OnBan is called after each new automatic ban (benchmarks).
	OnBan func(jail string, p netip.Prefix)
	// CloudflareLock, when set, replaces the nftables origin lock (tests).
	CloudflareLock cloudflare.Lock
	// Stock, when set, recognises fail2ban's stock filter files instead
	// of the dpkg database under Root (or the real root's) (tests).
	Stock *stock.Sums
}

// Daemon is a running palisade.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	logFile *os.File
	logW    io.Writer
	level   *slog.LevelVar
	now     func() time.Time
	started time.Time

	st      *store.Store
	fw      *router
	defKind string                      // the default backend's kind ("" when given or log)
	native  map[string]firewall.Backend // guarded by nativeMu
	// nativeMu guards native: reload adds kinds while the table guard
	// lists them.
	nativeMu sync.Mutex
	bans     *ban.Manager
	fj       *failjournal.Journal
	tailer   *filetail.Tailer
	journal  *journal.Reader
	srv      *control.Server
	dbPath   string
	subs     []Subsystem
	cf       *cloudflareRT // the Cloudflare lock and edge bans (cloudflare.go)
	fl       *fleetRT      // fleet-wide bans (fleet.go)
	obs      observer      // notifications, metrics, health (observe.go)

	reloadMu sync.Mutex // one reload at a time

	mu        sync.Mutex // guards cfg, jails, fwErr, reloadErr
	cfg       *config.Config
	jails     map[string]*pipeline.Jail
	fwErr     map[string]string // jails whose backend refused their set-up → why
	reloadErr string
}

func (o *Options) rooted(p string) string {
	if o.Root == "" || p == "" {
		return p
	}
	return filepath.Join(o.Root, p)
}

// env is what building a jail needs from the host.
func (o *Options) env() pipeline.Env {
	return pipeline.Env{Filters: o.Filters, Root: o.Root}
}

// buildEnv is env with the sums of fail2ban's stock files (read from the
// dpkg database each time a configuration is built, so a reload after a
// package upgrade knows the new files); a database that cannot be read
// is a configuration warning.
func (o *Options) buildEnv(cfg *config.Config) pipeline.Env {
	env := o.env()
	env.Stock = o.Stock
	if env.Stock == nil {
		var err error
		if env.Stock, err = stock.Load(o.Root); err != nil {
			cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("fail2ban's stock filters are not recognised (%v): filter files are used as written", err))
		}
	}
	return env
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
	cfg, err := config.Load(opts.ConfigDir, config.LoadOptions{Builtin: opts.Builtin, Services: services, RequireDir: opts.RequireConfigDir})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return cfg, nil
}

// Build loads the configuration and builds every enabled jail, exactly as
// start-up, reload and config check do. Errors wrap ErrConfig.
func Build(opts Options) (*config.Config, []*pipeline.Plan, error) {
	cfg, err := LoadConfig(opts)
	if err != nil {
		return nil, nil, err
	}
	plans, errs := pipeline.BuildAll(cfg, opts.buildEnv(cfg))
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("%w: %w", ErrConfig, errs)
	}
	return cfg, plans, nil
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
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.Notify == nil {
		opts.Notify = func(state string) { _, _ = sdd.SdNotify(false, state) }
	}
	cfg, plans, err := Build(opts)
	if err != nil {
		return nil, err
	}
	d := &Daemon{opts: opts, now: opts.Now, cfg: cfg, jails: map[string]*pipeline.Jail{}, native: map[string]firewall.Backend{}}
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
	for _, p := range plans {
		for _, n := range p.Notes {
			d.log.Info("configuration: " + n)
		}
		for _, w := range p.Warnings {
			d.log.Warn("configuration: " + w)
		}
	}

	d.dbPath = opts.DB
	if d.dbPath == "" {
		d.dbPath = opts.rooted(cfg.Daemon.DBFile)
	}
	// The store creates its directory; one it cannot write does not stop
	// the daemon (bans are kept in memory and written later).
	d.st, err = store.Open(d.dbPath, store.Options{Logger: d.log})
	if err != nil {
		return nil, err
	}

	// Firewall: the default backend, each jail's route, one set-up per
	// backend. A backend that refuses its jails marks them (status), the
	// others work.
	def, err := d.backend(cfg.Daemon.Firewall)
	if err != nil {
		return nil, err
	}
	d.fw = newRouter(ctx, d.meter(def))
	for _, p := range plans {
		d.routeJail(ctx, p)
	}
	// Set up before the bans are restored; the refusals are shown on the
	// jails once they exist.
	d.setupFirewall(ctx, plans)

	var protected []netip.Prefix
	for _, a := range pipeline.SelfAddrs() {
		protected = append(protected, netip.PrefixFrom(a, a.BitLen()))
	}
	names := make([]string, len(plans))
	for i, p := range plans {
		names[i] = p.Name()
	}
	names = append(names, fleetJails(cfg)...) // remote bans (fleet.go)
	d.bans, err = ban.New(ban.Config{Protected: protected, HistoryMaxAge: cfg.Daemon.DBPurgeAge, Jails: names, PerJail: banJails(plans, fleetJails(cfg))},
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
	if rs.Kept > 0 {
		d.log.Warn("stored bans of jails that are not enabled are kept in the database and not enforced", "bans", rs.Kept)
	}
	d.log.Debug("ban restore took", "took", time.Since(t0).Round(time.Millisecond).String(), "restored", rs.Restored)

	// The subsystems beside the jails start once the bans are in force,
	// before the jails count anything.
	d.subs = d.subsystems()
	for i, s := range d.subs {
		if err := s.Start(ctx); err != nil {
			d.subs = d.subs[:i+1] // close stops those started (and this one)
			return nil, fmt.Errorf("%s: %w", s.Name(), err)
		}
	}

	// The jails, then the failures counted before a restart, streamed
	// from the journal into them.
	for _, p := range plans {
		r, err := d.newJail(p)
		if err != nil {
			return nil, err
		}
		d.jails[p.Name()] = r
	}
	d.showFirewallErrors()
	if err := d.openJournal(); err != nil {
		return nil, err
	}

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

	for _, p := range plans {
		d.startJail(d.jails[p.Name()])
	}
	d.waitJailsReady(3 * time.Second)
	d.settleSources(3 * time.Second)
	d.started = d.now()
	return d, nil
}

// openJournal opens the failure journal, replaying into the jails the
// failures still inside their findtime.
func (d *Daemon) openJournal() error {
	t0 := time.Now()
	n := 0
	replay := func(r failjournal.Record) {
		if j := d.jails[r.Jail]; j != nil {
			j.Replay(r)
			n++
		}
	}
	path := d.dbPath + ".failures"
	fj, err := failjournal.Open(path, d.opts.Journal, d.journalPolicy(false), replay)
	if err != nil && unwritableDir(err) {
		fj, err = d.fallbackJournal(path, err, replay)
	}
	if err != nil {
		return err
	}
	d.fj = fj
	for _, j := range d.jails {
		j.SetJournal(fj)
	}
	d.log.Info("failures restored from the journal", "records", n, "bytes", fj.Stats().Bytes, "took", time.Since(t0).Round(time.Millisecond).String())
	return nil
}

// journalPolicy says which failure records can still matter: those of a
// running jail inside its findtime, at most failtable.size × maxretry per
// jail (the most its failure table can hold); with tracked, only those of
// an address the jail's failure table still holds.
func (d *Daemon) journalPolicy(tracked bool) failjournal.Policy {
	d.mu.Lock()
	jails := make(map[string]*pipeline.Jail, len(d.jails))
	for k, v := range d.jails {
		jails[k] = v
	}
	d.mu.Unlock()
	now := d.now().UnixNano()
	return failjournal.Policy{
		Keep: func(r failjournal.Record) bool {
			j := jails[r.Jail]
			if j == nil || r.T <= now-j.Plan().Logic.FindTime.Nanoseconds() {
				return false
			}
			if !tracked {
				return true
			}
			a, err := netip.ParseAddr(r.ID)
			return err != nil || j.Logic().Tracked(a) // a host-name id: keep
		},
		Limit: func(name string) int {
			if j := jails[name]; j != nil {
				c := j.Plan().Logic
				return c.MaxEntries * c.MaxRetry
			}
			return 0
		},
	}
}

// settleSources waits (bounded) until every file reader has opened its
// file or found it missing, so that lines written after READY are never
// skipped by a reader that starts at the end of its file.
func (d *Daemon) settleSources(max time.Duration) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		pending := false
		for _, fs := range d.tailer.Stats() {
			if fs.Status.State == source.StateMissing && errors.Is(fs.Status.Err, source.ErrNotOpened) {
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
	d.nativeMu.Lock()
	d.native[kind] = b
	d.nativeMu.Unlock()
	d.log.Info("firewall backend chosen", "backend", kind, "why", reason)
	return b, nil
}

// logBackend records bans in memory only: bans are logged by the ban
// book, nothing reaches the kernel.
type logBackend struct{ *firewall.Fake }

// Name implements firewall.Backend.
func (logBackend) Name() string { return "log" }

// close releases everything New built (safe on a partly built daemon).
func (d *Daemon) close(ctx context.Context) error {
	for i := len(d.subs) - 1; i >= 0; i-- {
		if err := d.subs[i].Stop(ctx); err != nil {
			d.log.Warn("stopping "+d.subs[i].Name(), "err", err)
		}
	}
	d.mu.Lock()
	jails := d.jails
	d.jails = map[string]*pipeline.Jail{}
	d.mu.Unlock()
	for _, r := range jails {
		r.Stop()
	}
	if d.srv != nil {
		d.srv.Close()
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
	if d.fw != nil {
		d.fw.close(d.opts.Backend)
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

package daemon

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	sdd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/version"
)

// Subsystem is a part of the daemon that runs beside the jails. The daemon
// starts every subsystem (in list order) after the jails are reading and
// before it reports READY, runs them all while it serves, and stops them
// (in reverse order) when it stops or when start-up fails. Later features
// (firewall policy, Cloudflare lock, notifications, metrics) plug in here:
// write the subsystem in its own file and add one line to subsystems().
type Subsystem interface {
	// Name names the subsystem in log lines and errors.
	Name() string
	// Start prepares the subsystem; an error stops start-up.
	Start(ctx context.Context) error
	// Run runs until ctx is done; an error is logged.
	Run(ctx context.Context) error
	// Stop releases what Start acquired (also after a failed start-up).
	Stop(ctx context.Context) error
}

// Reloader is implemented by subsystems that follow a reload: Reload is
// called after a new configuration was built and swapped in.
type Reloader interface {
	Reload(ctx context.Context, d *Daemon) error
}

// subsystems lists the daemon's subsystems, in start order.
func (d *Daemon) subsystems() []Subsystem {
	return []Subsystem{
		&runFunc{name: "ban manager", run: d.bans.Run},
		&runFunc{name: "control socket", run: func(ctx context.Context) error { return d.srv.Serve(ctx, handler{d}) }},
		&runFunc{name: "maintenance", run: d.maintain},
		&hooks{name: "cloudflare", start: d.cloudflareStart, run: d.cloudflareRun, stop: d.cloudflareStop, reload: d.reloadCloudflare},
		&hooks{name: "observe", start: func(context.Context) error { return d.startObserve(d.config()) }, run: d.serveObserve,
			stop: d.closeObserve, reload: d.reloadObserve},
		&hooks{name: "firewall policy", run: d.firewallRun},
		d.fleetSubsystem(),
	}
}

// config is the running configuration.
func (d *Daemon) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// runFunc is a subsystem that only runs.
type runFunc struct {
	name string
	run  func(ctx context.Context) error
}

func (s *runFunc) Name() string                  { return s.name }
func (s *runFunc) Start(context.Context) error   { return nil }
func (s *runFunc) Run(ctx context.Context) error { return s.run(ctx) }
func (s *runFunc) Stop(context.Context) error    { return nil }

// hooks is a subsystem made of functions (any may be nil): run starts
// its work and returns, the subsystem then runs until ctx is done.
type hooks struct {
	name   string
	start  func(ctx context.Context) error
	run    func(ctx context.Context)
	stop   func()
	reload func(cfg *config.Config)
}

func (h *hooks) Name() string { return h.name }

func (h *hooks) Start(ctx context.Context) error {
	if h.start == nil {
		return nil
	}
	return h.start(ctx)
}

func (h *hooks) Run(ctx context.Context) error {
	if h.run != nil {
		h.run(ctx)
	}
	<-ctx.Done()
	return nil
}

func (h *hooks) Stop(context.Context) error {
	if h.stop != nil {
		h.stop()
	}
	return nil
}

// Reload implements Reloader.
func (h *hooks) Reload(_ context.Context, d *Daemon) error {
	if h.reload != nil {
		h.reload(d.config())
	}
	return nil
}

// cloudflareStart builds the lock; its failures are logged and shown by
// status, never fatal.
func (d *Daemon) cloudflareStart(ctx context.Context) error {
	if err := d.startCloudflare(ctx, d.config()); err != nil {
		d.log.Error("cloudflare lock unavailable", "err", err)
	}
	return nil
}

// cloudflareRun runs the lock's sync loop and the edge-ban mirror until
// ctx is done.
func (d *Daemon) cloudflareRun(ctx context.Context) {
	var wg sync.WaitGroup
	d.serveCloudflare(ctx, &wg)
	<-ctx.Done()
	wg.Wait()
}

// firewallRun installs the policy file and guards the table until ctx is
// done.
func (d *Daemon) firewallRun(ctx context.Context) {
	var wg sync.WaitGroup
	d.startFirewall(ctx, &wg)
	<-ctx.Done()
	wg.Wait()
}

func (d *Daemon) cloudflareStop() {
	if d.cf != nil {
		d.cf.closeAll()
	}
}

// Serve runs until ctx is done: every subsystem, SIGHUP reloads. It tells
// systemd READY=1 once serving.
func (d *Daemon) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.mu.Lock()
	njails := len(d.jails)
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range d.subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(ctx); err != nil && ctx.Err() == nil {
				d.log.Error(s.Name(), "err", err)
			}
		}()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	d.log.Info("palisade ready", "version", version.Get().Version, "jails", njails, "socket", d.srv.Path(), "db", d.dbPath)
	d.opts.Notify(sdd.SdNotifyReady)
	for {
		select {
		case <-ctx.Done():
			d.opts.Notify(sdd.SdNotifyStopping)
			d.log.Info("palisade stopping")
			cancel()
			wg.Wait()
			return d.close(context.Background())
		case <-hup:
			_, _ = d.Reload() // a refusal is logged and shown by status
		}
	}
}

// Maintenance periods.
const (
	compactEvery    = 10 * time.Minute
	compactMinGap   = 5 * time.Second
	maintenanceTick = time.Minute
)

// maintain compacts the failure journal (every compactEvery, and as soon
// as it has grown enough, see failjournal) and sets up again firewall
// backends that refused jails.
func (d *Daemon) maintain(ctx context.Context) error {
	t := time.NewTicker(maintenanceTick)
	defer t.Stop()
	last := time.Now()
	for {
		due := false
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			d.retrySetup(ctx)
			due = time.Since(last) >= compactEvery
		case <-d.fj.Due():
			// Under a flood: compact now, but leave the jails room to work
			// (the journal's own size bound holds meanwhile).
			if wait := compactMinGap - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
			}
			due = true
		}
		if due {
			last = time.Now()
			d.compactJournal()
		}
	}
}

// compactJournal drops the failure records that can no longer matter:
// outside findtime, of a jail no longer running, or of an address the
// jail's failure table does not hold any more (evicted, banned, forgotten).
func (d *Daemon) compactJournal() {
	t0 := time.Now()
	before := d.fj.Stats()
	if err := d.fj.Compact(d.journalPolicy(true)); err != nil {
		d.log.Warn("compacting the failure journal", "err", err)
		return
	}
	after := d.fj.Stats()
	d.log.Debug("failure journal compacted", "records_before", before.Records, "records_after", after.Records,
		"bytes_after", after.Bytes, "took", time.Since(t0).Round(time.Millisecond).String())
}

// Package metrics exposes palisade's counters to Prometheus. It is off
// unless [metrics] listen names a TCP address or a unix socket path; then
// it serves /metrics (Prometheus text format, from a private registry:
// nothing registers globally) and /healthz (200 when every jail is
// healthy, 503 otherwise, with a JSON body either way).
//
// The model is pull-only: at each scrape the collector asks the daemon for
// a Snapshot of the counters its components already keep (jails, sources,
// firewall backends, ban manager, notification routes) and turns it into
// constant metrics. Nothing is pushed through the ban path.
package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultPort is the port palisade suggests for [metrics] listen.
const DefaultPort = 9539

// Config is the [metrics] section.
type Config struct {
	// Listen is "" (off), host:port, or an absolute unix socket path.
	Listen string
}

// Enabled reports whether metrics are served.
func (c Config) Enabled() bool { return c.Listen != "" }

// IsUnix reports whether Listen is a unix socket path.
func (c Config) IsUnix() bool { return strings.HasPrefix(c.Listen, "/") }

// ParseListen validates a listen value.
func ParseListen(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "" || strings.EqualFold(s, "off") || strings.EqualFold(s, "no"):
		return "", nil
	case strings.HasPrefix(s, "/"):
		return filepath.Clean(s), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%q: want host:port (e.g. 127.0.0.1:%d) or an absolute unix socket path", s, DefaultPort)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return "", fmt.Errorf("%q: the host must be an IP address or localhost", s)
	}
	if p, err := net.LookupPort("tcp", port); err != nil || p < 1 {
		return "", fmt.Errorf("%q: bad port", s)
	}
	return s, nil
}

// Snapshot is every counter at one moment, filled by the daemon.
type Snapshot struct {
	Version string
	Healthy bool
	// ReloadOK is false while the last reload failed.
	ReloadOK bool
	Jails    []Jail
	Sources  []Source
	Backends []Backend
	Routes   []Route
	Bans     Bans
}

// Jail is one jail's counters.
type Jail struct {
	Name string
	// Lines read, Matches (failures the filter found), Failures counted,
	// Ignored (ignoreip & co.), Bans and Unbans made.
	Lines, Matches, Failures, Ignored, Bans, Unbans uint64
	// Banned are the active bans; Tracked the failure-table entries.
	Banned, Tracked int
	Evictions       uint64
	// AlreadyBanned are ban decisions not carried out because the
	// address's ban already served them (a banned address still failing).
	AlreadyBanned uint64
	RegexTimeouts uint64
	// BacktrackSeconds is the time spent in backtracking (non-RE2) regex
	// matches; BacktrackSkipped the matches skipped because the filter's
	// backtracking budget was spent.
	BacktrackSeconds float64
	BacktrackSkipped uint64
	Healthy          bool
	Problems         uint64
}

// Source is one log file or journal stream.
type Source struct {
	Name string
	// Kind is "file" or "journal".
	Kind                                 string
	Lines, Bytes, Rotations, Truncations uint64
	LongLines, Errors, Skipped           uint64
	Up                                   bool
	LastLine                             time.Time
}

// Backend is one firewall backend's operations.
type Backend struct {
	Name string
	// Ops and Failures by operation (setup, add, remove, list).
	Ops, Failures map[string]uint64
	// Elements are the bans palisade holds in it.
	Elements int
}

// Route is one notification route.
type Route struct {
	Name, Type            string
	Sent, Failed, Dropped uint64
	Pending               int
}

// Bans are the ban manager's counters.
type Bans struct {
	Active                             int
	Refused, EventsDropped             uint64
	ReconcileReAdded, ReconcileRemoved uint64
	ReconcileFailures                  uint64
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("palisade_"+name, help, labels, nil)
}

// collector turns a Snapshot into metrics at scrape time.
type collector struct {
	snap func() Snapshot
	d    map[string]*prometheus.Desc
}

var descs = []struct {
	name, help string
	labels     []string
}{
	{"build_info", "palisade's version (always 1).", []string{"version"}},
	{"healthy", "1 when every jail is healthy, else 0.", nil},
	{"config_last_reload_successful", "0 while the last configuration reload failed, else 1.", nil},

	{"jail_lines_total", "Log lines the jail's filter read.", []string{"jail"}},
	{"jail_matches_total", "Failures the jail's filter found (counted, ignored or without a usable address).", []string{"jail"}},
	{"jail_failures_total", "Failures counted towards a ban.", []string{"jail"}},
	{"jail_ignored_total", "Failures of exempt addresses (ignoreip, ignoreself, ignorecommand).", []string{"jail"}},
	{"jail_bans_total", "Bans the jail made (restored bans not included).", []string{"jail"}},
	{"jail_unbans_total", "Bans of the jail lifted (expired, manual, unban --all).", []string{"jail"}},
	{"jail_banned", "Active bans of the jail.", []string{"jail"}},
	{"jail_failtable_entries", "Addresses in the jail's failure table.", []string{"jail"}},
	{"jail_failtable_evictions_total", "Addresses evicted from the full failure table.", []string{"jail"}},
	{"jail_already_banned_total", "Ban decisions not carried out: the address's ban already served them (a banned address still failing).", []string{"jail"}},
	{"jail_regex_timeouts_total", "Backtracking regex matches that hit their time limit.", []string{"jail"}},
	{"jail_regex_backtrack_seconds_total", "Time spent in backtracking (non-RE2) regex matches.", []string{"jail"}},
	{"jail_regex_backtrack_skipped_total", "Backtracking matches skipped because the filter's CPU budget was spent.", []string{"jail"}},
	{"jail_healthy", "1 when the jail is healthy, else 0.", []string{"jail"}},
	{"jail_health_problems_total", "Health problems the jail has had.", []string{"jail"}},

	{"source_lines_total", "Lines (journal entries) delivered by the source.", []string{"source", "kind"}},
	{"source_read_bytes_total", "Bytes read from the file.", []string{"source", "kind"}},
	{"source_rotations_total", "Times the file was replaced (rotation, delete and re-create).", []string{"source", "kind"}},
	{"source_truncations_total", "Times the file shrank or was rewritten (copytruncate).", []string{"source", "kind"}},
	{"source_long_lines_total", "Lines (journal entries) longer than the maximum line length, dropped.", []string{"source", "kind"}},
	{"source_errors_total", "Source failures: journalctl restarts, or a file seen missing or unreadable.", []string{"source", "kind"}},
	{"source_skipped_entries_total", "Journal entries that could not be decoded.", []string{"source", "kind"}},
	{"source_up", "1 while the source is read normally, else 0.", []string{"source", "kind"}},
	{"source_last_line_timestamp_seconds", "When the source last delivered a line (Unix time, to the watchdog's interval; 0: never).", []string{"source", "kind"}},

	{"firewall_operations_total", "Firewall backend operations.", []string{"backend", "op"}},
	{"firewall_operation_failures_total", "Firewall backend operations that failed.", []string{"backend", "op"}},
	{"firewall_elements", "Bans palisade holds in the backend.", []string{"backend"}},
	{"firewall_reconcile_repairs_total", "Differences the periodic reconcile repaired.", []string{"action"}},
	{"firewall_reconcile_failures_total", "Reconcile runs that failed.", nil},

	{"bans_active", "Active bans in every jail.", nil},
	{"bans_refused_total", "Bans refused because the address is protected.", nil},
	{"ban_events_dropped_total", "Ban events a slow subscriber missed.", nil},

	{"notify_messages_sent_total", "Notifications delivered.", []string{"route", "type"}},
	{"notify_messages_failed_total", "Notifications that failed after every retry.", []string{"route", "type"}},
	{"notify_events_dropped_total", "Events that never reached the sink (queue full, or their message failed).", []string{"route", "type"}},
	{"notify_events_pending", "Events waiting in a route's batch.", []string{"route", "type"}},
}

func newCollector(snap func() Snapshot) *collector {
	c := &collector{snap: snap, d: map[string]*prometheus.Desc{}}
	for _, d := range descs {
		c.d[d.name] = desc(d.name, d.help, d.labels...)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.d {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snap()
	counter := func(name string, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.d[name], prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.d[name], prometheus.GaugeValue, v, labels...)
	}
	gauge("build_info", 1, s.Version)
	gauge("healthy", b2f(s.Healthy))
	gauge("config_last_reload_successful", b2f(s.ReloadOK))
	for _, j := range s.Jails {
		counter("jail_lines_total", j.Lines, j.Name)
		counter("jail_matches_total", j.Matches, j.Name)
		counter("jail_failures_total", j.Failures, j.Name)
		counter("jail_ignored_total", j.Ignored, j.Name)
		counter("jail_bans_total", j.Bans, j.Name)
		counter("jail_unbans_total", j.Unbans, j.Name)
		gauge("jail_banned", float64(j.Banned), j.Name)
		gauge("jail_failtable_entries", float64(j.Tracked), j.Name)
		counter("jail_failtable_evictions_total", j.Evictions, j.Name)
		counter("jail_already_banned_total", j.AlreadyBanned, j.Name)
		counter("jail_regex_timeouts_total", j.RegexTimeouts, j.Name)
		ch <- prometheus.MustNewConstMetric(c.d["jail_regex_backtrack_seconds_total"], prometheus.CounterValue, j.BacktrackSeconds, j.Name)
		counter("jail_regex_backtrack_skipped_total", j.BacktrackSkipped, j.Name)
		gauge("jail_healthy", b2f(j.Healthy), j.Name)
		counter("jail_health_problems_total", j.Problems, j.Name)
	}
	for _, src := range s.Sources {
		counter("source_lines_total", src.Lines, src.Name, src.Kind)
		if src.Kind == "file" {
			counter("source_read_bytes_total", src.Bytes, src.Name, src.Kind)
			counter("source_rotations_total", src.Rotations, src.Name, src.Kind)
			counter("source_truncations_total", src.Truncations, src.Name, src.Kind)
		} else {
			counter("source_skipped_entries_total", src.Skipped, src.Name, src.Kind)
		}
		counter("source_long_lines_total", src.LongLines, src.Name, src.Kind)
		counter("source_errors_total", src.Errors, src.Name, src.Kind)
		gauge("source_up", b2f(src.Up), src.Name, src.Kind)
		last := 0.0
		if !src.LastLine.IsZero() {
			last = float64(src.LastLine.UnixNano()) / 1e9
		}
		gauge("source_last_line_timestamp_seconds", last, src.Name, src.Kind)
	}
	for _, b := range s.Backends {
		for _, op := range Ops {
			counter("firewall_operations_total", b.Ops[op], b.Name, op)
			counter("firewall_operation_failures_total", b.Failures[op], b.Name, op)
		}
		gauge("firewall_elements", float64(b.Elements), b.Name)
	}
	counter("firewall_reconcile_repairs_total", s.Bans.ReconcileReAdded, "readded")
	counter("firewall_reconcile_repairs_total", s.Bans.ReconcileRemoved, "removed")
	counter("firewall_reconcile_failures_total", s.Bans.ReconcileFailures)
	gauge("bans_active", float64(s.Bans.Active))
	counter("bans_refused_total", s.Bans.Refused)
	counter("ban_events_dropped_total", s.Bans.EventsDropped)
	for _, r := range s.Routes {
		counter("notify_messages_sent_total", r.Sent, r.Name, r.Type)
		counter("notify_messages_failed_total", r.Failed, r.Name, r.Type)
		counter("notify_events_dropped_total", r.Dropped, r.Name, r.Type)
		gauge("notify_events_pending", float64(r.Pending), r.Name, r.Type)
	}
}

// Ops are the firewall operations counted per backend.
var Ops = []string{"setup", "add", "remove", "list"}

// NewRegistry returns a private registry with palisade's collector and
// the process and Go runtime collectors.
func NewRegistry(snap func() Snapshot) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(snap), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return reg
}

// HealthFunc reports whether the daemon is healthy and a JSON-encodable
// body describing it.
type HealthFunc func() (bool, any)

// Handler serves /metrics from reg and /healthz from health.
func Handler(reg *prometheus.Registry, health HealthFunc, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{log}, ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		ok, body := health()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(body)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "palisade: /metrics, /healthz")
	})
	return mux
}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	if p.log != nil {
		p.log.Warn("metrics: " + strings.TrimSpace(fmt.Sprintln(v...)))
	}
}

// Server is the metrics listener.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	path string // unix socket to remove at Close
}

// Listen opens cfg.Listen: a TCP address, or a unix socket (mode 0660; a
// stale socket from a crashed daemon is replaced, a live one is not).
func Listen(cfg Config, h http.Handler) (*Server, error) {
	s := &Server{srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}}
	var err error
	if cfg.IsUnix() {
		if err := os.MkdirAll(filepath.Dir(cfg.Listen), 0o755); err != nil {
			return nil, fmt.Errorf("metrics socket directory: %w", err)
		}
		if c, derr := net.DialTimeout("unix", cfg.Listen, time.Second); derr == nil {
			c.Close()
			return nil, fmt.Errorf("metrics socket %s: in use by another process", cfg.Listen)
		}
		if fi, serr := os.Lstat(cfg.Listen); serr == nil {
			if fi.Mode()&os.ModeSocket == 0 {
				return nil, fmt.Errorf("metrics socket %s: exists and is not a socket", cfg.Listen)
			}
			_ = os.Remove(cfg.Listen)
		}
		s.ln, err = net.Listen("unix", cfg.Listen)
		if err == nil {
			s.path = cfg.Listen
			err = os.Chmod(cfg.Listen, 0o660)
		}
	} else {
		s.ln, err = net.Listen("tcp", cfg.Listen)
	}
	if err != nil {
		if s.ln != nil {
			s.ln.Close()
		}
		return nil, fmt.Errorf("metrics listen %s: %w", cfg.Listen, err)
	}
	return s, nil
}

// Addr is the address listened on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve answers requests until ctx is done.
func (s *Server) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
	}()
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops listening (and removes the unix socket).
func (s *Server) Close() error {
	err := s.srv.Close()
	_ = s.ln.Close()
	if s.path != "" {
		_ = os.Remove(s.path)
	}
	return err
}

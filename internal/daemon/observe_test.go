package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	defaults "github.com/palisade-project/palisade/config"
	"github.com/palisade-project/palisade/filters"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/metrics/metricstest"
	"github.com/palisade-project/palisade/internal/notify/notifytest"
	"github.com/palisade-project/palisade/internal/source/sourcetest"
	"github.com/palisade-project/palisade/internal/store"
	"github.com/palisade-project/palisade/internal/version"
)

// obsEnv is an in-process daemon with a notification route to a local
// SMTP server, metrics on a unix socket and a fast health watchdog.
type obsEnv struct {
	t      *testing.T
	dir    string
	etc    string
	logf   string
	mail   *notifytest.SMTPServer
	opts   Options
	ctx    context.Context
	cancel context.CancelFunc
	done   chan error
	d      *Daemon
}

func (e *obsEnv) write(name, text string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.etc, name), []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// newObsEnv writes the configuration; palisade gets extra palisade.local
// text (PORT and DIR are replaced), jail the jail.local (LOG replaced).
func newObsEnv(t *testing.T, palisade, jail string) *obsEnv {
	t.Helper()
	dir := t.TempDir()
	e := &obsEnv{t: t, dir: dir, etc: filepath.Join(dir, "etc"), logf: filepath.Join(dir, "auth.log")}
	if err := os.MkdirAll(e.etc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.logf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e.mail = notifytest.NewSMTPServer(t, notifytest.SMTPOptions{})
	r := strings.NewReplacer("PORT", e.mail.Port(), "DIR", dir, "LOG", e.logf)
	e.write("palisade.local", r.Replace(palisade))
	e.write("jail.local", r.Replace(jail))
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	t.Cleanup(func() { devnull.Close() })
	e.opts = Options{
		ConfigDir: e.etc, Socket: filepath.Join(dir, "run", "p.sock"), DB: filepath.Join(dir, "p.db"),
		Builtin: defaults.FS(), Filters: filters.FS(),
		Backend: firewall.NewFake(), Stderr: devnull, Notify: func(string) {},
	}
	return e
}

func (e *obsEnv) start() {
	e.t.Helper()
	e.ctx, e.cancel = context.WithCancel(context.Background())
	d, err := New(e.ctx, e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.d = d
	e.done = make(chan error, 1)
	go func() { e.done <- d.Serve(e.ctx) }()
	e.t.Cleanup(e.stop)
	e.until("daemon answers", 10*time.Second, func() bool { _, err := e.client().Ping(e.ctx); return err == nil })
}

func (e *obsEnv) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	select {
	case <-e.done:
	case <-time.After(20 * time.Second):
		e.t.Error("daemon did not stop")
	}
	e.cancel = nil
}

func (e *obsEnv) client() *control.Client { return control.NewClient(e.opts.Socket) }

// until waits (bounded) for cond.
func (e *obsEnv) until(what string, max time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(max)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %v waiting for: %s", max, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *obsEnv) appendLog(lines ...string) {
	e.t.Helper()
	f, err := os.OpenFile(e.logf, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		fmt.Fprintf(f, "%s host1 %s\n", time.Now().Format(time.Stamp), l)
	}
}

func failLine(ip string, user string) string {
	return fmt.Sprintf("sshd[4242]: Failed password for %s from %s port 52814 ssh2", user, ip)
}

func (e *obsEnv) status() control.StatusReply {
	e.t.Helper()
	st, err := e.client().Status(e.ctx, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// get fetches a path from the metrics unix socket.
func (e *obsEnv) get(path string) (int, string) {
	e.t.Helper()
	sock := filepath.Join(e.dir, "metrics.sock")
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://palisade" + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// mailsWith returns the mails whose subject contains s.
func (e *obsEnv) mailsWith(s string) []notifytest.Mail {
	var out []notifytest.Mail
	for _, m := range e.mail.Mails() {
		if strings.Contains(m.Msg.Header.Get("Subject"), s) {
			out = append(out, m)
		}
	}
	return out
}

const obsRoute = `[notify:admin]
server = 127.0.0.1:PORT
from = palisade@example.org
to = admin@example.org
events = ban, unban, escalation, health, lifecycle
group_wait = 100ms
lines = yes
[metrics]
listen = DIR/metrics.sock
[health]
interval = 50ms
grace = off
`

const obsJail = `[sshd]
enabled = true
filter = sshd
logpath = LOG
maxretry = 2
findtime = 10m
bantime = 1h
bantime.increment = true
`

func TestNotifyAndMetricsFromRealLogLines(t *testing.T) {
	e := newObsEnv(t, obsRoute, obsJail)
	e.start()
	host, _ := os.Hostname()
	e.until("start mail", 10*time.Second, func() bool { return len(e.mailsWith("palisade started")) == 1 })

	// Two failures of one address (its user name is attacker-controlled
	// text) and three lines that are no failures.
	e.appendLog(failLine("198.51.100.7", "\x1b[31madmin"), "sshd[4243]: Accepted publickey for alice from 192.0.2.10 port 50000 ssh2",
		"CRON[99]: pam_unix(cron:session): session opened", failLine("198.51.100.7", "root"), "sshd[4244]: Connection closed by 192.0.2.11 port 50001")
	e.until("ban mail", 10*time.Second, func() bool { return len(e.mailsWith("banned 198.51.100.7")) == 1 })
	m := e.mailsWith("banned 198.51.100.7")[0]
	if subj := m.Msg.Header.Get("Subject"); subj != "[palisade] "+host+": banned 198.51.100.7 in sshd for 1h0m0s" {
		t.Errorf("subject %q", subj)
	}
	for _, want := range []string{"address:  198.51.100.7", "jail:     sshd", "host:     " + host, "ban time: 1h0m0s (until ", "offence:  1",
		`| ` /* matched lines follow */, `Failed password for \x1b[31madmin from 198.51.100.7`} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("ban mail lacks %q:\n%s", want, m.Body)
		}
	}
	if strings.Contains(m.Body, "\x1b") {
		t.Error("raw escape character in the mail")
	}

	// Unban, then a repeat offence: an escalated ban (bantime.increment).
	if _, err := e.client().Unban(e.ctx, "sshd", "198.51.100.7"); err != nil {
		t.Fatal(err)
	}
	e.until("unban mail", 10*time.Second, func() bool { return len(e.mailsWith("unbanned 198.51.100.7")) == 1 })
	// Log dates have whole seconds, and the jail ignores failures dated
	// before the address's last ban: write the next ones a second later.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	e.appendLog(failLine("198.51.100.7", "root"), failLine("198.51.100.7", "root"))
	e.until("escalated ban mail", 10*time.Second, func() bool { return len(e.mailsWith("banned again (escalated) 198.51.100.7 in sshd for 2h0m0s")) == 1 })

	// The counters equal what the test did. A mail is counted as sent once
	// the client has the server's answer, which may be after the server
	// holds it: wait for the count first.
	sent := `palisade_notify_messages_sent_total{route="admin",type="smtp"}`
	e.until("the escalated ban mail counted as sent", 10*time.Second, func() bool {
		_, text := e.get("/metrics")
		v, _ := metricstest.Value(text, sent)
		return v == "4"
	})
	code, text := e.get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics %d", code)
	}
	metricstest.Check(t, text)
	for series, want := range map[string]string{
		`palisade_jail_lines_total{jail="sshd"}`: "7",
		// The repeat offender's first failure counts double and bans; its
		// second, dated before that ban, is found but not counted.
		`palisade_jail_failures_total{jail="sshd"}`:                              "3",
		`palisade_jail_bans_total{jail="sshd"}`:                                  "2",
		`palisade_jail_unbans_total{jail="sshd"}`:                                "1",
		`palisade_jail_banned{jail="sshd"}`:                                      "1",
		`palisade_jail_healthy{jail="sshd"}`:                                     "1",
		`palisade_source_lines_total{kind="file",source="` + e.logf + `"}`:       "7",
		`palisade_firewall_operations_total{backend="fake",op="add"}`:            "2",
		`palisade_firewall_operations_total{backend="fake",op="remove"}`:         "1",
		`palisade_firewall_operation_failures_total{backend="fake",op="add"}`:    "0",
		`palisade_firewall_elements{backend="fake"}`:                             "1",
		`palisade_bans_active`:                                                   "1",
		`palisade_healthy`:                                                       "1",
		sent:                                                                     "4",
		`palisade_notify_events_dropped_total{route="admin",type="smtp"}`:        "0",
		`palisade_build_info{version="` + version.Get().Version + `"}`:           "1",
		`palisade_config_last_reload_successful`:                                 "1",
		`palisade_jail_regex_backtrack_skipped_total{jail="sshd"}`:               "0",
		`palisade_jail_matches_total{jail="sshd"}`:                               "4",
		`palisade_source_up{kind="file",source="` + e.logf + `"}`:                "1",
		`palisade_jail_failtable_evictions_total{jail="sshd"}`:                   "0",
		`palisade_jail_already_banned_total{jail="sshd"}`:                        "0",
		`palisade_notify_messages_failed_total{route="admin",type="smtp"}`:       "0",
		`palisade_firewall_operation_failures_total{backend="fake",op="remove"}`: "0",
		`palisade_jail_ignored_total{jail="sshd"}`:                               "0",
		`palisade_ban_events_dropped_total`:                                      "0",
		`palisade_bans_refused_total`:                                            "0",
		`palisade_jail_health_problems_total{jail="sshd"}`:                       "0",
		`palisade_firewall_reconcile_failures_total`:                             "0",
		`palisade_notify_events_pending{route="admin",type="smtp"}`:              "0",
		`palisade_firewall_reconcile_repairs_total{action="readded"}`:            "0",
	} {
		if got, ok := metricstest.Value(text, series); !ok || got != want {
			t.Errorf("%s = %q (found %v), want %s", series, got, ok, want)
		}
	}
	if v, ok := metricstest.Value(text, `palisade_source_last_line_timestamp_seconds{kind="file",source="`+e.logf+`"}`); !ok || v == "0" {
		t.Errorf("last line timestamp %q", v)
	}
	if code, body := e.get("/healthz"); code != 200 || !strings.Contains(body, `"healthy":true`) {
		t.Errorf("/healthz %d %s", code, body)
	}
	st := e.status()
	if !st.Healthy || !st.Jails[0].Health.Healthy || len(st.Jails[0].Health.Problems) != 0 {
		t.Errorf("status health %+v", st)
	}

	// Stopping says so (and sends it before exiting).
	e.stop()
	if len(e.mailsWith("palisade stopping")) != 1 {
		t.Errorf("no stop mail; subjects: %v", subjects(e.mail.Mails()))
	}
	if _, err := os.Stat(filepath.Join(e.dir, "metrics.sock")); !os.IsNotExist(err) {
		t.Error("metrics socket left behind")
	}
}

func subjects(ms []notifytest.Mail) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Msg.Header.Get("Subject"))
	}
	return out
}

func TestRestoredBansNeverNotify(t *testing.T) {
	e := newObsEnv(t, obsRoute, obsJail)
	st, err := store.Open(e.opts.DB, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var bans []store.Ban
	for i := 1; i <= 20; i++ {
		bans = append(bans, store.Ban{Jail: "sshd", Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), 32), Start: now, Expires: now.Add(time.Hour), Offence: 1})
	}
	if err := st.AddBans(bans); err != nil {
		t.Fatal(err)
	}
	st.Close()
	e.start()
	if n := len(e.d.bans.List("")); n != 20 {
		t.Fatalf("restored %d bans", n)
	}
	// A new ban after the start is the only ban mailed.
	if _, err := e.client().Ban(e.ctx, "sshd", "198.51.100.99", ""); err != nil {
		t.Fatal(err)
	}
	e.until("manual ban mail", 10*time.Second, func() bool { return len(e.mailsWith("198.51.100.99")) == 1 })
	e.stop()
	for _, m := range e.mail.Mails() {
		if strings.Contains(m.Body, "203.0.113.") || strings.Contains(m.Msg.Header.Get("Subject"), "bans") {
			t.Errorf("restored bans notified: %s\n%s", m.Msg.Header.Get("Subject"), m.Body)
		}
	}
	if m := e.mailsWith("198.51.100.99")[0]; !strings.Contains(m.Body, "manual:   yes") {
		t.Errorf("manual ban not marked:\n%s", m.Body)
	}
}

// healthCycle checks that a problem flips status and /healthz, sends one
// notification, and that fix brings one recovery.
func (e *obsEnv) healthCycle(problem string, fix func()) {
	e.t.Helper()
	e.until("unhealthy status", 10*time.Second, func() bool {
		st := e.status()
		return !st.Healthy && len(st.Jails) > 0 && !st.Jails[0].Health.Healthy &&
			strings.Contains(strings.Join(st.Jails[0].Health.Problems, ";"), problem)
	})
	if code, body := e.get("/healthz"); code != 503 || !strings.Contains(body, problem) {
		e.t.Errorf("/healthz while unhealthy: %d %s", code, body)
	}
	e.until("problem mail", 10*time.Second, func() bool { return len(e.mailsWith("PROBLEM")) > 0 })
	fix()
	e.until("healthy again", 10*time.Second, func() bool { return e.status().Healthy })
	if code, _ := e.get("/healthz"); code != 200 {
		e.t.Errorf("/healthz after recovery: %d", code)
	}
	e.until("recovery mail", 10*time.Second, func() bool { return len(e.mailsWith("RECOVERED")) > 0 })
	// Let several more checks pass: still one of each.
	time.Sleep(300 * time.Millisecond)
	if p, r := len(e.mailsWith("PROBLEM")), len(e.mailsWith("RECOVERED")); p != 1 || r != 1 {
		e.t.Errorf("%d problem and %d recovery mails, want one each: %v", p, r, subjects(e.mail.Mails()))
	}
	st := e.status()
	if st.Jails[0].Health.Since.IsZero() {
		e.t.Error("health without a since time")
	}
}

func TestHealthDeletedLog(t *testing.T) {
	e := newObsEnv(t, strings.Replace(obsRoute, "group_wait = 100ms", "group_wait = 10ms", 1), obsJail)
	e.start()
	if err := os.Remove(e.logf); err != nil {
		t.Fatal(err)
	}
	e.healthCycle("file not found", func() {
		if err := os.WriteFile(e.logf, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	_, text := e.get("/metrics")
	if v, _ := metricstest.Value(text, `palisade_source_errors_total{kind="file",source="`+e.logf+`"}`); v != "1" {
		t.Errorf("source errors %q", v)
	}
	if v, _ := metricstest.Value(text, `palisade_jail_health_problems_total{jail="sshd"}`); v != "1" {
		t.Errorf("health problems %q", v)
	}
}

// failingBackend refuses writes while fail is set.
type failingBackend struct {
	*firewall.Fake
	fail atomic.Bool
}

func (f *failingBackend) Add(ctx context.Context, b []firewall.Ban) error {
	if f.fail.Load() {
		return errors.New("netlink: operation not permitted")
	}
	return f.Fake.Add(ctx, b)
}

func TestHealthFailingBackend(t *testing.T) {
	e := newObsEnv(t, obsRoute, obsJail)
	fw := &failingBackend{Fake: firewall.NewFake()}
	e.opts.Backend = fw
	e.start()
	fw.fail.Store(true)
	e.appendLog(failLine("198.51.100.20", "root"), failLine("198.51.100.20", "root"))
	e.healthCycle("firewall fake: add failed: netlink: operation not permitted", func() {
		fw.fail.Store(false)
		// The next write succeeds.
		e.appendLog(failLine("198.51.100.21", "root"), failLine("198.51.100.21", "root"))
	})
	_, text := e.get("/metrics")
	if v, _ := metricstest.Value(text, `palisade_firewall_operation_failures_total{backend="fake",op="add"}`); v != "1" {
		t.Errorf("add failures %q", v)
	}
}

func TestHealthStalledJournal(t *testing.T) {
	jdir := journalDir(t)
	e := newObsEnv(t, obsRoute, `[sshd]
enabled = true
filter = sshd
backend = systemd[journalpath=`+jdir+`]
journalmatch = _SYSTEMD_UNIT=sshd.service
maxretry = 2
health.idle = 1s
`)
	e.start()
	e.healthCycle("no log line for", func() {
		writeJournal(t, filepath.Join(jdir, "b.journal"), time.Now(), "Failed password for root from 198.51.100.30 port 22 ssh2")
	})
}

// journalDir returns a directory with a journal file holding one old
// entry (outside the jail's lookback), so journalctl runs and finds
// nothing to deliver: a stalled journal.
func journalDir(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/lib/systemd/systemd-journal-remote"); err != nil {
		t.Skip("systemd-journal-remote not installed (Debian package systemd-journal-remote)")
	}
	if _, err := os.Stat("/usr/bin/journalctl"); err != nil {
		t.Skip("journalctl not installed")
	}
	dir := t.TempDir()
	writeJournal(t, filepath.Join(dir, "a.journal"), time.Now().Add(-24*time.Hour), "old entry")
	return dir
}

var journalSeq atomic.Uint64

// writeJournal writes one sshd entry into a new journal file with
// systemd-journal-remote (export format in, journal file out).
func writeJournal(t *testing.T, file string, at time.Time, msg string) {
	t.Helper()
	n := journalSeq.Add(1)
	sourcetest.WriteJournal(t, file, sourcetest.ExportEntry("6c7c6013a8674f52b0a3bef6f6a09f4c", at, int64(1_000_000+n), int(100+n), msg))
}

func TestNoListenersWithoutMetricsOrRoutes(t *testing.T) {
	e := newObsEnv(t, "[Definition]\nloglevel = INFO\n", obsJail)
	e.start()
	if e.d.obs.metrics != nil || len(e.d.obs.notifier.Load().Routes()) != 0 {
		t.Fatal("metrics listener or routes without configuration")
	}
	if _, err := os.Stat(filepath.Join(e.dir, "metrics.sock")); !os.IsNotExist(err) {
		t.Fatal("metrics socket without configuration")
	}
	// Status still has health.
	if st := e.status(); !st.Healthy || !st.Jails[0].Health.Healthy {
		t.Fatalf("status %+v", st)
	}
	var raw map[string]any
	b, _ := json.Marshal(e.status())
	_ = json.Unmarshal(b, &raw)
	if _, ok := raw["healthy"]; !ok {
		t.Fatal("status JSON lacks healthy")
	}
}

func TestReloadReplacesRoutes(t *testing.T) {
	e := newObsEnv(t, obsRoute, obsJail)
	e.start()
	e.until("start mail", 10*time.Second, func() bool { return len(e.mailsWith("palisade started")) == 1 })
	second := notifytest.NewSMTPServer(t, notifytest.SMTPOptions{})
	e.write("palisade.local", strings.NewReplacer("PORT", second.Port(), "DIR", e.dir).Replace(obsRoute))
	if _, err := e.client().Reload(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client().Ban(e.ctx, "sshd", "198.51.100.50", ""); err != nil {
		t.Fatal(err)
	}
	second.Wait(t, 1, 10*time.Second)
	e.stop() // while the second server still runs (it gets the stop mail)
	if len(e.mailsWith("198.51.100.50")) != 0 {
		t.Fatal("the old route still sends")
	}
}

// TestBurstOfBansFewMails: 1,000 addresses banned at once from real log
// lines arrive as a handful of mails whose counts add up to 1,000. The
// bound comes from the route's hourly cap, not from how fast the burst
// is: however many group windows the burst spans, at most max_per_hour
// mails go out, the rest waits, and the final flush at stop carries it.
func TestBurstOfBansFewMails(t *testing.T) {
	const maxPerHour = 3
	route := strings.NewReplacer("group_wait = 100ms", "group_wait = 300ms\nmax_per_hour = 3",
		"events = ban, unban, escalation, health, lifecycle", "events = ban").Replace(obsRoute)
	e := newObsEnv(t, route, strings.Replace(obsJail, "maxretry = 2", "maxretry = 1", 1))
	e.start()
	lines := make([]string, 1000)
	for i := range lines {
		lines[i] = failLine(fmt.Sprintf("2001:db8::%x", i+1), "root")
	}
	e.appendLog(lines...)
	e.until("1000 bans", 30*time.Second, func() bool { return len(e.d.bans.List("sshd")) == 1000 })
	e.until("the first mail", 10*time.Second, func() bool { return len(e.mail.Mails()) >= 1 })
	if st := e.d.bans.Stats(); st.EventsDropped != 0 {
		t.Fatalf("ban events dropped: %d", st.EventsDropped)
	}
	if n := len(e.mail.Mails()); n > maxPerHour {
		t.Fatalf("%d mails before stop, cap is %d: %v", n, maxPerHour, subjects(e.mail.Mails()))
	}
	e.stop() // the final flush sends what the cap held back
	total := 0
	for _, m := range e.mail.Mails() {
		subj := m.Msg.Header.Get("Subject")
		if strings.Contains(subj, ": banned ") {
			total++
			continue
		}
		var n int
		if _, err := fmt.Sscanf(subj[strings.Index(subj, ": ")+2:], "%d bans", &n); err == nil {
			total += n
		}
	}
	if n := len(e.mail.Mails()); total != 1000 || n > maxPerHour+1 {
		t.Fatalf("%d mails with %d bans: %v", n, total, subjects(e.mail.Mails()))
	}
	t.Logf("%d mails: %v", len(e.mail.Mails()), subjects(e.mail.Mails()))
}

package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/testbin"

	"github.com/palisade-project/palisade/internal/control"
)

// The tests in this file run the real palisade binary as a child process
// with its own config dir, socket and database in a temp dir, and the
// log-only firewall backend.

var (
	buildOnce sync.Once
	binPath   string
	binClean  func()
	buildErr  error
)

func palisadeBin(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("end-to-end daemon test: needs root (the daemon's control socket serves root only)")
	}
	if testing.Short() {
		t.Skip("end-to-end daemon test: not in -short mode (make race)")
	}
	buildOnce.Do(func() { binPath, binClean, buildErr = testbin.Build() })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binClean != nil {
		binClean()
	}
	os.Exit(code)
}

type env struct {
	t      *testing.T
	extra  []string // more daemon arguments
	dir    string
	etc    string
	socket string
	db     string
	log    string
	cmd    *exec.Cmd
	out    *os.File
	done   chan error
}

const guideJailLocal = `[DEFAULT]
ignoreip = 127.0.0.1/8
bantime = 1h
findtime = 10m
maxretry = 5

[sshd]
enabled = true
port = ssh
filter = sshd
logpath = %s
maxretry = 4
`

func newEnv(t *testing.T, jailLocal string) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, etc: filepath.Join(dir, "etc"), socket: filepath.Join(dir, "run", "palisade.sock"),
		db: filepath.Join(dir, "lib", "palisade.db"), log: filepath.Join(dir, "auth.log")}
	if err := os.MkdirAll(e.etc, 0o755); err != nil {
		t.Fatal(err)
	}
	e.write("palisade.local", "[Definition]\nloglevel = DEBUG\n[firewall]\nbackend = log\n")
	e.write("jail.local", jailLocal)
	if err := os.WriteFile(e.log, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.stop)
	return e
}

func (e *env) write(name, text string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.etc, name), []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) client() *control.Client {
	c := control.NewClient(e.socket)
	c.Timeout = 10 * time.Second
	return c
}

// start runs the daemon and waits until it answers ping.
func (e *env) start() {
	e.t.Helper()
	out, err := os.OpenFile(filepath.Join(e.dir, "daemon.out"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	e.out = out
	args := append([]string{"daemon", "--config-dir", e.etc, "--socket", e.socket, "--db", e.db}, e.extra...)
	e.cmd = exec.Command(palisadeBin(e.t), args...)
	e.cmd.Stdout, e.cmd.Stderr = out, out
	if err := e.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.done = make(chan error, 1)
	go func(c *exec.Cmd, done chan error) { done <- c.Wait() }(e.cmd, e.done)
	e.waitFor("daemon ready", 20*time.Second, func() bool {
		select {
		case err := <-e.done:
			e.done <- err
			e.t.Fatalf("daemon exited early: %v\n%s", err, e.output())
		default:
		}
		_, err := e.client().Ping(context.Background())
		return err == nil
	})
}

func (e *env) output() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "daemon.out"))
	return string(b)
}

// kill sends sig and waits for the process to end.
func (e *env) kill(sig syscall.Signal) {
	if e.cmd == nil {
		return
	}
	_ = e.cmd.Process.Signal(sig)
	select {
	case <-e.done:
	case <-time.After(20 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
		e.t.Errorf("daemon did not stop on %v", sig)
	}
	e.cmd = nil
	e.out.Close()
}

func (e *env) stop() { e.kill(syscall.SIGTERM) }

func (e *env) waitFor(what string, timeout time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s\ndaemon output:\n%s", what, e.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var portSeq struct {
	sync.Mutex
	n int
}

// fail appends one sshd failure line for ip to the log.
func (e *env) fail(ip string) {
	e.t.Helper()
	portSeq.Lock()
	portSeq.n++
	port := 10000 + portSeq.n
	portSeq.Unlock()
	line := fmt.Sprintf("%s server sshd[%d]: Failed password for root from %s port %d ssh2\n",
		time.Now().Format("Jan _2 15:04:05"), 1000+port%5000, ip, port)
	f, err := os.OpenFile(e.log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) status(jail string) control.JailStatus {
	e.t.Helper()
	st, err := e.client().Status(context.Background(), jail)
	if err != nil || len(st.Jails) != 1 {
		e.t.Fatalf("status %s: %+v, %v", jail, st, err)
	}
	return st.Jails[0]
}

func (e *env) ban(jail, ip string) (control.BanEntry, bool) {
	e.t.Helper()
	r, err := e.client().Banned(context.Background(), jail)
	if err != nil {
		e.t.Fatalf("banned: %v", err)
	}
	for _, b := range r.Bans {
		if b.IP == ip {
			return b, true
		}
	}
	return control.BanEntry{}, false
}

// waitBan waits (bounded) until ip is banned in jail and returns the ban.
func (e *env) waitBan(what, jail, ip string) control.BanEntry {
	e.t.Helper()
	var b control.BanEntry
	e.waitFor(what, 20*time.Second, func() bool {
		var ok bool
		b, ok = e.ban(jail, ip)
		return ok
	})
	return b
}

// explainFailures is the number of failures counted for ip in jail now.
func (e *env) explainFailures(jail, ip string) int {
	e.t.Helper()
	r, err := e.client().Explain(context.Background(), ip)
	if err != nil {
		e.t.Fatalf("explain: %v", err)
	}
	for _, j := range r.Jails {
		if j.Jail == jail {
			return j.Failures
		}
	}
	return -1
}

// waitProcessed waits until the jail has counted total failures.
func (e *env) waitCounted(jail string, total uint64) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("%d failures counted in %s", total, jail), 20*time.Second, func() bool {
		return e.status(jail).TotalFailed >= total
	})
}

func banLength(b control.BanEntry) time.Duration {
	if b.Expires == nil {
		return -1
	}
	return b.Expires.Sub(b.Since).Round(time.Second)
}

func TestGuideJailBansOnFourthFailure(t *testing.T) {
	e := newEnv(t, "")
	e.write("jail.local", fmt.Sprintf(guideJailLocal, e.log))
	e.start()
	const ip = "192.0.2.10"
	for i := 1; i <= 3; i++ {
		e.fail(ip)
	}
	e.waitCounted("sshd", 3)
	if _, banned := e.ban("sshd", ip); banned {
		t.Fatal("banned after 3 failures with maxretry = 4")
	}
	if n := e.explainFailures("sshd", ip); n != 3 {
		t.Fatalf("explain counts %d failures, want 3", n)
	}
	e.fail(ip)
	b := e.waitBan("ban after the 4th failure", "sshd", ip)
	if got := banLength(b); got != time.Hour {
		t.Fatalf("ban length = %v, want 1h", got)
	}
	st := e.status("sshd")
	if st.CurrentlyBanned != 1 || st.TotalBanned != 1 || len(st.Banned) != 1 || st.Banned[0] != ip || st.Error != "" {
		t.Fatalf("status = %+v", st)
	}
	// ignoreip 127.0.0.1/8: loopback is never banned.
	for i := 0; i < 5; i++ {
		e.fail("127.0.0.2")
	}
	e.fail("192.0.2.99")
	e.waitFor("later lines processed", 20*time.Second, func() bool { return e.explainFailures("sshd", "192.0.2.99") == 1 })
	if _, banned := e.ban("sshd", "127.0.0.2"); banned {
		t.Fatal("an ignoreip address was banned")
	}
	// The ban line is in the log, fail2ban style, for recidive.
	if !strings.Contains(e.output(), "NOTICE  [sshd] Ban 192.0.2.10") {
		t.Fatalf("no ban log line in:\n%s", e.output())
	}
}

// TestBannedAddressStillFailingIsNotReBanned: failures of an address
// banned a moment ago (a backlog, connections opened before the ban) make
// decisions every maxretry failures; each would reach a few seconds past
// the hour-long ban, so none is carried out (no store write, no firewall
// call, no "ban extended"), and the ban keeps its end.
func TestBannedAddressStillFailingIsNotReBanned(t *testing.T) {
	e := newEnv(t, "")
	e.write("jail.local", fmt.Sprintf(guideJailLocal, e.log))
	e.start()
	const ip = "198.51.100.20"
	for range 4 {
		e.fail(ip)
	}
	first := e.waitBan("the ban", "sshd", ip)
	// Log times have whole seconds, and failures logged in the second of
	// the address's last decision precede it: four failures dated in each
	// of the next three seconds make three decisions.
	for n := range 3 {
		at := first.Since.Truncate(time.Second).Add(time.Duration(n+1) * time.Second)
		for range 4 {
			e.failAt(ip, at)
		}
		e.waitCounted("sshd", uint64(8+4*n))
	}
	e.waitFor("three decisions held", 20*time.Second, func() bool {
		return strings.Count(e.output(), "already banned") >= 3
	})
	b, ok := e.ban("sshd", ip)
	if !ok || !b.Expires.Equal(*first.Expires) {
		t.Fatalf("ban changed: %+v, was %+v", b, first)
	}
	if st := e.status("sshd"); st.TotalBanned != 1 || st.CurrentlyBanned != 1 {
		t.Fatalf("status %+v", st)
	}
	if out := e.output(); strings.Contains(out, "ban extended") || strings.Count(out, "already banned") != 3 {
		t.Fatalf("want 3 decisions held, none extended:\n%s", out)
	}
}

// TestGetReadsTheRunningSettings: `palisade get JAIL KEY` prints what
// the daemon runs with, from the configuration text, as fail2ban-client
// get prints it.
func TestGetReadsTheRunningSettings(t *testing.T) {
	e := newEnv(t, "")
	e.write("jail.local", fmt.Sprintf(guideJailLocal, e.log)+"ignoreip = 127.0.0.1/8 198.51.100.0/24\n")
	e.start()
	for key, want := range map[string]string{
		"bantime":    "3600\n",
		"findtime":   "600\n",
		"maxretry":   "4\n",
		"ignoreself": "True\n",
		"ignoreip":   "These IP addresses/networks are ignored:\n|- 127.0.0.1/8\n`- 198.51.100.0/24\n",
		"logpath":    "Current monitored log file(s):\n`- " + e.log + "\n",
	} {
		out, err := exec.Command(palisadeBin(t), "get", "sshd", key, "--socket", e.socket).CombinedOutput()
		if err != nil || string(out) != want {
			t.Errorf("get sshd %s: %q (%v), want %q", key, out, err, want)
		}
	}
}

func TestIncrementEscalatesAndCaps(t *testing.T) {
	e := newEnv(t, "")
	e.write("jail.local", fmt.Sprintf(guideJailLocal, e.log)+
		"bantime.increment = true\nbantime.factor = 24\nbantime.maxtime = 5w\n")
	e.start()
	const ip = "198.51.100.20"
	ctx := context.Background()
	const maxTime = 5 * 7 * 24 * time.Hour
	want := []time.Duration{time.Hour}
	for n := 1; n < 7; n++ {
		d := time.Duration(1<<n) * 24 * time.Hour
		if d > maxTime {
			d = maxTime
		}
		want = append(want, d)
	}
	for round, w := range want {
		// A repeat offender's failures weigh more: write until banned,
		// never more than maxretry lines.
		var b control.BanEntry
		for i := 0; i < 4; i++ {
			e.fail(ip)
			ok := false
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				if b, ok = e.ban("sshd", ip); ok {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if ok {
				break
			}
		}
		if b.IP == "" {
			t.Fatalf("round %d: not banned after 4 failures\n%s", round+1, e.output())
		}
		if got := banLength(b); got != w {
			t.Fatalf("round %d: ban length %v, want %v", round+1, got, w)
		}
		if b.Offences != round+1 {
			t.Fatalf("round %d: offences = %d", round+1, b.Offences)
		}
		if _, err := e.client().Unban(ctx, "sshd", ip); err != nil {
			t.Fatal(err)
		}
	}
}

func TestKill9KeepsBansAndCountsEachLineOnce(t *testing.T) {
	e := newEnv(t, "")
	e.write("jail.local", fmt.Sprintf(guideJailLocal, e.log))
	e.start()
	// 24 addresses fail 4 times (banned), 12 fail 3 times (never banned),
	// interleaved; the daemon is killed with SIGKILL halfway through.
	var full, partial []string
	for i := 1; i <= 24; i++ {
		full = append(full, fmt.Sprintf("198.51.100.%d", i))
	}
	for i := 1; i <= 12; i++ {
		partial = append(partial, fmt.Sprintf("203.0.113.%d", i))
	}
	var lines []string
	for round := 0; round < 4; round++ {
		lines = append(lines, full...)
		if round < 3 {
			lines = append(lines, partial...)
		}
	}
	// Phase 1: stream lines until the daemon has saved a read position
	// (which flushes the failure journal first), so that the restart must
	// restore counted failures from the journal.
	journal := e.db + ".failures"
	next := 0
	e.waitFor("a position checkpoint", 30*time.Second, func() bool {
		if fi, err := os.Stat(journal); err == nil && fi.Size() > 0 {
			return true
		}
		if next < len(lines)/2 {
			e.fail(lines[next])
			next++
			e.waitCounted("sshd", uint64(next))
		}
		return false
	})
	// Phase 2: more lines processed after that checkpoint, then kill -9.
	half := len(lines) / 2
	if next > half {
		half = next
	}
	for _, ip := range lines[next:half] {
		e.fail(ip)
	}
	e.waitCounted("sshd", uint64(half))
	bansBefore, err := e.client().Banned(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	e.kill(syscall.SIGKILL)
	e.start()
	if !strings.Contains(e.output(), "failures restored") {
		t.Fatalf("no failures restored from the journal after kill -9:\n%s", e.output())
	}
	for _, b := range bansBefore.Bans {
		if _, ok := e.ban(b.Jail, b.IP); !ok {
			t.Fatalf("ban of %s lost across kill -9", b.IP)
		}
	}
	for _, ip := range lines[half:] {
		e.fail(ip)
	}
	e.waitFor("every full offender banned", 30*time.Second, func() bool {
		r, err := e.client().Banned(context.Background(), "sshd")
		return err == nil && len(r.Bans) >= len(full)
	})
	for _, ip := range full {
		b, ok := e.ban("sshd", ip)
		if !ok {
			t.Errorf("%s: 4 failures, not banned (a line was missed)", ip)
			continue
		}
		if b.Offences != 1 {
			t.Errorf("%s: offences = %d, want 1", ip, b.Offences)
		}
	}
	for _, ip := range partial {
		if _, ok := e.ban("sshd", ip); ok {
			t.Errorf("%s: 3 failures, banned (a line was counted twice)", ip)
		}
		if n := e.explainFailures("sshd", ip); n != 3 {
			t.Errorf("%s: %d failures counted, want 3", ip, n)
		}
	}
}

// TestBrokenJailIsolated: a jail whose log file is missing is reported
// (status error and warning) and watched; the other jails work. (A jail
// whose filter is missing is a configuration error: see
// TestConfigCheckStartReloadAgree.)
func TestBrokenJailIsolated(t *testing.T) {
	e := newEnv(t, "")
	missing := filepath.Join(e.dir, "nowhere", "missing.log")
	e.write("jail.local", fmt.Sprintf(guideJailLocal, e.log)+fmt.Sprintf(`
[missing-log]
enabled = true
filter = sshd
backend = polling
logpath = %s
`, missing))
	e.start()
	if st := e.status("sshd"); st.Error != "" || len(st.Warnings) != 0 {
		t.Errorf("sshd error = %q, warnings %q", st.Error, st.Warnings)
	}
	e.waitFor("missing log reported", 10*time.Second, func() bool {
		return strings.Contains(e.status("missing-log").Error, "missing")
	})
	if w := e.status("missing-log").Warnings; len(w) != 1 || !strings.Contains(w[0], missing) || !strings.Contains(w[0], "does not exist") {
		t.Errorf("missing-log warnings = %q", w)
	}
	for i := 0; i < 4; i++ {
		e.fail("192.0.2.44")
	}
	e.waitBan("sshd still bans", "sshd", "192.0.2.44")
}

func TestReloadKeepsCountersAndRefusesBrokenConfig(t *testing.T) {
	e := newEnv(t, "")
	base := fmt.Sprintf(guideJailLocal, e.log)
	e.write("jail.local", base)
	e.start()
	ctx := context.Background()
	const ip = "192.0.2.55"
	e.fail(ip)
	e.fail(ip)
	e.waitCounted("sshd", 2)

	// A second jail appears; sshd is unchanged and keeps its count.
	other := filepath.Join(e.dir, "other.log")
	e.write("jail.local", base+fmt.Sprintf("\n[sshd-other]\nenabled = true\nfilter = sshd\nlogpath = %s\n", other))
	rep, err := e.client().Reload(ctx)
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if len(rep.Added) != 1 || rep.Added[0] != "sshd-other" || len(rep.Changed) != 0 {
		t.Fatalf("reload reply = %+v", rep)
	}
	if n := e.explainFailures("sshd", ip); n != 2 {
		t.Fatalf("after reload sshd counts %d failures for %s, want 2 (counters lost)", n, ip)
	}

	// A broken configuration is refused; the running one stays.
	e.write("jail.local", strings.Replace(base, "maxretry = 4", "maxretry = many", 1))
	_, err = e.client().Reload(ctx)
	var re *control.RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Msg, "maxretry") || !strings.Contains(re.Msg, "jail.local:") {
		t.Fatalf("broken reload err = %v, want maxretry error with file:line", err)
	}
	st, err := e.client().Status(ctx, "")
	if err != nil || st.ReloadError == "" || len(st.Jails) != 2 {
		t.Fatalf("status after broken reload = %+v, %v", st, err)
	}
	e.fail(ip)
	e.fail(ip)
	e.waitBan("ban with counters kept across reloads", "sshd", ip)

	// SIGHUP reloads too.
	e.write("jail.local", base)
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.waitFor("SIGHUP reload", 20*time.Second, func() bool {
		st, err := e.client().Status(ctx, "")
		return err == nil && len(st.Jails) == 1 && st.ReloadError == ""
	})
}

func TestNoJailConfigProtectsSSHD(t *testing.T) {
	// Only the firewall choice is configured (log-only, for the test); the
	// jails come from the built-in jail.conf. --root prefixes the log path.
	e := newEnv(t, "")
	if err := os.Remove(filepath.Join(e.etc, "jail.local")); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(e.dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "var", "log"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.log = filepath.Join(root, "var", "log", "auth.log")
	if err := os.WriteFile(e.log, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	e.extra = []string{"--root", root}
	e.start()
	st := e.status("sshd")
	if len(st.Sources) != 1 || st.Sources[0] != e.log || st.Error != "" {
		t.Fatalf("sshd status = %+v, want it reading %s", st, e.log)
	}
	for i := 0; i < 5; i++ {
		e.fail("203.0.113.77")
	}
	b := e.waitBan("default sshd jail bans after 5 failures", "sshd", "203.0.113.77")
	if got := banLength(b); got != 10*time.Minute {
		t.Fatalf("default ban length %v, want 10m", got)
	}
	e.stop()

	// Without auth.log the journal is used.
	if _, err := exec.LookPath("journalctl"); err != nil {
		t.Skip("journalctl not installed")
	}
	if err := os.Remove(e.log); err != nil {
		t.Fatal(err)
	}
	e.start()
	st = e.status("sshd")
	if len(st.Sources) != 1 || st.Sources[0] != "journal" {
		t.Fatalf("sshd sources without auth.log = %+v, want journal", st.Sources)
	}
}

func TestBrokenConfigAtStartExits2(t *testing.T) {
	e := newEnv(t, "")
	e.write("jail.local", strings.Replace(fmt.Sprintf(guideJailLocal, e.log), "bantime = 1h", "bantime = forever", 1))
	cmd := exec.Command(palisadeBin(t), "daemon", "--config-dir", e.etc, "--socket", e.socket, "--db", e.db)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit = %v, want status 2\n%s", err, out)
	}
	if !strings.Contains(string(out), "jail.local:3") || !strings.Contains(string(out), "bantime") {
		t.Fatalf("error does not name file:line and key:\n%s", out)
	}
	if _, err := os.Stat(e.socket); err == nil {
		t.Fatal("a socket was created for a refused configuration")
	}
}

func TestUnknownJailIsBadInput(t *testing.T) {
	e := newEnv(t, "")
	e.write("jail.local", fmt.Sprintf(guideJailLocal, e.log))
	e.start()
	cmd := exec.Command(palisadeBin(t), "ban", "nosuchjail", "192.0.2.9", "--socket", e.socket)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "no such jail") {
		t.Fatalf("ban in unknown jail: %v\n%s", err, out)
	}
	// Loopback can never be an attacker: the ban is refused as bad input (2).
	cmd = exec.Command(palisadeBin(t), "ban", "sshd", "127.0.0.1", "--socket", e.socket)
	out, err = cmd.CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "loopback") {
		t.Fatalf("ban of loopback: %v\n%s", err, out)
	}
	cmd = exec.Command(palisadeBin(t), "ban", "sshd", "198.51.100.200", "--for", "-1", "--socket", e.socket)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "permanently") {
		t.Fatalf("permanent manual ban: %v\n%s", err, out)
	}
	if b, ok := e.ban("sshd", "198.51.100.200"); !ok || !b.Permanent || b.Expires != nil {
		t.Fatalf("manual permanent ban = %+v, %v", b, ok)
	}
}

// failAt writes a failure line dated at.
func (e *env) failAt(ip string, at time.Time) {
	e.t.Helper()
	f, err := os.OpenFile(e.log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "%s server sshd[4242]: Failed password for root from %s port 4242 ssh2\n", at.Format("Jan _2 15:04:05"), ip)
}

// TestFirstReadCountsRecentFailures: a log file seen for the first time is
// read back over findtime (as fail2ban does): failures written just before
// the daemon started count, older ones do not; a restart does not read the
// file again.
func TestFirstReadCountsRecentFailures(t *testing.T) {
	e := newEnv(t, "")
	e.write("jail.local", fmt.Sprintf(guideJailLocal, e.log))
	now := time.Now()
	for i := 0; i < 4; i++ {
		e.failAt("198.51.100.70", now.Add(-time.Hour)) // older than findtime
	}
	for i := 0; i < 3; i++ {
		e.failAt("198.51.100.71", now.Add(-time.Minute))
	}
	e.failAt("198.51.100.72", now.Add(-2*time.Minute))
	e.failAt("198.51.100.72", now.Add(-time.Minute))
	e.failAt("198.51.100.72", now)
	e.failAt("198.51.100.72", now)
	e.start()
	e.waitBan("the recent offender banned from the backlog", "sshd", "198.51.100.72")
	if _, ok := e.ban("sshd", "198.51.100.70"); ok {
		t.Fatal("failures older than findtime led to a ban")
	}
	if n := e.explainFailures("sshd", "198.51.100.71"); n != 3 {
		t.Fatalf("198.51.100.71: %d failures counted from the backlog, want 3", n)
	}
	e.stop()
	e.start()
	if n := e.explainFailures("sshd", "198.51.100.71"); n != 3 {
		t.Fatalf("after a restart: %d failures, want 3 (restored once, the file not read again)", n)
	}
}

// TestConfigDirMustExist: an explicit --config-dir that does not exist or
// is not a directory is bad usage (exit 2) for the daemon and config
// check; nothing falls back to the built-in configuration.
func TestConfigDirMustExist(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cd := range []string{filepath.Join(dir, "missing"), file} {
		for _, args := range [][]string{
			{"daemon", "--config-dir", cd, "--socket", filepath.Join(dir, "s"), "--db", filepath.Join(dir, "db")},
			{"config", "check", "--config-dir", cd},
		} {
			out, err := exec.Command(palisadeBin(t), args...).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), cd) {
				t.Errorf("%v: %v\n%s", args, err, out)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "s")); err == nil {
		t.Fatal("a daemon started")
	}
}

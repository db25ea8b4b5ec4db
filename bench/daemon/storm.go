package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/vishvananda/netns"

	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
)

// storm measures a ban storm: n distinct IPv6 attackers (each in its own
// /64 of 2001:db8::/32) fail once with maxretry 1, so the daemon holds n
// active bans. It reports the RSS and peak after the storm, what one
// `status --json` and one `banned --json` cost the daemon, and the restart
// (kill -9) time to a control socket that answers, with its RSS.
//
// With backend nftables the daemon runs in a fresh network namespace
// (kept across the restart, removed at the end), so the restart finds the
// kernel sets still full.
type storm struct {
	bin, backend, dir string
	n                 int
	maxBans           int
	ns                string
	execAt            time.Time
}

func runStorm(bin, backend string, n, maxBans int, keep bool) error {
	dir, err := os.MkdirTemp("", "palisade-storm-")
	if err != nil {
		return err
	}
	s := &storm{bin: bin, backend: backend, dir: dir, n: n, maxBans: maxBans}
	if backend == "nftables" {
		name, h, err := nstest.Create("palisade-storm-")
		if err != nil {
			return err
		}
		h.Close()
		s.ns = name
	}
	if keep {
		fmt.Printf("keeping %s (network namespace %q): -reuse %s -netns %q restarts from it\n", dir, s.ns, dir, s.ns)
	} else {
		defer os.RemoveAll(dir)
		if s.ns != "" {
			defer netns.DeleteNamed(s.ns)
		}
	}
	return s.run()
}

// restartOnly measures the restart from the state a -keep run left: the
// database, the failure journal, and with nftables the kernel sets in the
// namespace named netnsName.
func restartOnly(bin, dir, netnsName string) error {
	s := &storm{bin: bin, dir: dir, ns: netnsName}
	cmd, _, took, err := s.start()
	if err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	u, k := cpuTime(cmd.Process.Pid)
	fmt.Printf("restart: ready in %v (CPU: user %v, system %v); %s\n", took.Round(time.Millisecond), u, k, rssDetail(cmd.Process.Pid))
	if bs := s.restoreBreakdown(); bs != "" {
		fmt.Println(bs)
	}
	return nil
}

func (s *storm) start() (*exec.Cmd, *control.Client, time.Duration, error) {
	c := control.NewClient(filepath.Join(s.dir, "run", "p.sock"))
	args := []string{"daemon", "--config-dir", filepath.Join(s.dir, "etc"), "--socket", c.Path, "--db", filepath.Join(s.dir, "db", "p.db")}
	var cmd *exec.Cmd
	if s.ns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", s.ns, s.bin}, args...)...)
	} else {
		cmd = exec.Command(s.bin, args...)
	}
	out, err := os.OpenFile(filepath.Join(s.dir, "daemon.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, nil, 0, err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	t0 := time.Now()
	s.execAt = t0
	if err := cmd.Start(); err != nil {
		return nil, nil, 0, err
	}
	for i := 0; i < 60000; i++ {
		if _, err := c.Ping(context.Background()); err == nil {
			return cmd, c, time.Since(t0), nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	log, _ := os.ReadFile(filepath.Join(s.dir, "daemon.log"))
	if len(log) > 4000 {
		log = log[len(log)-4000:]
	}
	return nil, nil, 0, fmt.Errorf("daemon not ready after 2 minutes; its log ends:\n%s", log)
}

func stormAddr(i int) string {
	return fmt.Sprintf("2001:db8:%x:%x:%x:%x:%x:%x", i>>16, i&0xffff, 0x1000+i%0xefff, (i*7)&0xffff, (i*13)&0xffff, 1+i%0xfffe)
}

var banLine = []byte("] Ban ")

// countBans counts "Ban" lines of the ban log in the daemon's output.
func (s *storm) countBans() (int, error) {
	f, err := os.Open(filepath.Join(s.dir, "daemon.log"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	n := 0
	for {
		l, err := r.ReadSlice('\n')
		if bytes.Contains(l, banLine) && bytes.Contains(l, []byte("NOTICE")) {
			n++
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil && err != bufio.ErrBufferFull {
			return n, err
		}
	}
}

func (s *storm) run() error {
	logf := filepath.Join(s.dir, "auth.log")
	etc := filepath.Join(s.dir, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(logf, nil, 0o644); err != nil {
		return err
	}
	pal := fmt.Sprintf("[Definition]\nloglevel = NOTICE\n\n[firewall]\nbackend = %s\n", s.backend)
	if err := os.WriteFile(filepath.Join(etc, "palisade.local"), []byte(pal), 0o644); err != nil {
		return err
	}
	jail := fmt.Sprintf("[sshd]\nenabled = true\nfilter = sshd\nlogpath = %s\nmaxretry = 1\nfindtime = 1h\nbantime = 1d\n", logf)
	switch {
	case s.maxBans > 0:
		jail += fmt.Sprintf("maxbans = %d\n", s.maxBans)
	case s.maxBans < 0:
		jail += "maxbans = 0\n"
	}
	if err := os.WriteFile(filepath.Join(etc, "jail.local"), []byte(jail), 0o644); err != nil {
		return err
	}
	cmd, c, took, err := s.start()
	if err != nil {
		return err
	}
	defer func() {
		if cmd != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	cur, _ := rss(cmd.Process.Pid)
	fmt.Printf("ban storm: %d distinct IPv6 attackers, maxretry 1, backend %s\n", s.n, s.backend)
	fmt.Printf("start-up (empty db): %v, RSS %d MB\n", took.Round(time.Millisecond), cur)

	f, err := os.OpenFile(logf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	ts := time.Now().Format("Jan _2 15:04:05")
	t0 := time.Now()
	for i := 0; i < s.n; i++ {
		fmt.Fprintf(w, "%s host sshd[%d]: Failed password for root from %s port %d ssh2\n", ts, 1000+i%9000, stormAddr(i), 1024+i%60000)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	f.Close()
	// Done when every attacker got a Ban line, or (when maxbans merged
	// them into network bans, which cover later attackers) when the jail
	// has counted every line.
	want := s.n
	for polls := 1; ; polls++ {
		got, err := s.countBans()
		if err != nil {
			return err
		}
		if got >= want {
			break
		}
		if polls%40 == 0 {
			st, err := c.Status(context.Background(), "sshd")
			if err == nil && len(st.Jails) == 1 && st.Jails[0].TotalFailed >= uint64(want) {
				break
			}
		}
		if time.Since(t0) > 30*time.Minute {
			return fmt.Errorf("storm not banned in 30 minutes (%d of %d)", got, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
	el := time.Since(t0)
	time.Sleep(time.Second)
	fmt.Printf("%d attackers banned in %v (%.0f/s); %s\n", want, el.Round(time.Millisecond), float64(want)/el.Seconds(), rssDetail(cmd.Process.Pid))

	for _, verb := range []control.Verb{control.VerbStatus, control.VerbBanned} {
		before, peakBefore := rss(cmd.Process.Pid)
		t1 := time.Now()
		size, count, err := rawCall(c.Path, verb)
		if err != nil {
			return fmt.Errorf("%s: %w", verb, err)
		}
		d := time.Since(t1)
		after, peakAfter := rss(cmd.Process.Pid)
		fmt.Printf("%s --json: %d entries, %d MB reply in %v; daemon RSS %d -> %d MB, peak %d -> %d MB\n",
			verb, count, size>>20, d.Round(time.Millisecond), before, after, peakBefore, peakAfter)
	}
	st, err := c.Status(context.Background(), "sshd")
	if err != nil {
		return err
	}
	if len(st.Jails) == 1 {
		fmt.Printf("jail sshd: %d active bans (%d made)\n", st.Jails[0].CurrentlyBanned, st.Jails[0].TotalBanned)
	}

	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	cmd, c, took, err = s.start()
	if err != nil {
		return err
	}
	u, k := cpuTime(cmd.Process.Pid)
	fmt.Printf("restart after kill -9: ready in %v (CPU: user %v, system %v); %s\n", took.Round(time.Millisecond), u, k, rssDetail(cmd.Process.Pid))
	if bs := s.restoreBreakdown(); bs != "" {
		fmt.Println(bs)
	}
	st, err = c.Status(context.Background(), "sshd")
	if err == nil && len(st.Jails) == 1 {
		fmt.Printf("after restart: %d active bans\n", st.Jails[0].CurrentlyBanned)
	}
	return nil
}

var logTime = regexp.MustCompile(`^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) `)

// restoreBreakdown returns the daemon's own log lines about the last
// start-up (restore, failure journal), with their time stamps.
func (s *storm) restoreBreakdown() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "daemon.log"))
	lines := strings.Split(string(b), "\n")
	var out []string
	for i := len(lines) - 1; i >= 0 && len(out) < 6; i-- {
		l := lines[i]
		if strings.Contains(l, "restored") || strings.Contains(l, "failure journal read") || strings.Contains(l, "adopted") {
			m := logTime.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			t, err := time.ParseInLocation("2006-01-02 15:04:05,000", m[1], time.Local)
			if err != nil || t.Before(s.execAt.Truncate(time.Millisecond)) {
				break
			}
			out = append([]string{fmt.Sprintf("  +%v %s", t.Sub(s.execAt).Round(time.Millisecond), strings.TrimSpace(l[len(m[0]):]))}, out...)
		}
	}
	return strings.Join(out, "\n")
}

// rawCall sends one request and reads the whole reply (in the benchmark's
// memory, not the daemon's), returning its size and the number of
// addresses in it.
func rawCall(path string, verb control.Verb) (int, int, error) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "{\"verb\":%q}\n", verb); err != nil {
		return 0, 0, err
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return len(b), 0, err
	}
	if !bytes.HasPrefix(b, []byte(`{"ok":true`)) {
		return len(b), 0, fmt.Errorf("reply %.200q", b)
	}
	return len(b), bytes.Count(b, []byte(`"2001:db8:`)), nil
}

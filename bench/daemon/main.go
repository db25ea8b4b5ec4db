// Command daemon measures the palisade daemon as a process: idle RSS with
// the sshd jail, RSS after N distinct addresses fail once each, and the
// time a restart takes (kill -9, then until the control socket answers)
// with that state on disk. It uses the log-only firewall backend.
//
//	go build -o /tmp/palisade ./cmd/palisade
//	go run ./bench/daemon -bin /tmp/palisade -n 1000000
//
// With -storm N it measures a ban storm instead (see storm.go):
//
//	go run ./bench/daemon -bin /tmp/palisade -storm 300000 -maxbans -1 -backend nftables -keep
//	go run ./bench/daemon -bin /tmp/palisade -reuse DIR -netns NAME   # the restart again
//	go run ./bench/daemon -bin /tmp/palisade -reuse DIR -netns NAME -fault corrupt   # or readonly
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/control"
)

func main() {
	bin := flag.String("bin", "bin/palisade", "palisade binary")
	n := flag.Int("n", 1000000, "distinct failing addresses")
	compact := flag.Duration("settle", 70*time.Second, "wait after the flood (lets the failure journal compact) before the restart")
	stormN := flag.Int("storm", 0, "instead of the flood: a ban storm of this many distinct IPv6 attackers (maxretry 1)")
	backend := flag.String("backend", "log", "firewall backend for -storm: log, or nftables (in a fresh network namespace; needs root)")
	maxBans := flag.Int("maxbans", 0, "the jail's maxbans for -storm (0: the default; -1: no bound)")
	keep := flag.Bool("keep", false, "keep the -storm working directory (database, logs) and network namespace")
	reuse := flag.String("reuse", "", "only measure a restart from the directory a -storm -keep run left")
	netnsName := flag.String("netns", "", "with -reuse: the network namespace that run left (nftables)")
	fault := flag.String("fault", "", "with -reuse: break the database first: corrupt (garbage; the kernel's bans are adopted) or readonly (its directory mounted read-only)")
	extra := flag.Int("extra", 1000, "with -fault readonly: new attackers to ban while the database cannot be written")
	flag.Parse()
	if *reuse != "" && *fault != "" {
		if err := restartFault(*bin, *reuse, *netnsName, *fault, *extra); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *reuse != "" {
		if err := restartOnly(*bin, *reuse, *netnsName); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *stormN > 0 {
		if err := runStorm(*bin, *backend, *stormN, *maxBans, *keep); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*bin, *n, *compact); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func rss(pid int) (cur, peak int) {
	m := procStatus(pid)
	return m["VmRSS"] / 1024, m["VmHWM"] / 1024
}

// procStatus returns the kB values of /proc/PID/status.
func procStatus(pid int) map[string]int {
	out := map[string]int{}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && strings.HasSuffix(f[0], ":") {
			if v, err := strconv.Atoi(f[1]); err == nil {
				out[strings.TrimSuffix(f[0], ":")] = v
			}
		}
	}
	return out
}

// cpuTime is the CPU time pid has used (user, system): on a loaded
// machine it says more about the work done than the wall clock.
func cpuTime(pid int) (user, sys time.Duration) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	// Fields after the command name (which may hold spaces): state is 3rd.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, 0
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	u, _ := strconv.Atoi(f[11])
	k, _ := strconv.Atoi(f[12])
	return time.Duration(u) * tick, time.Duration(k) * tick
}

// rssDetail is "RSS N MB (anon A, file F), peak P MB": file pages are
// the database's memory map, shared with the page cache and reclaimable.
func rssDetail(pid int) string {
	m := procStatus(pid)
	return fmt.Sprintf("RSS %d MB (anon %d, file %d), peak %d MB", m["VmRSS"]/1024, m["RssAnon"]/1024, m["RssFile"]/1024, m["VmHWM"]/1024)
}

func start(bin, dir string) (*exec.Cmd, *control.Client, time.Duration, error) {
	c := control.NewClient(filepath.Join(dir, "run", "p.sock"))
	cmd := exec.Command(bin, "daemon", "--config-dir", filepath.Join(dir, "etc"), "--socket", c.Path, "--db", filepath.Join(dir, "db", "p.db"))
	out, _ := os.OpenFile(filepath.Join(dir, "daemon.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	cmd.Stdout, cmd.Stderr = out, out
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, nil, 0, err
	}
	for i := 0; i < 6000; i++ {
		if _, err := c.Ping(context.Background()); err == nil {
			return cmd, c, time.Since(t0), nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	return nil, nil, 0, fmt.Errorf("daemon not ready after 30s")
}

func run(bin string, n int, settle time.Duration) error {
	dir, err := os.MkdirTemp("", "palisade-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logf := filepath.Join(dir, "auth.log")
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(logf, nil, 0o644)
	os.WriteFile(filepath.Join(dir, "etc", "palisade.local"), []byte("[firewall]\nbackend = log\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc", "jail.local"), []byte(fmt.Sprintf(
		"[sshd]\nenabled = true\nfilter = sshd\nlogpath = %s\nmaxretry = 5\nfindtime = 1h\n", logf)), 0o644)

	cmd, c, took, err := start(bin, dir)
	if err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	cur, _ := rss(cmd.Process.Pid)
	fmt.Printf("start-up (empty db): %v\nidle RSS (sshd jail): %d MB\n", took.Round(time.Millisecond), cur)

	f, err := os.OpenFile(logf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	ts := time.Now().Format("Jan _2 15:04:05")
	t0 := time.Now()
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, "%s host sshd[%d]: Failed password for root from %d.%d.%d.%d port %d ssh2\n",
			ts, 1000+i%9000, 11+(i>>24), byte(i>>16), byte(i>>8), byte(i), 1024+i%60000)
	}
	w.Flush()
	f.Close()
	for {
		st, err := c.Status(context.Background(), "sshd")
		if err != nil {
			return err
		}
		if st.Jails[0].TotalFailed >= uint64(n) {
			break
		}
		if time.Since(t0) > 10*time.Minute {
			return fmt.Errorf("flood not processed in 10 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	el := time.Since(t0)
	cur, peak := rss(cmd.Process.Pid)
	fmt.Printf("%d distinct addresses failing once: processed in %v (%.0f lines/s incl. writing); RSS %d MB, peak %d MB\n",
		n, el.Round(time.Millisecond), float64(n)/el.Seconds(), cur, peak)
	time.Sleep(settle)
	cur, peak = rss(cmd.Process.Pid)
	// The failure journal: its active file and its sealed segment.
	var js int64
	for _, name := range []string{"p.db.failures", "p.db.failures.1"} {
		if fi, _ := os.Stat(filepath.Join(dir, "db", name)); fi != nil {
			js += fi.Size()
		}
	}
	fmt.Printf("after %v: RSS %d MB, peak %d MB, failure journal %.1f MB\n", settle, cur, peak, float64(js)/(1<<20))

	cmd.Process.Kill()
	cmd.Wait()
	cmd, _, took, err = start(bin, dir)
	if err != nil {
		return err
	}
	cur, peak = rss(cmd.Process.Pid)
	fmt.Printf("restart after kill -9 with that state: ready in %v; RSS %d MB, peak %d MB\n", took.Round(time.Millisecond), cur, peak)
	cmd.Process.Kill()
	cmd.Wait()
	return nil
}

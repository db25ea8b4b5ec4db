package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// restartFault restarts from the state a -storm -keep run left, with its
// database broken first:
//
//   - corrupt: the database file is overwritten with garbage; the daemon
//     moves it aside and adopts the bans the kernel sets still hold
//     (nftables), so none is lifted;
//   - readonly: the database directory is bind-mounted read-only; the
//     daemon starts, keeps the stored bans, and bans `extra` new attackers
//     from memory while status reports the database as not writable.
//
// It reports the time to ready, the active bans after the restart, and
// for readonly how long the new attackers took to be banned.
func restartFault(bin, dir, netnsName, fault string, extra int) error {
	s := &storm{bin: bin, dir: dir, ns: netnsName}
	dbDir := filepath.Join(dir, "db")
	switch fault {
	case "corrupt":
		if err := os.WriteFile(filepath.Join(dbDir, "p.db"), bytes.Repeat([]byte("garbage!"), 8192), 0o600); err != nil {
			return err
		}
	case "readonly":
		if out, err := exec.Command("mount", "--bind", dbDir, dbDir).CombinedOutput(); err != nil {
			return fmt.Errorf("mount --bind: %v: %s", err, out)
		}
		defer func() { _ = exec.Command("umount", dbDir).Run() }()
		if out, err := exec.Command("mount", "-o", "remount,bind,ro", dbDir).CombinedOutput(); err != nil {
			return fmt.Errorf("remount read-only: %v: %s", err, out)
		}
	default:
		return fmt.Errorf("unknown -fault %q (corrupt or readonly)", fault)
	}
	cmd, c, took, err := s.start()
	if err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	u, k := cpuTime(cmd.Process.Pid)
	fmt.Printf("restart with a %s database: ready in %v (CPU: user %v, system %v); %s\n", fault, took.Round(time.Millisecond), u, k, rssDetail(cmd.Process.Pid))
	if bs := s.restoreBreakdown(); bs != "" {
		fmt.Println(bs)
	}
	ctx := context.Background()
	st, err := c.Status(ctx, "sshd")
	if err != nil || len(st.Jails) != 1 {
		return fmt.Errorf("status: %v", err)
	}
	before := st.Jails[0].TotalBanned
	fmt.Printf("after restart: %d active bans; database ok=%v %s\n", st.Jails[0].CurrentlyBanned, st.Database.OK, st.Database.Error)
	if fault == "corrupt" {
		aside, _ := filepath.Glob(filepath.Join(dbDir, "p.db.corrupt-*"))
		fmt.Printf("moved aside: %v\n", aside)
		return nil
	}

	// New attackers while the database cannot be written.
	f, err := os.OpenFile(filepath.Join(dir, "auth.log"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	ts := time.Now().Format("Jan _2 15:04:05")
	for i := range extra {
		fmt.Fprintf(w, "%s host sshd[4242]: Failed password for root from %s port 4242 ssh2\n", ts, stormAddr(1<<24+i))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	f.Close()
	t0 := time.Now()
	for {
		st, err = c.Status(ctx, "sshd")
		if err == nil && len(st.Jails) == 1 && st.Jails[0].TotalBanned >= before+uint64(extra) {
			break
		}
		if time.Since(t0) > 2*time.Minute {
			return fmt.Errorf("%d new attackers not banned in 2 minutes (status %+v, %v)", extra, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("%d new attackers banned from memory in %v: %d active bans; database ok=%v unsaved=%d error=%q\n",
		extra, time.Since(t0).Round(time.Millisecond), st.Jails[0].CurrentlyBanned, st.Database.OK, st.Database.Unsaved, st.Database.Error)
	return nil
}

package jails

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall/nstest"
)

// daemon is `palisade daemon` running in the server namespace (so its
// firewall rules live there), with its own configuration directory,
// socket and database.
type daemon struct {
	t      *testing.T
	bin    string
	ns     *nstest.NS
	etc    string
	socket string
	db     string
	out    string
	cmd    *exec.Cmd
	done   chan struct{}
	starts int
}

// The JSON shapes of docs/cli.md (the stable contract), as far as the
// tests read them.
type jailStatus struct {
	Name            string   `json:"name"`
	Error           string   `json:"error"`
	TotalFailed     uint64   `json:"total_failed"`
	CurrentlyBanned int      `json:"currently_banned"`
	TotalBanned     uint64   `json:"total_banned"`
	Banned          []string `json:"banned"`
}

type statusReply struct {
	Backend string       `json:"backend"`
	Jails   []jailStatus `json:"jails"`
}

type banEntry struct {
	Jail string `json:"jail"`
	IP   string `json:"ip"`
}

type bannedReply struct {
	Bans []banEntry `json:"bans"`
}

type explainReply struct {
	IP     string     `json:"ip"`
	Banned []banEntry `json:"banned"`
	Jails  []struct {
		Jail     string `json:"jail"`
		Ignored  bool   `json:"ignored"`
		Failures int    `json:"failures"`
	} `json:"jails"`
}

func newDaemon(t *testing.T, ns *nstest.NS, dir string, files map[string]string) *daemon {
	t.Helper()
	d := &daemon{t: t, bin: palisade(t), ns: ns, etc: filepath.Join(dir, "etc"),
		socket: filepath.Join(dir, "run", "palisade.sock"), db: filepath.Join(dir, "lib", "palisade.db"),
		out: filepath.Join(dir, "daemon.out")}
	if err := os.MkdirAll(d.etc, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(d.etc, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if d.cmd != nil {
			d.stop(syscall.SIGTERM)
		}
		if t.Failed() {
			b, _ := os.ReadFile(d.out)
			t.Logf("daemon output:\n%s", tail(b, 60))
		}
	})
	return d
}

// start runs the daemon and waits until `palisade status` answers.
func (d *daemon) start() {
	d.t.Helper()
	out, err := os.OpenFile(d.out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	defer out.Close()
	d.starts++
	fmt.Fprintf(out, "---- start %d ----\n", d.starts)
	d.cmd = exec.Command("ip", "netns", "exec", d.ns.Name, d.bin, "daemon",
		"--config-dir", d.etc, "--socket", d.socket, "--db", d.db)
	d.cmd.Stdout, d.cmd.Stderr = out, out
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("start daemon: %v", err)
	}
	d.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(d.cmd, d.done)
	nstest.Eventually(d.t, 20*time.Second, "daemon answering", func() error {
		select {
		case <-d.done:
			b, _ := os.ReadFile(d.out)
			d.t.Fatalf("daemon exited: %v\n%s", d.cmd.ProcessState, tail(b, 40))
		default:
		}
		_, code, stderr := d.cli("status", "--json")
		if code != 0 {
			return fmt.Errorf("status exit %d: %s", code, stderr)
		}
		return nil
	})
}

// stop sends sig and waits for the daemon to end.
func (d *daemon) stop(sig syscall.Signal) {
	d.t.Helper()
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		d.t.Errorf("daemon did not stop on %v", sig)
	}
	d.cmd = nil
}

// cli runs a palisade client command against the daemon's socket.
func (d *daemon) cli(args ...string) (stdout string, code int, stderr string) {
	cmd := exec.Command(d.bin, append(args, "--socket", d.socket)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return o.String(), code, e.String()
}

// json runs a client command that must succeed and decodes its output.
func (d *daemon) json(v any, args ...string) {
	d.t.Helper()
	out, code, stderr := d.cli(append(args, "--json")...)
	if code != 0 {
		d.t.Fatalf("palisade %v: exit %d: %s", args, code, stderr)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		d.t.Fatalf("palisade %v: %v\n%s", args, err, out)
	}
}

func (d *daemon) jail(name string) jailStatus {
	d.t.Helper()
	var st statusReply
	d.json(&st, "status", name)
	if len(st.Jails) != 1 || st.Jails[0].Name != name {
		d.t.Fatalf("status %s: %+v", name, st)
	}
	return st.Jails[0]
}

// banned is the sorted list of addresses banned in jail.
func (d *daemon) banned(jail string) []string {
	d.t.Helper()
	var r bannedReply
	d.json(&r, "banned")
	var out []string
	for _, b := range r.Bans {
		if b.Jail == jail {
			out = append(out, b.IP)
		}
	}
	slices.Sort(out)
	return out
}

// waitBanned waits until exactly want (sorted) is banned in jail. The
// kernel may refuse an attacker a moment before the daemon lists the ban
// (the ban manager lists a ban once the firewall call has returned, and a
// ufw run outlives the moment its rule takes effect).
func (d *daemon) waitBanned(jail string, want ...string) {
	d.t.Helper()
	nstest.Eventually(d.t, 10*time.Second, fmt.Sprintf("banned in %s: %v", jail, want), func() error {
		if got := d.banned(jail); !slices.Equal(got, want) {
			return fmt.Errorf("banned: %v", got)
		}
		return nil
	})
}

// failures is the number of failures counted for ip in jail.
func (d *daemon) failures(jail, ip string) int {
	d.t.Helper()
	n, _ := d.explain(jail, ip)
	return n
}

// explain reports the failures counted for ip in jail and whether the
// jail ignores ip.
func (d *daemon) explain(jail, ip string) (failures int, ignored bool) {
	d.t.Helper()
	var r explainReply
	d.json(&r, "explain", ip)
	for _, j := range r.Jails {
		if j.Jail == jail {
			return j.Failures, j.Ignored
		}
	}
	d.t.Fatalf("explain %s: no jail %s: %+v", ip, jail, r)
	return 0, false
}

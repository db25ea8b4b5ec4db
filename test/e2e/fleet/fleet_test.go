// Package fleet is the end-to-end test of fleet-wide bans: three palisade
// daemons (the real binary, nftables in their own network namespaces) and
// one nats-server (built from the pinned module into this test binary and
// run in a hub namespace), joined by a bridge; an attacker namespace
// brute-forces server A, and B and C must refuse it. Needs root; skips
// otherwise.
package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/palisade-project/palisade/internal/firewall/nstest"
	"github.com/palisade-project/palisade/internal/fleet"
	"github.com/palisade-project/palisade/internal/fleet/fleettest"
	"github.com/palisade-project/palisade/internal/testbin"
	"github.com/palisade-project/palisade/internal/testutil/poll"
)

// natsEnv carries the helper's server options (JSON) to the re-executed
// test binary.
const natsEnv = "PALISADE_E2E_NATS_SERVER"

var binary string

func TestMain(m *testing.M) {
	if spec := os.Getenv(natsEnv); spec != "" {
		os.Exit(runNATS(spec))
	}
	if os.Geteuid() == 0 {
		bin, cleanup, err := testbin.Build()
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e fleet:", err)
			os.Exit(1)
		}
		binary = bin
		code := m.Run()
		cleanup()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// runNATS is the helper process: an embedded nats-server until SIGTERM.
func runNATS(spec string) int {
	var o fleettest.Options
	if err := json.Unmarshal([]byte(spec), &o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	srv, err := fleettest.New(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Close()
	fmt.Println("READY", srv.URL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return 0
}

// Addresses on the bridge (documentation range).
const (
	hubAddr = "192.0.2.10"
	natsURL = "nats://192.0.2.10:4222"
)

var memberAddrs = map[string]string{"web1": "192.0.2.1", "web2": "192.0.2.2", "web3": "192.0.2.3"}

// attackers are the attacker namespace's addresses, one per round.
var attackers = []string{"192.0.2.66", "192.0.2.67", "192.0.2.68", "192.0.2.69", "192.0.2.70", "192.0.2.71", "192.0.2.72"}

// bridge builds a bridge in hub (with hubAddr) and plugs every other
// namespace in with its addresses.
func bridge(t *testing.T, hub *nstest.NS, members map[*nstest.NS][]string) {
	t.Helper()
	h, err := netlink.NewHandleAt(hub.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatalf("bridge: %v", err)
	}
	brl, err := h.LinkByName("br0")
	if err != nil {
		t.Fatal(err)
	}
	addAddr(t, h, brl, hubAddr+"/24")
	if err := h.LinkSetUp(brl); err != nil {
		t.Fatal(err)
	}
	i := 0
	for ns, addrs := range members {
		i++
		name := fmt.Sprintf("port%d", i)
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, MasterIndex: brl.Attrs().Index}, PeerName: "eth0", PeerNamespace: netlink.NsFd(ns.Handle)}
		if err := h.LinkAdd(veth); err != nil {
			t.Fatalf("veth %s: %v", name, err)
		}
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		hm, err := netlink.NewHandleAt(ns.Handle)
		if err != nil {
			t.Fatal(err)
		}
		ml, err := hm.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			addAddr(t, hm, ml, a+"/24")
		}
		if err := hm.LinkSetUp(ml); err != nil {
			t.Fatal(err)
		}
		hm.Close()
	}
	// Every namespace reaches the hub (an RST from a closed port).
	for ns := range members {
		poll.UntilNil(t, 10*time.Second, ns.Name+" reaches the hub", func() error {
			o, err := nstest.Dial(ns, hubAddr+":9", 200*time.Millisecond)
			if err != nil {
				return err
			}
			if o != nstest.Refused {
				return fmt.Errorf("probe: %s", o)
			}
			return nil
		})
	}
}

func addAddr(t *testing.T, h *netlink.Handle, l netlink.Link, a string) {
	t.Helper()
	p := netip.MustParsePrefix(a)
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}); err != nil {
		t.Fatalf("address %s: %v", a, err)
	}
}

// lockedBuffer collects a background process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs a long-running program in ns, stopped (SIGTERM, then
// SIGKILL) when the test ends; its output is logged when the test failed.
func start(t *testing.T, ns *nstest.NS, env []string, name string, args ...string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}, env...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("output of %s %s:\n%s", name, strings.Join(args, " "), out.String())
		}
	})
	return cmd, out
}

// run runs the palisade binary in ns to completion.
func run(t *testing.T, ns *nstest.NS, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, binary}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}

// member is one server: its namespace, directory and daemon.
type member struct {
	name, addr string
	ns         *nstest.NS
	dir        string
	out        *lockedBuffer
}

func (m *member) etc() string { return filepath.Join(m.dir, "etc") }

func (m *member) cli(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return run(t, m.ns, append([]string{"--socket", filepath.Join(m.dir, "p.sock")}, args...)...)
}

func (m *member) configure(t *testing.T) {
	t.Helper()
	if err := os.MkdirAll(m.etc(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.dir, "auth.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(m.etc(), name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("jail.local", "[sshd]\nenabled = true\nmaxretry = 3\nfindtime = 10m\nbantime = 1h\nlogpath = "+filepath.Join(m.dir, "auth.log")+"\n")
	write("palisade.local", fmt.Sprintf("[Definition]\nloglevel = DEBUG\n[firewall]\nbackend = nftables\n[fleet]\nenabled = true\nservers = %s\nname = %s\n"+
		"user = %s\npassword = pw-%s\nkey = %s\ntrust = %s\nshare = sshd\n",
		natsURL, m.name, m.name, m.name, filepath.Join(m.dir, "fleet.key"), filepath.Join(m.dir, "fleet.trust")))
}

func (m *member) fleetStatus(t *testing.T) fleet.Status {
	t.Helper()
	out, code := m.cli(t, "fleet", "status", "--json")
	var st fleet.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		return fleet.Status{LastError: fmt.Sprintf("fleet status: exit %d: %s", code, out)}
	}
	return st
}

// appendFailures writes n sshd failures of addr into the member's log.
func (m *member) appendFailures(t *testing.T, addr string, n int) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(m.dir, "auth.log"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range n {
		fmt.Fprintf(f, "%s %s sshd[%d]: Failed password for root from %s port %d ssh2\n", time.Now().Format(time.Stamp), m.name, 2000+i, addr, 50000+i)
	}
}

// TestFleetBrute: a brute force in web1's log bans the attacker on web1,
// and web2 and web3 refuse its TCP connections; the propagation time
// (the log line on web1 → refused on web2) is measured over several
// rounds.
func TestFleetBrute(t *testing.T) {
	if binary == "" {
		t.Skip("e2e test: needs root (network namespaces, nftables)")
	}
	nstest.RequireProgram(t, "ip", "nft")
	hub, att := nstest.New(t), nstest.New(t)
	names := []string{"web1", "web2", "web3"}
	members := map[string]*member{}
	plug := map[*nstest.NS][]string{att: attackers}
	for _, n := range names {
		m := &member{name: n, addr: memberAddrs[n], ns: nstest.New(t), dir: t.TempDir()}
		members[n] = m
		plug[m.ns] = []string{m.addr}
	}
	bridge(t, hub, plug)

	// The nats-server, with one account per member holding exactly the
	// permissions palisade fleet init prints, and an admin for init.
	users := []fleettest.User{{Name: "admin", Password: "pw-admin", Admin: true}}
	for _, n := range names {
		users = append(users, fleettest.User{Name: n, Password: "pw-" + n})
	}
	spec, _ := json.Marshal(fleettest.Options{Host: hubAddr, Port: 4222, Dir: t.TempDir(), Users: users})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	_, natsOut := start(t, hub, []string{natsEnv + "=" + string(spec)}, self, "-test.run=^$")
	poll.Until(t, 20*time.Second, "nats-server ready", func() bool { return strings.Contains(natsOut.String(), "READY") })

	// Keys, trust files (through the CLI) and the stream.
	pubs := map[string]string{}
	for _, n := range names {
		m := members[n]
		m.configure(t)
		out, code := m.cli(t, "fleet", "keygen", "--config-dir", m.etc())
		if code != 0 {
			t.Fatalf("%s keygen: %d %s", n, code, out)
		}
		pubs[n] = strings.Fields(out)[1]
	}
	for _, n := range names {
		m := members[n]
		for _, o := range names {
			if out, code := m.cli(t, "fleet", "trust", "add", o, pubs[o], "--config-dir", m.etc()); code != 0 {
				t.Fatalf("%s trust add %s: %d %s", n, o, code, out)
			}
		}
	}
	a, b, c := members["web1"], members["web2"], members["web3"]
	if out, code := a.cli(t, "fleet", "init", "--config-dir", a.etc(), "--user", "admin", "--password", "pw-admin"); code != 0 ||
		!strings.Contains(out, "stream palisade-bans created") {
		t.Fatalf("fleet init: %d %s", code, out)
	}

	for _, n := range names {
		m := members[n]
		_, m.out = start(t, m.ns, nil, binary, "daemon", "--config-dir", m.etc(), "--socket", filepath.Join(m.dir, "p.sock"), "--db", filepath.Join(m.dir, "p.db"))
		nstest.Listen(t, m.ns, m.addr+":22")
	}
	for _, n := range names {
		m := members[n]
		poll.UntilNil(t, 20*time.Second, n+" in the fleet", func() error {
			st := m.fleetStatus(t)
			if !st.Connected || !st.CaughtUp || st.Trusted != 3 {
				return fmt.Errorf("%+v", st)
			}
			return nil
		})
	}

	dial := func(m *member, from string) nstest.Outcome {
		o, err := nstest.DialFrom(att, netip.MustParseAddr(from), m.addr+":22", 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	var props, locals []time.Duration
	for round, ip := range attackers {
		for _, m := range []*member{a, b, c} {
			if o := dial(m, ip); o != nstest.Connected {
				t.Fatalf("round %d: %s cannot reach %s before the attack: %s", round, ip, m.name, o)
			}
		}
		a.appendFailures(t, ip, 2)
		time.Sleep(20 * time.Millisecond)
		t0 := time.Now()
		a.appendFailures(t, ip, 1) // the line that bans
		var tA, tB time.Duration
		deadline := t0.Add(10 * time.Second)
		for (tA == 0 || tB == 0) && time.Now().Before(deadline) {
			if tA == 0 && dial(a, ip) == nstest.Refused {
				tA = time.Since(t0)
			}
			if tB == 0 && dial(b, ip) == nstest.Refused {
				tB = time.Since(t0)
			}
			time.Sleep(time.Millisecond)
		}
		if tA == 0 || tB == 0 {
			t.Fatalf("round %d: %s not refused within 10s (web1 %v, web2 %v)\nweb2 status: %+v", round, ip, tA, tB, b.fleetStatus(t))
		}
		poll.Until(t, 10*time.Second, "web3 refuses "+ip, func() bool { return dial(c, ip) == nstest.Refused })
		props, locals = append(props, tB), append(locals, tA)
	}
	slices.Sort(props)
	slices.Sort(locals)
	t.Logf("propagation, log line on web1 → refused on web2, %d rounds: median %v, max %v (web1 itself: median %v, max %v)",
		len(props), props[len(props)/2], props[len(props)-1], locals[len(locals)/2], locals[len(locals)-1])
	if f := os.Getenv("PALISADE_FLEET_E2E_OUT"); f != "" {
		_ = os.WriteFile(f, []byte(fmt.Sprintf("median %v max %v local_median %v local_max %v rounds %d\n",
			props[len(props)/2], props[len(props)-1], locals[len(locals)/2], locals[len(locals)-1], len(props))), 0o644)
	}

	// web2 shows where the ban comes from.
	out, code := b.cli(t, "explain", attackers[0])
	if code != 0 || !strings.Contains(out, "BANNED in fleet") || !strings.Contains(out, "fleet: web1 banned "+attackers[0]+"/32 in its jail sshd") {
		t.Fatalf("explain on web2: %d\n%s", code, out)
	}
	// The other members never republish web1's bans, and the stream holds
	// one record per attacker.
	if st := a.fleetStatus(t); st.Queue.Published != uint64(len(attackers)) {
		t.Errorf("web1 published %d records", st.Queue.Published)
	}
	for _, m := range []*member{b, c} {
		if st := m.fleetStatus(t); st.Queue.Published != 0 {
			t.Errorf("%s published %d records", m.name, st.Queue.Published)
		}
	}
	// An unban on web1 lifts the ban everywhere.
	if out, code := a.cli(t, "unban", "sshd", attackers[0]); code != 0 {
		t.Fatalf("unban: %d %s", code, out)
	}
	for _, m := range []*member{b, c} {
		poll.Until(t, 10*time.Second, m.name+" lifts the ban", func() bool { return dial(m, attackers[0]) == nstest.Connected })
	}
}

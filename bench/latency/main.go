// Command latency measures two promises of palisade's daemon against the
// real kernel, in network namespaces it creates and removes:
//
//  1. ban latency: the time from an sshd failure line being written to the
//     watched log until the attacker's next TCP connection to port 22 is
//     refused (maxretry = 1, one distinct attacker address per ban, all on
//     one client veth; the dialer binds the attacker's address);
//  2. restore: the daemon starting with N stored bans (written straight
//     into its database with internal/store): the time until systemd's
//     READY=1 (the kernel sets must then hold all N elements, checked), and
//     until a probe from one stored address is refused.
//
// It needs root. Run from the repository root:
//
//	go run ./bench/latency                          # nftables and iptables, 30 bans, 100,000 restored
//	go run ./bench/latency -backends nftables,iptables,ufw -bans 50
//	go run ./bench/latency -restore 0               # latency only
//
// Only documentation addresses are used (198.51.100.0/24, 192.0.2.0/24,
// 203.0.113.0/24, 2001:db8::/32).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/palisade-project/palisade/internal/firewall/nstest"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/palisade-project/palisade/internal/store"
)

func main() {
	bin := flag.String("bin", "", "palisade binary (default: build ./cmd/palisade into a temp dir)")
	backends := flag.String("backends", "nftables,iptables", "comma-separated firewall backends: nftables, iptables, ufw")
	bans := flag.Int("bans", 30, "bans measured for the latency (distinct attacker addresses, at most 200)")
	restore := flag.Int("restore", 100000, "stored bans for the restore measurement (0 = skip)")
	verbose := flag.Bool("v", false, "print the daemon's log of each restore start (timing breakdown)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "latency: needs root (network namespaces, firewall)")
		os.Exit(2)
	}
	if *bans < 1 || *bans > 200 {
		fmt.Fprintln(os.Stderr, "latency: -bans must be within 1..200")
		os.Exit(2)
	}
	if err := run(*bin, strings.Split(*backends, ","), *bans, *restore, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
}

type latencyResult struct {
	backend string
	lat     []time.Duration
	err     error
}

type restoreResult struct {
	backend         string
	n               int
	ready, enforced time.Duration
	fullAtReady     bool
	restarts        []restartResult
	firstLog        string
	daemonSays      string
	err             error
}

func run(bin string, backends []string, bans, restore int, verbose bool) error {
	work, err := os.MkdirTemp("", "palisade-latency-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if bin == "" {
		bin = filepath.Join(work, "palisade")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/palisade")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build: %v\n%s", err, out)
		}
	}
	var lats []latencyResult
	var rests []restoreResult
	for _, b := range backends {
		b = strings.TrimSpace(b)
		dir := filepath.Join(work, b)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "%s: ban latency over %d bans...\n", b, bans)
		lat, err := measureLatency(bin, b, filepath.Join(dir, "latency"), bans)
		lats = append(lats, latencyResult{b, lat, err})
		if restore > 0 && b != "ufw" {
			fmt.Fprintf(os.Stderr, "%s: restore of %d bans...\n", b, restore)
			r := measureRestore(bin, b, filepath.Join(dir, "restore"), restore)
			if verbose {
				fmt.Fprintf(os.Stderr, "%s: daemon log of the restore start:\n%s", b, r.firstLog)
			}
			rests = append(rests, r)
		}
	}
	fmt.Printf("\nban latency: failure line written -> attacker's connection refused (maxretry 1)\n")
	fmt.Printf("%-10s %5s %9s %9s %9s %9s %9s\n", "backend", "bans", "min", "median", "p90", "max", "mean")
	for _, r := range lats {
		if r.err != nil {
			fmt.Printf("%-10s error: %v\n", r.backend, r.err)
			continue
		}
		s := slices.Clone(r.lat)
		slices.Sort(s)
		var sum time.Duration
		for _, d := range s {
			sum += d
		}
		fmt.Printf("%-10s %5d %9s %9s %9s %9s %9s\n", r.backend, len(s), ms(s[0]), ms(s[len(s)/2]),
			ms(s[(len(s)*9)/10]), ms(s[len(s)-1]), ms(sum/time.Duration(len(s))))
	}
	if len(rests) > 0 {
		fmt.Printf("\nrestore: daemon start with stored bans (time from exec)\n")
		fmt.Printf("%-10s %8s %12s %14s %14s  %s\n", "backend", "bans", "READY=1", "probe refused", "all at READY", "daemon log")
		for _, r := range rests {
			if r.err != nil {
				fmt.Printf("%-10s error: %v\n", r.backend, r.err)
				continue
			}
			fmt.Printf("%-10s %8d %12s %14s %14v  %s\n", r.backend, r.n, ms(r.ready), ms(r.enforced), r.fullAtReady, r.daemonSays)
		}
		fmt.Printf("\nrestart with the stored bans in the kernel: probe from a banned address every ~1ms\n")
		fmt.Printf("%-10s %-12s %14s %8s %16s\n", "backend", "stopped by", "back in", "probes", "not refused")
		for _, r := range rests {
			for _, x := range r.restarts {
				fmt.Printf("%-10s %-12s %14s %8d %16d\n", r.backend, x.how, ms(x.took), x.probes, x.leaks)
			}
		}
	}
	return nil
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
}

// ---- namespaces ----

type namespace struct {
	name string
	h    netns.NsHandle
}

func newNamespace() (*namespace, error) {
	name, h, err := nstest.Create("palisade-b-")
	if err != nil {
		return nil, err
	}
	return &namespace{name: name, h: h}, nil
}

func (n *namespace) close() {
	n.h.Close()
	_ = netns.DeleteNamed(n.name)
	_ = os.RemoveAll(filepath.Join("/etc/netns", n.name))
}

// killAll kills every process left in the namespace.
func (n *namespace) killAll() {
	var want unix.Stat_t
	if unix.Fstat(int(n.h), &want) != nil {
		return
	}
	for range 50 {
		ents, _ := os.ReadDir("/proc")
		left := 0
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			var st unix.Stat_t
			if unix.Stat("/proc/"+e.Name()+"/ns/net", &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
				left++
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
		if left == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// link connects srv and cli with a veth pair and assigns the addresses.
func link(srv, cli *namespace, srvAddrs, cliAddrs []netip.Prefix) error {
	hs, err := netlink.NewHandleAt(srv.h)
	if err != nil {
		return err
	}
	defer hs.Close()
	hc, err := netlink.NewHandleAt(cli.h)
	if err != nil {
		return err
	}
	defer hc.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth-srv"}, PeerName: "veth-cli", PeerNamespace: netlink.NsFd(cli.h)}
	if err := hs.LinkAdd(veth); err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	for _, side := range []struct {
		h     *netlink.Handle
		name  string
		addrs []netip.Prefix
	}{{hs, "veth-srv", srvAddrs}, {hc, "veth-cli", cliAddrs}} {
		l, err := side.h.LinkByName(side.name)
		if err != nil {
			return err
		}
		for _, p := range side.addrs {
			ad := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
			if p.Addr().Is6() {
				ad.Flags = unix.IFA_F_NODAD
			}
			if err := side.h.AddrAdd(l, ad); err != nil {
				return fmt.Errorf("address %v: %w", p, err)
			}
		}
		if err := side.h.LinkSetUp(l); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ls, err1 := hs.LinkByName("veth-srv")
		lc, err2 := hc.LinkByName("veth-cli")
		if err1 == nil && err2 == nil && ls.Attrs().OperState == netlink.OperUp && lc.Attrs().OperState == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("veth did not come up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// listen starts a TCP server in the namespace that accepts and closes.
func listen(n *namespace, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNamespace(n, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln, nil
}

func inNamespace(n *namespace, fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(n.h); err != nil {
			ch <- err
			return // the thread, in an unknown namespace, ends with the goroutine
		}
		ch <- fn()
	}()
	return <-ch
}

// dialer is a goroutine locked into the client namespace that makes
// connections on request, so that each probe costs one connect only.
type dialer struct {
	req chan netip.Addr
	res chan outcome
	// lastErr is the error of the last probe that failed otherwise
	// (read only after dial returned).
	lastErr error
}

type outcome int

const (
	connected outcome = iota
	refused
	timedOut
	failed
)

func newDialer(n *namespace, to netip.AddrPort) (*dialer, error) {
	d := &dialer{req: make(chan netip.Addr), res: make(chan outcome)}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := netns.Set(n.h); err != nil {
			started <- err
			return
		}
		started <- nil
		for from := range d.req {
			nd := net.Dialer{Timeout: 200 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: from.AsSlice()}}
			c, err := nd.Dial("tcp", to.String())
			var ne net.Error
			switch {
			case err == nil:
				c.Close()
				d.res <- connected
			case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
				// A reset during connect: the reject rule arrived between
				// the SYN and the handshake's ACK; the address is blocked.
				d.res <- refused
			case errors.As(err, &ne) && ne.Timeout():
				d.res <- timedOut
			default:
				d.lastErr = err
				d.res <- failed
			}
		}
	}()
	return d, <-started
}

func (d *dialer) dial(from netip.Addr) outcome {
	d.req <- from
	return <-d.res
}

// ---- daemon ----

type daemonProc struct {
	cmd    *exec.Cmd
	done   chan struct{}
	out    string
	socket string
}

func writeConfig(etc, backend, logpath string, maxretry int) error {
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	pal := fmt.Sprintf("[Definition]\nloglevel = INFO\nlogtarget = STDERR\n\n[firewall]\nbackend = %s\n", backend)
	jail := fmt.Sprintf("[DEFAULT]\nignoreip = 127.0.0.1/8 ::1\n\n[sshd]\nenabled = true\nport = ssh\nfilter = sshd\nlogpath = %s\nmaxretry = %d\nfindtime = 10m\nbantime = 1h\n", logpath, maxretry)
	if err := os.WriteFile(filepath.Join(etc, "palisade.local"), []byte(pal), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(etc, "jail.local"), []byte(jail), 0o644)
}

func startDaemon(bin string, n *namespace, dir string, env []string) (*daemonProc, error) {
	d := &daemonProc{done: make(chan struct{}), out: filepath.Join(dir, "daemon.out"), socket: filepath.Join(dir, "run", "p.sock")}
	out, err := os.OpenFile(d.out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	d.cmd = exec.Command("ip", "netns", "exec", n.name, bin, "daemon", "--config-dir", filepath.Join(dir, "etc"),
		"--socket", d.socket, "--db", filepath.Join(dir, "lib", "p.db"))
	d.cmd.Stdout, d.cmd.Stderr = out, out
	d.cmd.Env = append(os.Environ(), env...)
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	return d, nil
}

// waitReady polls `palisade status` until it answers.
func (d *daemonProc) waitReady(bin string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return fmt.Errorf("daemon exited:\n%s", d.output())
		default:
		}
		if exec.Command(bin, "status", "--socket", d.socket).Run() == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("daemon not answering:\n%s", d.output())
}

func (d *daemonProc) output() string {
	b, _ := os.ReadFile(d.out)
	return string(b)
}

func (d *daemonProc) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// prepareUFW gives the namespace a private copy of /etc/ufw ("ip netns
// exec" bind-mounts /etc/netns/NAME/* over /etc) and enables ufw there.
func prepareUFW(n *namespace) error {
	dst := filepath.Join("/etc/netns", n.name, "ufw")
	err := filepath.WalkDir("/etc/ufw", func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("/etc/ufw", p)
		info, err := de.Info()
		if err != nil {
			return err
		}
		switch {
		case de.IsDir():
			return os.MkdirAll(filepath.Join(dst, rel), info.Mode().Perm())
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, rel), b, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, args := range [][]string{{"default", "allow", "incoming"}, {"--force", "enable"}} {
		if out, err := exec.Command("ip", append([]string{"netns", "exec", n.name, "ufw"}, args...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("ufw %v: %v\n%s", args, err, out)
		}
	}
	return nil
}

// ---- (a) ban latency ----

func measureLatency(bin, backend, dir string, bans int) (lat []time.Duration, err error) {
	srv, err := newNamespace()
	if err != nil {
		return nil, err
	}
	defer srv.close()
	defer srv.killAll()
	cli, err := newNamespace()
	if err != nil {
		return nil, err
	}
	defer cli.close()
	srvAddr := netip.MustParseAddr("198.51.100.1")
	cliAddrs := []netip.Prefix{netip.MustParsePrefix("198.51.100.2/24")}
	var attackers []netip.Addr
	for i := range bans {
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(20 + i)})
		attackers = append(attackers, a)
		cliAddrs = append(cliAddrs, netip.PrefixFrom(a, 32))
	}
	if err := link(srv, cli, []netip.Prefix{netip.PrefixFrom(srvAddr, 24)}, cliAddrs); err != nil {
		return nil, err
	}
	if backend == "ufw" {
		if err := prepareUFW(srv); err != nil {
			return nil, err
		}
	}
	ln, err := listen(srv, ":22")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	dl, err := newDialer(cli, netip.AddrPortFrom(srvAddr, 22))
	if err != nil {
		return nil, err
	}
	defer close(dl.req)

	logpath := filepath.Join(dir, "auth.log")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(logpath, nil, 0o640); err != nil {
		return nil, err
	}
	if err := writeConfig(filepath.Join(dir, "etc"), backend, logpath, 1); err != nil {
		return nil, err
	}
	d, err := startDaemon(bin, srv, dir, nil)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	if err := d.waitReady(bin); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logpath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	for i, a := range attackers {
		// Every attacker gets in first (this also resolves neighbours).
		ok := false
		for range 100 {
			if dl.dial(a) == connected {
				ok = true
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if !ok {
			return lat, fmt.Errorf("attacker %s cannot connect before its ban", a)
		}
		line := fmt.Sprintf("%s bench sshd[%d]: Failed password for root from %s port %d ssh2\n",
			time.Now().Format(time.Stamp), 4000+i, a, 40000+i)
		t0 := time.Now()
		if _, err := logf.WriteString(line); err != nil {
			return lat, err
		}
		var got outcome
		for time.Since(t0) < 10*time.Second {
			if got = dl.dial(a); got != connected {
				break
			}
			time.Sleep(500 * time.Microsecond)
		}
		if got != refused {
			return lat, fmt.Errorf("attacker %s: outcome %d (%v) after %v (want refused)\n%s", a, got, dl.lastErr, time.Since(t0), d.output())
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, nil
}

// ---- (b) restore ----

// restoreAddrs are n distinct documentation addresses: first the IPv4
// ones but the restore server's, then IPv6 addresses in 2001:db8::/32.
func restoreAddrs(n int) []netip.Prefix {
	var out []netip.Prefix
	for _, net3 := range [][3]byte{{198, 51, 100}, {203, 0, 113}, {192, 0, 2}} {
		for h := 1; h <= 254 && len(out) < n; h++ {
			a := netip.AddrFrom4([4]byte{net3[0], net3[1], net3[2], byte(h)})
			if a != restoreServer() {
				out = append(out, netip.PrefixFrom(a, 32))
			}
		}
	}
	for i := 0; len(out) < n; i++ {
		var b [16]byte
		copy(b[:], []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x42})
		k := i + 1
		b[12], b[13], b[14], b[15] = byte(k>>24), byte(k>>16), byte(k>>8), byte(k)
		out = append(out, netip.PrefixFrom(netip.AddrFrom16(b), 128))
	}
	return out
}

// The restore measurement's server address, and the stored (banned)
// address its probe connects from.
func restoreServer() netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, 254}) }
func restoreProbe() netip.Addr  { return netip.AddrFrom4([4]byte{198, 51, 100, 1}) }

func measureRestore(bin, backend, dir string, n int) (r restoreResult) {
	r = restoreResult{backend: backend, n: n}
	fail := func(err error) restoreResult { r.err = err; return r }
	if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o700); err != nil {
		return fail(err)
	}
	st, err := store.Open(filepath.Join(dir, "lib", "p.db"), store.Options{NoSync: true})
	if err != nil {
		return fail(err)
	}
	now := time.Now()
	var bans []store.Ban
	for _, p := range restoreAddrs(n) {
		bans = append(bans, store.Ban{Jail: "sshd", Prefix: p, Start: now, Expires: now.Add(time.Hour), Reason: "bench"})
	}
	err = st.AddBans(bans)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(fmt.Errorf("write %d bans: %w", n, err))
	}
	logpath := filepath.Join(dir, "auth.log")
	if err := os.WriteFile(logpath, nil, 0o640); err != nil {
		return fail(err)
	}
	if err := writeConfig(filepath.Join(dir, "etc"), backend, logpath, 3); err != nil {
		return fail(err)
	}
	srv, err := newNamespace()
	if err != nil {
		return fail(err)
	}
	defer srv.close()
	defer srv.killAll()
	cli, err := newNamespace()
	if err != nil {
		return fail(err)
	}
	defer cli.close()
	if err := link(srv, cli, []netip.Prefix{netip.PrefixFrom(restoreServer(), 24)}, []netip.Prefix{netip.PrefixFrom(restoreProbe(), 24)}); err != nil {
		return fail(err)
	}
	ln, err := listen(srv, ":22")
	if err != nil {
		return fail(err)
	}
	defer ln.Close()
	dl, err := newDialer(cli, netip.AddrPortFrom(restoreServer(), 22))
	if err != nil {
		return fail(err)
	}
	defer close(dl.req)
	ok := false
	for range 100 {
		if dl.dial(restoreProbe()) == connected {
			ok = true
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !ok {
		return fail(errors.New("probe cannot connect before the daemon starts"))
	}

	// READY=1 arrives on our notification socket (sd_notify protocol).
	sockPath := filepath.Join(dir, "notify.sock")
	ns, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		return fail(err)
	}
	defer ns.Close()
	ready := make(chan time.Time, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			k, _, err := ns.ReadFromUnix(buf)
			if err != nil {
				return
			}
			if slices.Contains(strings.Split(string(buf[:k]), "\n"), "READY=1") {
				ready <- time.Now()
				return
			}
		}
	}()

	t0 := time.Now()
	d, err := startDaemon(bin, srv, dir, []string{"NOTIFY_SOCKET=" + sockPath})
	if err != nil {
		return fail(err)
	}
	defer func() { d.stop() }()
	var readyAt, refusedAt time.Time
	deadline := t0.Add(60 * time.Second)
	for (readyAt.IsZero() || refusedAt.IsZero()) && time.Now().Before(deadline) {
		select {
		case readyAt = <-ready:
			// Everything must be in the kernel once READY is sent.
			if c, err := kernelCounter(backend, srv)(); err != nil || c != n {
				return fail(fmt.Errorf("at READY the kernel holds %d of %d bans (%v)", c, n, err))
			}
			r.fullAtReady = true
		case <-d.done:
			return fail(fmt.Errorf("daemon exited:\n%s", d.output()))
		default:
		}
		if refusedAt.IsZero() && dl.dial(restoreProbe()) == refused {
			refusedAt = time.Now()
		}
		time.Sleep(time.Millisecond)
	}
	if readyAt.IsZero() || refusedAt.IsZero() {
		return fail(fmt.Errorf("not ready or probe not refused within 60s:\n%s", d.output()))
	}
	r.ready, r.enforced = readyAt.Sub(t0), refusedAt.Sub(t0)
	r.firstLog = fmt.Sprintf("(exec at %s)\n%s", t0.Format("15:04:05.000"), d.output())
	sc := bufio.NewScanner(strings.NewReader(d.output()))
	for sc.Scan() {
		if i := strings.Index(sc.Text(), "bans restored"); i >= 0 {
			r.daemonSays = sc.Text()[i:]
		}
	}

	// Restarts with the bans in the kernel: the probe (a stored address)
	// connects every millisecond through a SIGTERM restart and a kill -9
	// restart and must be refused every time.
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		probes, leaks := 0, 0
		quit, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-quit:
					return
				default:
				}
				probes++
				if dl.dial(restoreProbe()) != refused {
					leaks++
				}
				time.Sleep(time.Millisecond)
			}
		}()
		t1 := time.Now()
		_ = d.cmd.Process.Signal(sig)
		<-d.done
		d, err = startDaemon(bin, srv, dir, nil)
		if err == nil {
			err = d.waitReady(bin)
		}
		took := time.Since(t1)
		close(quit)
		<-done
		if err != nil {
			return fail(err)
		}
		r.restarts = append(r.restarts, restartResult{how: sig.String(), took: took, probes: probes, leaks: leaks})
	}
	return r
}

// restartResult is one restart under probing.
type restartResult struct {
	how           string
	took          time.Duration // signal sent -> new daemon answering
	probes, leaks int
}

// kernelCounter counts the elements of the sshd jail's sets in the
// namespace's kernel.
func kernelCounter(backend string, n *namespace) func() (int, error) {
	switch backend {
	case "nftables":
		return func() (int, error) {
			c, err := nftables.New(nftables.WithNetNSFd(int(n.h)))
			if err != nil {
				return 0, err
			}
			t := &nftables.Table{Name: "palisade", Family: nftables.TableFamilyINet}
			total := 0
			for _, name := range []string{"sshd_a4", "sshd_a6"} {
				s, err := c.GetSetByName(t, name)
				if err != nil {
					return 0, err
				}
				els, err := c.GetSetElements(s)
				if err != nil {
					return 0, err
				}
				total += len(els)
			}
			return total, nil
		}
	default: // iptables + ipset
		return func() (int, error) {
			total := 0
			for _, set := range []string{"pal_sshd_4", "pal_sshd_6"} {
				out, err := exec.Command("ip", "netns", "exec", n.name, "ipset", "list", "-t", set).Output()
				if err != nil {
					return 0, err
				}
				for _, l := range strings.Split(string(out), "\n") {
					if v, ok := strings.CutPrefix(l, "Number of entries: "); ok {
						k, _ := strconv.Atoi(strings.TrimSpace(v))
						total += k
					}
				}
			}
			return total, nil
		}
	}
}

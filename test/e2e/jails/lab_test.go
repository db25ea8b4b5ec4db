package jails

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/palisade-project/palisade/internal/firewall/nstest"
)

// Addresses of the lab (documentation ranges only). Each client namespace
// has its own veth to the server namespace and its own subnet.
const (
	srvAdminSide = "203.0.113.1"
	adminIP      = "203.0.113.10"
	srv4Side     = "198.51.100.1"
	att4IP       = "198.51.100.10"
	srv6Side     = "2001:db8::1"
	att6IP       = "2001:db8::10"
)

// lab is the server namespace and its three clients.
type lab struct {
	srv, admin, att4, att6 *nstest.NS
}

// newLab builds the namespaces and links; extra4 and extra6 are further
// addresses given to the IPv4 and IPv6 attacker namespaces (sources of
// crafted logins, and the addresses those logins try to get banned).
func newLab(t *testing.T, extra4, extra6 []string) *lab {
	t.Helper()
	l := &lab{srv: nstest.New(t), admin: nstest.New(t), att4: nstest.New(t), att6: nstest.New(t)}
	// Runs before the namespaces are deleted: nothing started in them
	// outlives the test, even when a step failed half-way.
	t.Cleanup(func() {
		for _, ns := range []*nstest.NS{l.srv, l.admin, l.att4, l.att6} {
			killAll(t, ns)
		}
	})
	link(t, l.srv, l.admin, "to-admin", srvAdminSide+"/24", []string{adminIP + "/24"})
	a4 := []string{att4IP + "/24"}
	for _, a := range extra4 {
		a4 = append(a4, a+"/24")
	}
	link(t, l.srv, l.att4, "to-att4", srv4Side+"/24", a4)
	a6 := []string{att6IP + "/64"}
	for _, a := range extra6 {
		a6 = append(a6, a+"/64")
	}
	link(t, l.srv, l.att6, "to-att6", srv6Side+"/64", a6)
	return l
}

// link connects srv (interface srvIf) and cli (interface eth0) with a veth
// pair, assigns the addresses and waits until every client address reaches
// the server address (a TCP probe answered by a reset).
func link(t *testing.T, srv, cli *nstest.NS, srvIf, srvAddr string, cliAddrs []string) {
	t.Helper()
	hs, err := netlink.NewHandleAt(srv.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	hc, err := netlink.NewHandleAt(cli.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: srvIf}, PeerName: "eth0", PeerNamespace: netlink.NsFd(cli.Handle)}
	if err := hs.LinkAdd(veth); err != nil {
		t.Fatalf("veth %s: %v", srvIf, err)
	}
	sides := []struct {
		h     *netlink.Handle
		name  string
		addrs []string
	}{{hs, srvIf, []string{srvAddr}}, {hc, "eth0", cliAddrs}}
	for _, s := range sides {
		lk, err := s.h.LinkByName(s.name)
		if err != nil {
			t.Fatalf("find %s: %v", s.name, err)
		}
		for _, a := range s.addrs {
			p := netip.MustParsePrefix(a)
			ad := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
			if p.Addr().Is6() {
				ad.Flags = unix.IFA_F_NODAD
			}
			if err := s.h.AddrAdd(lk, ad); err != nil {
				t.Fatalf("address %s on %s: %v", a, s.name, err)
			}
		}
		if err := s.h.LinkSetUp(lk); err != nil {
			t.Fatalf("%s up: %v", s.name, err)
		}
	}
	nstest.Eventually(t, 10*time.Second, "veth "+srvIf+" up", func() error {
		for _, s := range sides {
			lk, err := s.h.LinkByName(s.name)
			if err != nil {
				return err
			}
			if st := lk.Attrs().OperState; st != netlink.OperUp {
				return fmt.Errorf("%s is %v", s.name, st)
			}
		}
		return nil
	})
	to := netip.AddrPortFrom(netip.MustParsePrefix(srvAddr).Addr(), 9)
	for _, a := range cliAddrs {
		from := netip.MustParsePrefix(a).Addr()
		nstest.Eventually(t, 10*time.Second, fmt.Sprintf("%s reaches %s", from, to), func() error {
			o, err := dialFrom(cli, from, to, 200*time.Millisecond)
			if err != nil {
				return err
			}
			if o != nstest.Refused {
				return fmt.Errorf("probe of a closed port: %s", o)
			}
			return nil
		})
	}
}

// reset is the outcome of a connection reset during the handshake.
const reset nstest.Outcome = "reset"

// dialFrom tries one TCP connection from local (an address of ns) to
// remote and classifies the result.
func dialFrom(ns *nstest.NS, local netip.Addr, remote netip.AddrPort, timeout time.Duration) (nstest.Outcome, error) {
	var out nstest.Outcome
	err := ns.Do(func() error {
		d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: local.AsSlice()}}
		c, err := d.Dial("tcp", remote.String())
		switch {
		case err == nil:
			c.Close()
			out = nstest.Connected
			return nil
		case errors.Is(err, syscall.ECONNREFUSED):
			out = nstest.Refused
			return nil
		case errors.Is(err, syscall.ECONNRESET):
			// The handshake was cut: a reject rule arrived between the
			// SYN and the ACK.
			out = reset
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			out = nstest.TimedOut
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			out = nstest.TimedOut
			return nil
		}
		return err
	})
	return out, err
}

// sshPort is the server's port 22 on the address facing from.
func sshPort(from string) netip.AddrPort {
	a := netip.MustParseAddr(from)
	switch {
	case a.Is6():
		return netip.AddrPortFrom(netip.MustParseAddr(srv6Side), 22)
	case netip.MustParsePrefix("203.0.113.0/24").Contains(a):
		return netip.AddrPortFrom(netip.MustParseAddr(srvAdminSide), 22)
	}
	return netip.AddrPortFrom(netip.MustParseAddr(srv4Side), 22)
}

// nsOf is the client namespace owning address a.
func (l *lab) nsOf(a string) *nstest.NS {
	ad := netip.MustParseAddr(a)
	switch {
	case ad.Is6():
		return l.att6
	case netip.MustParsePrefix("203.0.113.0/24").Contains(ad):
		return l.admin
	}
	return l.att4
}

// reach tries one TCP connection to the server's port 22 from address a.
func (l *lab) reach(t *testing.T, a string) nstest.Outcome {
	t.Helper()
	o, err := dialFrom(l.nsOf(a), netip.MustParseAddr(a), sshPort(a), time.Second)
	if err != nil {
		t.Fatalf("connect from %s: %v", a, err)
	}
	return o
}

// waitReach waits (bounded) until a connection from a has outcome want.
func (l *lab) waitReach(t *testing.T, a string, want nstest.Outcome, within time.Duration) {
	t.Helper()
	nstest.Eventually(t, within, fmt.Sprintf("connection from %s %s", a, want), func() error {
		if o := l.reach(t, a); o != want {
			return fmt.Errorf("got %s", o)
		}
		return nil
	})
}

// killAll kills every process whose network namespace is ns (the test
// created ns, so every such process was started by the test).
func killAll(t *testing.T, ns *nstest.NS) {
	t.Helper()
	var want unix.Stat_t
	if err := unix.Fstat(ns.Fd(), &want); err != nil {
		t.Errorf("stat %s: %v", ns.Name, err)
		return
	}
	for range 50 {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			t.Errorf("read /proc: %v", err)
			return
		}
		var left []int
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			var st unix.Stat_t
			if unix.Stat("/proc/"+e.Name()+"/ns/net", &st) != nil || st.Dev != want.Dev || st.Ino != want.Ino {
				continue
			}
			left = append(left, pid)
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		if len(left) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("processes in %s survive SIGKILL", ns.Name)
}

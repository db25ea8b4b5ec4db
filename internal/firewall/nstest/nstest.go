// Package nstest gives kernel tests of the firewall backends a fresh network
// namespace each, veth links between namespaces, and TCP probes. It is used
// only from tests; every namespace, link and listener it creates is removed
// through t.Cleanup.
package nstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/palisade-project/palisade/internal/sysexec"
)

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root to create network namespaces")
	}
}

// RequireProgram skips the test unless the named programs are installed.
func RequireProgram(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("kernel test: %s is not installed", n)
		}
	}
}

// NS is a named network namespace (visible to "ip netns exec NAME").
type NS struct {
	Name   string
	Handle netns.NsHandle
}

// Fd is the namespace file descriptor, for netlink options.
func (n *NS) Fd() int { return int(n.Handle) }

// New creates a fresh named network namespace with loopback up; it is
// deleted when the test ends.
func New(t testing.TB) *NS {
	t.Helper()
	RequireRoot(t)
	name, h, err := Create("palisade-t-")
	if err != nil {
		t.Fatal(err)
	}
	ns := &NS{Name: name, Handle: h}
	t.Cleanup(func() {
		ns.Handle.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete network namespace %s: %v", name, err)
		}
	})
	return ns
}

// Create makes a new named network namespace (prefix plus a random suffix)
// with loopback up, for callers without a testing.TB (benchmark programs).
// The caller closes the handle and deletes the namespace by name.
func Create(prefix string) (string, netns.NsHandle, error) {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := prefix + hex.EncodeToString(rnd[:])
	type result struct {
		h   netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			ch <- result{err: err}
			runtime.UnlockOSThread()
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if rerr := netns.Set(orig); rerr == nil {
			runtime.UnlockOSThread()
		} // else the goroutine ends with the thread locked: Go discards it
		ch <- result{h, err}
	}()
	r := <-ch
	if r.err != nil {
		return "", 0, fmt.Errorf("create network namespace %s: %w", name, r.err)
	}
	fail := func(err error) (string, netns.NsHandle, error) {
		r.h.Close()
		_ = netns.DeleteNamed(name)
		return "", 0, fmt.Errorf("loopback up in %s: %w", name, err)
	}
	h, err := netlink.NewHandleAt(r.h)
	if err != nil {
		return fail(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fail(err)
	}
	return name, r.h, nil
}

// Do runs fn on an OS thread switched into the namespace. Sockets created
// by fn stay in the namespace after Do returns.
func (n *NS) Do(fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(n.Handle); err != nil {
			runtime.UnlockOSThread()
			ch <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		ch <- ferr
	}()
	return <-ch
}

// Link connects two namespaces with a veth pair and assigns addresses
// (prefixes such as 192.0.2.1/24 or 2001:db8::1/64) on each side. IPv6
// addresses skip duplicate address detection so they work at once.
func Link(t testing.TB, a, b *NS, addrA, addrB []netip.Prefix) {
	t.Helper()
	ha, err := netlink.NewHandleAt(a.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer ha.Close()
	hb, err := netlink.NewHandleAt(b.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: "veth-a"},
		PeerName:      "veth-b",
		PeerNamespace: netlink.NsFd(b.Handle),
	}
	if err := ha.LinkAdd(veth); err != nil {
		t.Fatalf("create veth: %v", err)
	}
	for _, side := range []struct {
		h     *netlink.Handle
		name  string
		addrs []netip.Prefix
	}{{ha, "veth-a", addrA}, {hb, "veth-b", addrB}} {
		l, err := side.h.LinkByName(side.name)
		if err != nil {
			t.Fatalf("find %s: %v", side.name, err)
		}
		for _, p := range side.addrs {
			ad := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
			if p.Addr().Is6() {
				ad.Flags = unix.IFA_F_NODAD
			}
			if err := side.h.AddrAdd(l, ad); err != nil {
				t.Fatalf("address %v on %s: %v", p, side.name, err)
			}
		}
		if err := side.h.LinkSetUp(l); err != nil {
			t.Fatalf("%s up: %v", side.name, err)
		}
	}
	// Packets sent before both ends report carrier are lost, and a lost
	// SYN costs a one-second retransmission: wait for the link first.
	Eventually(t, 10*time.Second, "veth link up", func() error {
		for _, side := range []struct {
			h    *netlink.Handle
			name string
		}{{ha, "veth-a"}, {hb, "veth-b"}} {
			l, err := side.h.LinkByName(side.name)
			if err != nil {
				return err
			}
			if st := l.Attrs().OperState; st != netlink.OperUp {
				return fmt.Errorf("%s is %v", side.name, st)
			}
		}
		return nil
	})
	// Then until each side answers a TCP probe to a closed port (an RST
	// proves the path and neighbour resolution both ways).
	probe := func(from *NS, to []netip.Prefix) {
		for _, p := range to {
			addr := net.JoinHostPort(p.Addr().String(), "9")
			Eventually(t, 10*time.Second, "reach "+addr, func() error {
				o, err := Dial(from, addr, 200*time.Millisecond)
				if err != nil {
					return err
				}
				if o == TimedOut {
					return fmt.Errorf("no answer from %s", addr)
				}
				return nil
			})
		}
	}
	probe(b, addrA)
	probe(a, addrB)
}

// Listen starts a TCP server in the namespace that accepts and closes
// connections; it stops when the test ends.
func Listen(t testing.TB, n *NS, addr string) {
	t.Helper()
	var ln net.Listener
	if err := n.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, n.Name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
}

// Outcome of a connection attempt.
type Outcome string

// Outcomes.
const (
	Connected Outcome = "connected"
	Refused   Outcome = "refused"  // RST or ICMP port unreachable
	TimedOut  Outcome = "timedout" // dropped
)

// Dial tries a TCP connection from the namespace and classifies the result.
func Dial(n *NS, addr string, timeout time.Duration) (Outcome, error) {
	return DialFrom(n, netip.Addr{}, addr, timeout)
}

// DialFrom is Dial from the source address src (any when invalid).
func DialFrom(n *NS, src netip.Addr, addr string, timeout time.Duration) (Outcome, error) {
	c, out, err := Open(n, src, addr, timeout)
	if c != nil {
		c.Close()
	}
	return out, err
}

// Runner runs programs inside a namespace through "ip netns exec NAME".
type Runner struct {
	NS    *NS
	Inner sysexec.Runner
}

// Run implements sysexec.Runner.
func (r Runner) Run(ctx context.Context, c sysexec.Cmd) (sysexec.Result, error) {
	c.Args = append([]string{"netns", "exec", r.NS.Name, c.Name}, c.Args...)
	c.Name = "ip"
	return r.Inner.Run(ctx, c)
}

// Eventually polls cond every 50ms until it returns nil or the deadline
// passes, then fails the test with the last error.
func Eventually(t testing.TB, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %v: %v", what, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// String is for messages.
func (n *NS) String() string { return fmt.Sprintf("netns %s", n.Name) }

package nstest

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// classify turns a dial error into an Outcome (err nil: connected); it
// returns the error when it is none of them.
func classify(err error) (Outcome, error) {
	switch {
	case err == nil:
		return Connected, nil
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused, nil
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		// A ban that lands during the handshake: the SYN passed, the
		// firewall's reset answers the rest (connect reports EPIPE or
		// ECONNRESET). In a test's namespaces only a firewall resets.
		return Refused, nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return TimedOut, nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return TimedOut, nil
	}
	return "", err
}

// Open tries a TCP connection from the namespace, from the local address
// when it is valid, and keeps it open when it succeeds: the caller closes
// the returned connection (nil unless Connected).
func Open(n *NS, local netip.Addr, addr string, timeout time.Duration) (net.Conn, Outcome, error) {
	var c net.Conn
	var out Outcome
	err := n.Do(func() error {
		d := net.Dialer{Timeout: timeout}
		if local.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
		}
		var err error
		c, err = d.Dial("tcp", addr)
		out, err = classify(err)
		return err
	})
	return c, out, err
}

// ListenHold starts a TCP server in the namespace that keeps every
// connection open until the client closes it (for concurrency limits); it
// stops, closing what is open, when the test ends.
func ListenHold(t testing.TB, n *NS, addr string) {
	t.Helper()
	var ln net.Listener
	if err := n.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, n.Name, err)
	}
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 512)
				for {
					if _, err := c.Read(buf); err != nil {
						break
					}
				}
				c.Close()
				mu.Lock()
				delete(open, c)
				mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

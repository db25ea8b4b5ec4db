// Package ports decides whether a TCP port is fit for a service (range,
// listeners, /etc/services), opens and closes ports in the firewall for the
// hardening commands (palisade's own nftables table, or ufw when ufw is
// active), and moves a jail's port in jail.local with a minimal text edit.
package ports

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/harden/fsx"
)

// The range a hardening guide recommends for a service's new port.
const (
	MinPort = 1024
	MaxPort = 65535
)

// Problem codes.
const (
	CodeRange     = "range"     // outside MinPort..MaxPort
	CodeListening = "listening" // something listens on it
	CodeServices  = "services"  // a well-known service in /etc/services
)

// Problem is one reason a port is not usable.
type Problem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Forceable problems are overridden by --force.
	Forceable bool `json:"forceable"`
}

// Check is the verdict on one port.
type Check struct {
	Port     int       `json:"port"`
	Usable   bool      `json:"usable"`
	Problems []Problem `json:"problems,omitempty"`
	// Services names the /etc/services entries for the port.
	Services []string `json:"services,omitempty"`
	// Listening lists the sockets found listening ("tcp 0.0.0.0:22").
	Listening []string `json:"listening,omitempty"`
}

// Blocking returns the problems --force does not override (all when force
// is false).
func (c *Check) Blocking(force bool) []Problem {
	var out []Problem
	for _, p := range c.Problems {
		if !force || !p.Forceable {
			out = append(out, p)
		}
	}
	return out
}

// Error renders the blocking problems as one error, or nil.
func (c *Check) Error(force bool) error {
	b := c.Blocking(force)
	if len(b) == 0 {
		return nil
	}
	var msgs []string
	for _, p := range b {
		m := p.Message
		if p.Forceable {
			m += " (use --force to use it anyway)"
		}
		msgs = append(msgs, m)
	}
	return fmt.Errorf("port %d cannot be used: %s", c.Port, strings.Join(msgs, "; "))
}

// Checker examines ports on the host (or under a --root).
type Checker struct {
	Root string
	// Ignore lists ports that are fine although in use (the service's own
	// current port is not a reason to refuse keeping it).
	Ignore []int
}

// Check examines port.
func (k *Checker) Check(port int) *Check {
	c := &Check{Port: port}
	if port < MinPort || port > MaxPort {
		c.Problems = append(c.Problems, Problem{Code: CodeRange, Message: fmt.Sprintf("%d is outside %d-%d (ports below 1024 are reserved for system services)", port, MinPort, MaxPort)})
	}
	if port >= 1 && port <= 65535 && !slices.Contains(k.Ignore, port) {
		c.Listening = k.listening(port)
		if len(c.Listening) > 0 {
			c.Problems = append(c.Problems, Problem{Code: CodeListening, Message: "already in use: " + strings.Join(c.Listening, ", ")})
		}
	}
	if svc, err := firewall.LoadServices(fsx.Path(k.Root, "/etc/services")); err == nil {
		var names []string
		for key, p := range svc {
			name, proto, _ := strings.Cut(key, "/")
			if int(p) == port && (proto == "tcp" || proto == "udp") {
				names = append(names, name+"/"+proto)
			}
		}
		slices.Sort(names)
		c.Services = names
		if len(names) > 0 {
			c.Problems = append(c.Problems, Problem{Code: CodeServices, Forceable: true,
				Message: "listed in /etc/services as " + strings.Join(names, ", ") + " (scanners probe well-known ports, and the service may be installed later)"})
		}
	}
	c.Usable = len(c.Problems) == 0
	return c
}

// listening reports sockets listening on port: from /proc/net/tcp and
// tcp6 under the root when present, otherwise by trying to bind the port.
func (k *Checker) listening(port int) []string {
	var out []string
	found := false
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := fsx.ReadFile(fsx.Path(k.Root, f))
		if err != nil {
			continue
		}
		found = true
		out = append(out, ParseListeners(data, port)...)
	}
	if found {
		return out
	}
	for _, nw := range []string{"tcp4", "tcp6"} {
		ln, err := net.Listen(nw, net.JoinHostPort("", strconv.Itoa(port)))
		if err == nil {
			ln.Close()
			continue
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			out = append(out, nw+" port "+strconv.Itoa(port)+" (bind: address in use)")
		}
	}
	return out
}

// ParseListeners returns the listening sockets on port in /proc/net/tcp or
// tcp6 text ("tcp 0.0.0.0:22").
func ParseListeners(data []byte, port int) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[3] != "0A" { // TCP_LISTEN
			continue
		}
		hexAddr, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil || int(p) != port {
			continue
		}
		out = append(out, "tcp "+net.JoinHostPort(procAddr(hexAddr), strconv.Itoa(port)))
	}
	return out
}

// procAddr decodes /proc/net/tcp's address (32-bit words in host order,
// little-endian here).
func procAddr(h string) string {
	b := make([]byte, len(h)/2)
	for i := range b {
		v, err := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		if err != nil {
			return h
		}
		b[i] = byte(v)
	}
	if len(b) != 4 && len(b) != 16 {
		return h
	}
	for w := 0; w+4 <= len(b); w += 4 {
		b[w], b[w+1], b[w+2], b[w+3] = b[w+3], b[w+2], b[w+1], b[w]
	}
	return net.IP(b).String()
}

package policyctl

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/palisade-project/palisade/internal/firewall/policy"
	"github.com/palisade-project/palisade/internal/harden/fsx"
	"github.com/palisade-project/palisade/internal/harden/sshd"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// Protector finds what a firewall change must keep reachable: every port
// sshd listens on (sshd -T, and ssh.socket's ListenStream when systemd
// starts sshd through it), from anybody, from the address of the SSH
// session running the command, and from every ignoreip network.
type Protector struct {
	Root   string
	Runner sysexec.Runner
	// Getenv reads SSH_CONNECTION (os.Getenv).
	Getenv func(string) string
	// IgnoreIP returns the jails' ignoreip networks.
	IgnoreIP func() ([]netip.Prefix, error)
	// Proc is /proc, where the session's address is looked up in the
	// environment of the command's ancestors when sudo dropped
	// SSH_CONNECTION ("" skips that; only on the real host).
	Proc string
}

// Endpoints implements Controller.Protect.
func (p *Protector) Endpoints(ctx context.Context) ([]policy.Endpoint, []string) {
	var warns []string
	ports, err := p.sshPorts(ctx)
	if err != nil {
		warns = append(warns, fmt.Sprintf("could not read sshd's ports (%v): protecting port 22", err))
	}
	if len(ports) == 0 {
		ports = []int{22}
	}
	var eps []policy.Endpoint
	add := func(ep policy.Endpoint) {
		if !slices.ContainsFunc(eps, func(e policy.Endpoint) bool { return e.Source == ep.Source && e.Port == ep.Port }) {
			eps = append(eps, ep)
		}
	}
	for _, port := range ports {
		add(policy.Endpoint{Port: uint16(port), Why: fmt.Sprintf("sshd port %d", port)})
	}
	if a, port, ok := p.session(); ok {
		src := netip.PrefixFrom(a, a.BitLen())
		if port > 0 {
			add(policy.Endpoint{Source: src, Port: port, Why: "your SSH session from " + a.String()})
		}
		for _, sp := range ports {
			add(policy.Endpoint{Source: src, Port: uint16(sp), Why: "your SSH session from " + a.String()})
		}
	}
	if p.IgnoreIP != nil {
		nets, err := p.IgnoreIP()
		if err != nil {
			warns = append(warns, fmt.Sprintf("could not read ignoreip (%v): not protected", err))
		}
		for _, n := range nets {
			if n.Addr().IsLoopback() {
				continue // loopback is always allowed
			}
			for _, sp := range ports {
				add(policy.Endpoint{Source: n, Port: uint16(sp), Why: "ignoreip " + n.String()})
			}
		}
	}
	return eps, warns
}

func (p *Protector) sshPorts(ctx context.Context) ([]int, error) {
	var out []int
	var errs []string
	if p.Runner != nil {
		eff, err := sshd.NewDaemon(p.Runner, p.Root).Effective(ctx, nil)
		if err != nil {
			errs = append(errs, err.Error())
		} else {
			out = sshd.Ports(eff)
		}
	}
	for _, port := range p.socketPorts(ctx) {
		if !slices.Contains(out, port) {
			out = append(out, port)
		}
	}
	if len(errs) > 0 && len(out) == 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	slices.Sort(out)
	return out, nil
}

// socketPorts reads ssh.socket's ListenStream ports: from systemd on the
// real host, from the unit files (and drop-ins) under a --root.
func (p *Protector) socketPorts(ctx context.Context) []int {
	if p.Root == "" || p.Root == "/" {
		if p.Runner == nil {
			return nil
		}
		if _, err := p.Runner.Run(ctx, sysexec.Cmd{Name: "systemctl", Args: []string{"is-active", "--quiet", "ssh.socket"}}); err != nil {
			return nil
		}
		res, err := p.Runner.Run(ctx, sysexec.Cmd{Name: "systemctl", Args: []string{"show", "ssh.socket", "--property=Listen", "--value"}})
		if err != nil {
			return nil
		}
		var out []int
		for _, f := range strings.Fields(string(res.Stdout)) {
			if port := listenPort(f); port > 0 {
				out = append(out, port)
			}
		}
		return out
	}
	if !sshd.SocketActivated(p.Root) {
		return nil
	}
	var lines []string
	for _, unit := range []string{"/lib/systemd/system/ssh.socket", "/usr/lib/systemd/system/ssh.socket", "/etc/systemd/system/ssh.socket"} {
		if data, err := fsx.ReadFile(fsx.Path(p.Root, unit)); err == nil {
			lines = append(lines, strings.Split(string(data), "\n")...)
			break
		}
	}
	dropins, _ := filepath.Glob(fsx.Path(p.Root, "/etc/systemd/system/ssh.socket.d/*.conf"))
	slices.Sort(dropins)
	for _, d := range dropins {
		if data, err := fsx.ReadFile(d); err == nil {
			lines = append(lines, strings.Split(string(data), "\n")...)
		}
	}
	var out []int
	for _, l := range lines {
		v, ok := strings.CutPrefix(strings.TrimSpace(l), "ListenStream=")
		if !ok {
			continue
		}
		if v == "" {
			out = nil // an empty assignment resets the list
			continue
		}
		if port := listenPort(v); port > 0 {
			out = append(out, port)
		}
	}
	return out
}

// listenPort reads the port of a ListenStream value: "22", "0.0.0.0:22",
// "[::]:2222".
func listenPort(v string) int {
	if i := strings.LastIndexByte(v, ':'); i >= 0 {
		v = v[i+1:]
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535 {
		return 0
	}
	return n
}

// session returns the client address and server port of the SSH session
// the command runs in: SSH_CONNECTION, else (sudo resets the environment)
// the nearest ancestor process that has it.
func (p *Protector) session() (netip.Addr, uint16, bool) {
	getenv := p.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if a, port, ok := ParseSSHConnection(getenv("SSH_CONNECTION")); ok {
		return a, port, true
	}
	if p.Proc == "" {
		return netip.Addr{}, 0, false
	}
	pid := os.Getppid()
	for i := 0; i < 32 && pid > 1; i++ {
		env, err := os.ReadFile(filepath.Join(p.Proc, strconv.Itoa(pid), "environ"))
		if err == nil {
			for _, kv := range bytes.Split(env, []byte{0}) {
				if v, ok := bytes.CutPrefix(kv, []byte("SSH_CONNECTION=")); ok {
					if a, port, ok := ParseSSHConnection(string(v)); ok {
						return a, port, true
					}
				}
			}
		}
		pid = parentOf(p.Proc, pid)
	}
	return netip.Addr{}, 0, false
}

func parentOf(proc string, pid int) int {
	f, err := os.Open(filepath.Join(proc, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// ParseSSHConnection reads "CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT".
func ParseSSHConnection(v string) (netip.Addr, uint16, bool) {
	f := strings.Fields(v)
	if len(f) != 4 {
		return netip.Addr{}, 0, false
	}
	a, err := netip.ParseAddr(f[0])
	if err != nil {
		return netip.Addr{}, 0, false
	}
	port, err := strconv.Atoi(f[3])
	if err != nil || port < 1 || port > 65535 {
		port = 0
	}
	return a.Unmap().WithZone(""), uint16(port), true
}

// Conflict reports an active ufw or firewalld: palisade's accepts cannot
// override their drops. On the real host it asks them (ufw status,
// firewall-cmd --state); under a --root it reads ufw.conf's ENABLED.
func Conflict(ctx context.Context, r sysexec.Runner, root string) error {
	ufwActive := false
	if root == "" || root == "/" {
		if res, err := r.Run(ctx, sysexec.Cmd{Name: "ufw", Args: []string{"status"}}); err == nil {
			ufwActive = strings.HasPrefix(strings.TrimSpace(string(res.Stdout)), "Status: active")
		}
		if res, err := r.Run(ctx, sysexec.Cmd{Name: "firewall-cmd", Args: []string{"--state"}}); err == nil && strings.TrimSpace(string(res.Stdout)) == "running" {
			return fmt.Errorf("firewalld is running: a palisade accept cannot override its drop, so palisade does not enable its policy next to it. " +
				"Move its rules over (palisade firewall allow ...), then systemctl disable --now firewalld, then palisade firewall enable")
		}
	} else if data, err := fsx.ReadFile(fsx.Path(root, policy.UFWConf)); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if strings.TrimSpace(l) == "ENABLED=yes" {
				ufwActive = true
			}
		}
	}
	if ufwActive {
		return fmt.Errorf("ufw is active: a palisade accept cannot override ufw's drop, so palisade does not enable its policy next to it. " +
			"Translate ufw's rules with palisade firewall import ufw, then run ufw disable, then palisade firewall enable " +
			"(or keep ufw and leave the palisade policy disabled: bans work either way)")
	}
	return nil
}

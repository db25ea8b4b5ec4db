package sshd

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/palisade-project/palisade/internal/harden/fsx"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// Reload methods, recorded in the rollback state as "KIND:ARG".
const (
	ReloadSystemd = "systemd" // systemctl reload UNIT
	ReloadPidFile = "pidfile" // SIGHUP to the pid in a pid file
)

// SocketUnitDropIn is the drop-in that moves ssh.socket's ListenStream.
const SocketUnitDropIn = "/etc/systemd/system/ssh.socket.d/palisade-port.conf"

// ServiceReloader finds out how sshd is managed and reloads it.
type ServiceReloader interface {
	// Detect returns the reload method for the running configuration.
	Detect(ctx context.Context, eff Effective) string
	// SocketActive reports whether ssh.socket starts sshd.
	SocketActive(ctx context.Context) bool
	// Reload reloads sshd by method, restarting ssh.socket first if socket.
	Reload(ctx context.Context, method string, socket bool) error
}

// Reloader reloads sshd the way it is managed on this host.
type Reloader struct {
	Runner sysexec.Runner
	Root   string
}

// Detect returns the reload method: the active systemd unit (ssh or sshd)
// on the real host, else the pid file sshd reports (PidFile, root-prefixed).
func (r *Reloader) Detect(ctx context.Context, eff Effective) string {
	if r.Root == "" || r.Root == "/" {
		for _, unit := range []string{"ssh.service", "sshd.service"} {
			if _, err := r.Runner.Run(ctx, sysexec.Cmd{Name: "systemctl", Args: []string{"is-active", "--quiet", unit}}); err == nil {
				return ReloadSystemd + ":" + unit
			}
		}
	}
	pf := eff.Get("pidfile")
	if pf == "" || strings.EqualFold(pf, "none") {
		pf = "/run/sshd.pid"
	}
	return ReloadPidFile + ":" + fsx.Path(r.Root, pf)
}

// SocketActive reports whether systemd runs sshd through ssh.socket
// (real host only).
func (r *Reloader) SocketActive(ctx context.Context) bool {
	if r.Root != "" && r.Root != "/" {
		return false
	}
	_, err := r.Runner.Run(ctx, sysexec.Cmd{Name: "systemctl", Args: []string{"is-active", "--quiet", "ssh.socket"}})
	return err == nil
}

// Reload applies method (from Detect). socket restarts ssh.socket after a
// daemon-reload (its ListenStream changed).
func (r *Reloader) Reload(ctx context.Context, method string, socket bool) error {
	if method == "" {
		return nil // nothing to reload (an FTP change)
	}
	kind, arg, _ := strings.Cut(method, ":")
	if socket {
		for _, args := range [][]string{{"daemon-reload"}, {"restart", "ssh.socket"}} {
			if _, err := r.Runner.Run(ctx, sysexec.Cmd{Name: "systemctl", Args: args}); err != nil {
				return fmt.Errorf("reload sshd: %w", err)
			}
		}
	}
	switch kind {
	case ReloadSystemd:
		if _, err := r.Runner.Run(ctx, sysexec.Cmd{Name: "systemctl", Args: []string{"reload-or-restart", arg}}); err != nil {
			return fmt.Errorf("reload sshd: %w", err)
		}
		return nil
	case ReloadPidFile:
		data, err := fsx.ReadFileIn(r.Root, arg)
		if err != nil {
			if socket {
				return nil // socket activated: no listening daemon to signal
			}
			return fmt.Errorf("reload sshd: %w (is sshd running?)", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 1 {
			return fmt.Errorf("reload sshd: bad pid in %s", arg)
		}
		if comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err != nil || strings.TrimSpace(string(comm)) != "sshd" {
			return fmt.Errorf("reload sshd: pid %d from %s is not sshd", pid, arg)
		}
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			return fmt.Errorf("reload sshd: signal pid %d: %w", pid, err)
		}
		return nil
	}
	return fmt.Errorf("reload sshd: unknown method %q", method)
}

// SocketDropIn is the text of the ssh.socket drop-in listening on port.
func SocketDropIn(port int) []byte {
	return []byte("# Written by palisade ssh harden.\n[Socket]\nListenStream=\nListenStream=" + strconv.Itoa(port) + "\n")
}

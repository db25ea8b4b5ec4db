// Package ftp moves an FTP daemon (proftpd or vsftpd) to another port: it
// edits the port directive with a minimal text change, validates the
// result (proftpd -t), restarts the daemon, opens the firewall for the new
// port and moves the jail's port.
package ftp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/palisade-project/palisade/internal/harden/fsx"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// Server kinds.
const (
	ProFTPD = "proftpd"
	VsFTPD  = "vsftpd"
)

// Candidate configuration files, in search order.
var (
	proftpdFiles = []string{"/etc/proftpd/proftpd.conf", "/etc/proftpd.conf"}
	vsftpdFiles  = []string{"/etc/vsftpd.conf", "/etc/vsftpd/vsftpd.conf"}
)

// Server is a found FTP daemon configuration.
type Server struct {
	Kind string // ProFTPD or VsFTPD
	Path string // full (root-prefixed) path of its configuration
	Port int    // current port (21 when not set)
	Jail string // the jail that protects it
}

// Find locates the FTP server configuration under root; kind "" tries
// proftpd, then vsftpd.
func Find(root, kind string) (*Server, error) {
	try := func(k string, files []string) (*Server, error) {
		for _, f := range files {
			p := fsx.Path(root, f)
			data, err := fsx.ReadFileIn(root, p)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			s := &Server{Kind: k, Path: p, Port: 21, Jail: k}
			if n, ok := currentPort(k, data); ok {
				s.Port = n
			}
			return s, nil
		}
		return nil, nil
	}
	var kinds []string
	switch kind {
	case "":
		kinds = []string{ProFTPD, VsFTPD}
	case ProFTPD, VsFTPD:
		kinds = []string{kind}
	default:
		return nil, fmt.Errorf("unknown FTP server %q (proftpd or vsftpd)", kind)
	}
	for _, k := range kinds {
		files := proftpdFiles
		if k == VsFTPD {
			files = vsftpdFiles
		}
		s, err := try(k, files)
		if err != nil || s != nil {
			return s, err
		}
	}
	return nil, errors.New("no FTP server configuration found (/etc/proftpd/proftpd.conf, /etc/proftpd.conf, /etc/vsftpd.conf)")
}

// directive splits a proftpd line into keyword and value at depth 0; ok
// is false for comments and blank lines. commented reports "# Port 21".
func proftpdLine(l string) (kw, val string, commented bool) {
	t := strings.TrimSpace(l)
	if strings.HasPrefix(t, "#") {
		t = strings.TrimSpace(strings.TrimLeft(t, "#"))
		commented = true
	}
	f := strings.Fields(t)
	if len(f) == 0 {
		return "", "", commented
	}
	if len(f) > 1 {
		val = f[1]
	}
	return f[0], val, commented
}

func vsftpdLine(l string) (key, val string, commented bool) {
	t := strings.TrimSpace(l)
	if strings.HasPrefix(t, "#") {
		t = strings.TrimSpace(strings.TrimLeft(t, "#"))
		commented = true
	}
	k, v, ok := strings.Cut(t, "=")
	if !ok {
		return "", "", commented
	}
	return strings.TrimSpace(k), strings.TrimSpace(v), commented
}

// currentPort returns the active port directive's value.
func currentPort(kind string, data []byte) (int, bool) {
	depth := 0
	for _, l := range fsx.SplitLines(data) {
		if kind == VsFTPD {
			k, v, c := vsftpdLine(l)
			if !c && k == "listen_port" {
				n, err := strconv.Atoi(v)
				return n, err == nil
			}
			continue
		}
		kw, v, c := proftpdLine(l)
		if c {
			continue
		}
		depth += containerDelta(kw)
		if depth == 0 && strings.EqualFold(kw, "Port") {
			n, err := strconv.Atoi(v)
			return n, err == nil
		}
	}
	return 0, false
}

// containerDelta tracks <Global>, <VirtualHost ...> and similar blocks.
func containerDelta(kw string) int {
	switch {
	case strings.HasPrefix(kw, "</"):
		return -1
	case strings.HasPrefix(kw, "<"):
		return 1
	}
	return 0
}

// SetPort returns the configuration text with the server's port set to
// port: the active top-level directive is rewritten, else a commented one
// is uncommented, else a directive is added. Everything else is kept byte
// for byte.
func SetPort(kind string, data []byte, port int) []byte {
	lines := fsx.SplitLines(data)
	if len(lines) > 0 && !strings.HasSuffix(lines[len(lines)-1], "\n") {
		lines[len(lines)-1] += "\n"
	}
	ps := strconv.Itoa(port)
	active, commented := -1, -1
	depth := 0
	firstContainer := -1
	for i, l := range lines {
		if kind == VsFTPD {
			k, _, c := vsftpdLine(l)
			if k == "listen_port" {
				if !c && active < 0 {
					active = i
				} else if c && commented < 0 {
					commented = i
				}
			}
			continue
		}
		kw, _, c := proftpdLine(l)
		if !c {
			d := containerDelta(kw)
			if d > 0 && depth == 0 && firstContainer < 0 {
				firstContainer = i
			}
			depth += d
		}
		if depth == 0 && strings.EqualFold(kw, "Port") {
			if !c && active < 0 {
				active = i
			} else if c && commented < 0 {
				commented = i
			}
		}
	}
	newLine := func(old string) string {
		lead := old[:len(old)-len(strings.TrimLeft(old, " \t"))]
		body := strings.TrimLeft(strings.TrimLeft(old[len(lead):], "#"), " \t")
		if kind == VsFTPD {
			return lead + "listen_port=" + ps + "\n"
		}
		kw := "Port"
		if f := strings.Fields(body); len(f) > 0 {
			kw = f[0]
		}
		rest := strings.TrimPrefix(body, kw)
		sep := rest[:len(rest)-len(strings.TrimLeft(rest, " \t"))]
		if sep == "" {
			sep = " "
		}
		return lead + kw + sep + ps + "\n"
	}
	switch {
	case active >= 0:
		lines[active] = newLine(lines[active])
	case commented >= 0:
		lines[commented] = newLine(lines[commented])
	default:
		add := "Port " + ps + "\n"
		if kind == VsFTPD {
			add = "listen_port=" + ps + "\n"
		}
		at := len(lines)
		if firstContainer >= 0 {
			at = firstContainer
		}
		lines = append(append(append([]string{}, lines[:at]...), add), lines[at:]...)
	}
	return []byte(strings.Join(lines, ""))
}

// Validate runs "proftpd -t -c FILE" when proftpd is installed (vsftpd has
// no configuration test). It returns whether a test ran.
func Validate(ctx context.Context, r sysexec.Runner, s *Server, path string) (bool, error) {
	if s.Kind != ProFTPD {
		return false, nil
	}
	if _, err := r.Run(ctx, sysexec.Cmd{Name: "proftpd", Args: []string{"-t", "-c", path}}); err != nil {
		var ee *sysexec.ExitError
		if errors.As(err, &ee) {
			return true, fmt.Errorf("proftpd -t rejects %s: %w", path, err)
		}
		return false, nil // not installed
	}
	return true, nil
}

// Restart restarts the daemon's systemd unit on the real host. Under a
// root there is nothing to restart; it reports false.
func Restart(ctx context.Context, r sysexec.Runner, root string, s *Server) (bool, error) {
	if root != "" && root != "/" {
		return false, nil
	}
	unit := s.Kind + ".service"
	if _, err := r.Run(ctx, sysexec.Cmd{Name: "systemctl", Args: []string{"is-active", "--quiet", unit}}); err != nil {
		return false, nil // not running under systemd: picks the port up on its next start
	}
	if _, err := r.Run(ctx, sysexec.Cmd{Name: "systemctl", Args: []string{"restart", unit}}); err != nil {
		return false, fmt.Errorf("restart %s: %w", s.Kind, err)
	}
	return true, nil
}

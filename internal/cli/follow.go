package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	defaults "github.com/palisade-project/palisade/config"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/harden/fsx"
	"github.com/palisade-project/palisade/internal/harden/ports"
	"github.com/palisade-project/palisade/internal/harden/sshd"
)

// followed is the palisade configuration the hardening commands (ssh
// audit, ssh harden, ftp port, port check) follow: the one the running
// daemon runs, asked over the control socket, or else the files in
// --config-dir. So a moved service port goes to the jails that really run.
type followed struct {
	Dir string
	// Daemon is set when the running daemon answered.
	Daemon bool
	// Jails are the daemon's running jails, or the enabled jails of the
	// files (nil when they do not load: LoadErr).
	Jails   []control.JailConfig
	LoadErr error
}

var errNoDaemon = errors.New("no daemon")

// askDaemon asks the running daemon for its configuration: on the real
// host, or under --root only through an explicitly given --socket.
func (app *App) askDaemon(ctx context.Context) (*followed, error) {
	if app.Root != "" && app.Socket == DefaultSocket {
		return nil, errNoDaemon
	}
	if _, err := os.Stat(app.Socket); err != nil {
		return nil, errNoDaemon
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rep, err := app.client().Config(ctx)
	if err != nil {
		return nil, err
	}
	return &followed{Dir: rep.ConfigDir, Daemon: true, Jails: rep.Jails}, nil
}

// follow returns the configuration to follow. configDir is --config-dir
// ("" for the default); when a daemon runs another directory, the daemon
// wins and a warning says so.
func (app *App) follow(ctx context.Context, configDir string) *followed {
	f, err := app.askDaemon(ctx)
	switch {
	case err == nil:
		if configDir != "" && filepath.Clean(configDir) != filepath.Clean(f.Dir) {
			fmt.Fprintf(app.Stderr, "warning: the running daemon reads %s, not --config-dir %s: following the daemon\n", f.Dir, configDir)
		}
		return f
	case !errors.Is(err, errNoDaemon):
		fmt.Fprintf(app.Stderr, "warning: the daemon did not say which configuration it runs (%v): reading %s\n", err, app.configDir(configDir))
	}
	return app.readConfig(configDir)
}

// readConfig loads the configuration files in --config-dir.
func (app *App) readConfig(configDir string) *followed {
	f := &followed{Dir: app.configDir(configDir)}
	svc, _ := firewall.LoadServices(fsx.Path(app.Root, "/etc/services"))
	cfg, err := config.Load(f.Dir, config.LoadOptions{Builtin: defaults.FS(), Services: svc})
	if err != nil {
		f.LoadErr = err
		return f
	}
	f.Jails = []control.JailConfig{}
	for _, j := range cfg.Enabled() {
		jc := control.JailConfig{Name: j.Name, Filter: j.Filter.Name, Port: j.PortSpec, Protocol: j.Protocol, Where: j.Where, Ports: []control.PortRange{}}
		for _, p := range j.Ports {
			jc.Ports = append(jc.Ports, control.PortRange{From: p.From, To: p.To})
		}
		f.Jails = append(f.Jails, jc)
	}
	return f
}

// source names where the configuration came from, for messages.
func (f *followed) source() string {
	if f.Daemon {
		return "the running daemon (" + f.Dir + ")"
	}
	return f.Dir
}

// protecting returns the jails that watch service: named after it, or
// using its filter (sshd, sshd-ddos, ... for sshd), the one named after
// it first.
func (f *followed) protecting(service string) []control.JailConfig {
	var out []control.JailConfig
	for _, j := range f.Jails {
		base := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(j.Filter), ".local"), ".conf")
		if j.Name == service || base == service || strings.HasPrefix(base, service+"-") {
			out = append(out, j)
		}
	}
	slices.SortStableFunc(out, func(a, b control.JailConfig) int {
		switch {
		case a.Name == service && b.Name != service:
			return -1
		case b.Name == service && a.Name != service:
			return 1
		}
		return 0
	})
	return out
}

// targets are the jails whose port follows service's move, each with the
// file where its port is set; the jail named after the service in
// jail.local when none runs.
func (f *followed) targets(service string) []ports.JailTarget {
	var out []ports.JailTarget
	for _, j := range f.protecting(service) {
		out = append(out, ports.TargetIn(f.Dir, j.Name))
	}
	if len(out) == 0 {
		out = append(out, ports.TargetIn(f.Dir, service))
	}
	return out
}

// jailInfo describes the sshd jail for the audit (nil when unknown: the
// files do not load and no daemon answered).
func (f *followed) jailInfo() *sshd.JailInfo {
	if f.Jails == nil {
		return nil
	}
	js := f.protecting("sshd")
	if len(js) == 0 {
		return &sshd.JailInfo{PortFile: filepath.Join(f.Dir, "jail.local"), Source: f.source()}
	}
	j := js[0]
	return &sshd.JailInfo{Found: true, Enabled: true, Name: j.Name, Ports: portRanges(j.Ports), Where: j.Where,
		PortFile: ports.TargetIn(f.Dir, j.Name).File, Source: f.source()}
}

func portRanges(rs []control.PortRange) []firewall.PortRange {
	out := make([]firewall.PortRange, 0, len(rs))
	for _, r := range rs {
		out = append(out, firewall.PortRange{From: r.From, To: r.To})
	}
	return out
}

// covering returns the names of the jails whose ports include port.
func (f *followed) covering(port int) []string {
	var out []string
	for _, j := range f.Jails {
		if covers(j.Ports, port) {
			out = append(out, j.Name)
		}
	}
	return out
}

func covers(rs []control.PortRange, port int) bool { return sshd.Covers(portRanges(rs), port) }

// checkFollowed says whether the jails protecting service now cover port
// in the configuration the daemon runs after its reload (or, without a
// daemon, in the files): a warning for each one that does not.
func (app *App) checkFollowed(ctx context.Context, configDir, service string, port int) []string {
	f := app.follow(ctx, configDir)
	if f.LoadErr != nil {
		return []string{fmt.Sprintf("the configuration in %s does not load: %v", f.Dir, f.LoadErr)}
	}
	var warns []string
	for _, j := range f.protecting(service) {
		if !covers(j.Ports, port) {
			warns = append(warns, fmt.Sprintf("jail %s in %s still bans on port %s, not %d: set port = %d in [%s] of %s",
				j.Name, f.source(), j.Port, port, port, j.Name, ports.TargetIn(f.Dir, j.Name).File))
		}
	}
	return warns
}

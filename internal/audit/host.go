package audit

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"

	defaults "github.com/palisade-project/palisade/config"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/daemon"
	"github.com/palisade-project/palisade/internal/firewall/policy"
	"github.com/palisade-project/palisade/internal/firewall/policyctl"
	"github.com/palisade-project/palisade/internal/harden/fsx"
	"github.com/palisade-project/palisade/internal/harden/sshd"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// Checkers returns every area's checker.
func Checkers() []Checker {
	return []Checker{sshChecker{}, portsChecker{}, firewallChecker{}, jailsChecker{}, cloudflareChecker{}, notifyChecker{}, updatesChecker{}, daemonChecker{}}
}

// Options are the audit command's inputs.
type Options struct {
	// Root is --root; ConfigDir --config-dir ("" is /etc/palisade under
	// the root).
	Root      string
	ConfigDir string
	// Socket is an explicit --socket; "" uses the configuration's socket
	// under the root.
	Socket string
	Runner sysexec.Runner
	Getenv func(string) string
	// Privileged is set when running as root.
	Privileged bool
}

// HostSources builds the sources for a real host (or a --root tree):
// files under the root, sshd -T, /proc/net (the root's copy when it has
// one), the ruleset (DIR/nft-ruleset.json under a root that has one, else
// nft), the daemon's control socket and palisade's database read-only.
// Without --config-dir, the configuration audited is the one the running
// daemon reads (the default directory when none answers).
func HostSources(ctx context.Context, o Options) Sources {
	configDir := o.ConfigDir
	if configDir == "" {
		configDir = fsx.Path(o.Root, config.DefaultConfigDir)
	}
	socket, db := config.DefaultSocket, config.DefaultDBFile
	cfg, err := daemon.LoadConfig(daemon.Options{ConfigDir: configDir, Root: o.Root, Builtin: defaults.FS()})
	if err == nil {
		socket, db = cfg.Daemon.Socket, cfg.Daemon.DBFile
	}
	socket = fsx.Path(o.Root, socket)
	if o.Socket != "" {
		socket = o.Socket
	}
	dmn := ControlDaemon{Client: control.NewClient(socket)}
	if o.ConfigDir == "" {
		if st, err := dmn.Status(ctx); err == nil && st.ConfigDir != "" && filepath.Clean(st.ConfigDir) != filepath.Clean(configDir) {
			configDir = st.ConfigDir
			if cfg, err := daemon.LoadConfig(daemon.Options{ConfigDir: configDir, Root: o.Root, Builtin: defaults.FS()}); err == nil {
				db = cfg.Daemon.DBFile
			}
		}
	}
	src := Sources{
		Root:       o.Root,
		ConfigDir:  configDir,
		Privileged: o.Privileged,
		Getenv:     o.Getenv,
		Sockets:    ProcNet{Root: o.Root},
		Ruleset:    DefaultRuleset(o.Root, o.Runner),
		Daemon:     dmn,
		Policy:     PolicyFile{Path: filepath.Join(configDir, policy.FileName), Names: policyctl.LoadNames(o.Root)},
		UFW:        UFWFiles{Root: o.Root},
		Cloudflare: CloudflareOffline{DBPath: fsx.Path(o.Root, db)},
	}
	if o.Runner != nil {
		src.AptCat = AptHelperCat(o.Runner)
	}
	if _, err := os.Stat(fsx.Path(o.Root, sshd.DefaultConfig)); err == nil {
		src.SSHD = sshd.NewDaemon(o.Runner, o.Root)
	}
	if o.Root == "" || o.Root == "/" {
		src.AdminAddr = func() (netip.Addr, string) { return SessionAddr("/proc") }
	}
	return src
}

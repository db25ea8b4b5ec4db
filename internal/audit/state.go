package audit

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	defaults "github.com/palisade-project/palisade/config"
	"github.com/palisade-project/palisade/internal/cloudflare"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/daemon"
	"github.com/palisade-project/palisade/internal/harden/fsx"
	"github.com/palisade-project/palisade/internal/harden/ports"
	"github.com/palisade-project/palisade/internal/harden/sshd"
)

// Sources are where the audit reads the server's state. Every file is
// read under Root; the readers of kernel and process state are interfaces
// so tests substitute them.
type Sources struct {
	// Root is the --root prefix ("" for the host).
	Root string
	// ConfigDir is palisade's configuration directory (default
	// /etc/palisade under Root).
	ConfigDir string
	// Privileged is set when the audit runs as root.
	Privileged bool
	// Getenv reads the environment (SSH_CONNECTION); nil reads nothing.
	Getenv func(string) string
	// Now is the clock (default time.Now).
	Now func() time.Time

	// SSHD runs sshd -T; nil when sshd is not installed.
	SSHD *sshd.Daemon
	// Sockets lists the listening sockets.
	Sockets SocketReader
	// Ruleset reads the kernel's nftables ruleset; nil when unreadable.
	Ruleset RulesetReader
	// Daemon asks the running palisade daemon.
	Daemon DaemonReader
	// Policy reads palisade's firewall policy; UFW reads ufw's
	// configuration. Either may be nil.
	Policy FirewallReader
	UFW    FirewallReader
	// Notify lists the notification routes; nil reads them from the
	// configuration (NotifyFromConfig).
	Notify NotifyReader
	// Cloudflare reports the Cloudflare lock when no daemon answers; nil
	// skips that.
	Cloudflare CloudflareReader
	// AptCat reads apt's indexes kept compressed with lz4, xz or zstd;
	// nil leaves them unread.
	AptCat AptCat
	// AdminAddr finds the address of the admin's SSH session when the
	// environment does not say it; nil skips that.
	AdminAddr func() (netip.Addr, string)
}

// State is what the checkers read. Each part is read at most once, on
// first use; a read failure is remembered and reported by every check
// that needs it.
type State struct {
	src    Sources
	limits []string

	cfg     memo[*config.Config]
	sshRep  memo[*sshd.Report]
	sshEff  memo[sshd.Effective]
	sshCfg  memo[*sshd.Config]
	sockets memo[[]Socket]
	ruleset memo[*Ruleset]
	daemon  memo[*DaemonStatus]
	cf      memo[*cloudflare.Status]
	policy  memo[*FirewallState]
	ufw     memo[*FirewallState]
	pkgs    memo[map[string]Package]
	admin   memo[netip.Addr]
	adminBy string
}

type memo[T any] struct {
	done bool
	v    T
	err  error
}

func (m *memo[T]) get(f func() (T, error)) (T, error) {
	if !m.done {
		m.v, m.err = f()
		m.done = true
	}
	return m.v, m.err
}

// NewState returns a state over src.
func NewState(src Sources) *State {
	if src.Now == nil {
		src.Now = time.Now
	}
	if src.Getenv == nil {
		src.Getenv = func(string) string { return "" }
	}
	if src.ConfigDir == "" {
		src.ConfigDir = fsx.Path(src.Root, config.DefaultConfigDir)
	}
	return &State{src: src}
}

// Sources returns the state's sources.
func (s *State) Sources() Sources { return s.src }

// Path returns the system path p under the root.
func (s *State) Path(p string) string { return fsx.Path(s.src.Root, p) }

// Now returns the audit's clock.
func (s *State) Now() time.Time { return s.src.Now() }

// Limit records something the audit could not look at (as a normal user,
// mostly); the report lists them.
func (s *State) Limit(msg string) {
	if !slices.Contains(s.limits, msg) {
		s.limits = append(s.limits, msg)
	}
}

// Limits returns what the audit could not look at.
func (s *State) Limits() []string { return append([]string{}, s.limits...) }

// ErrNotReadable marks sources that need privileges the audit lacks.
var ErrNotReadable = errors.New("not readable without root")

// Config loads palisade's configuration the way the daemon does.
func (s *State) Config() (*config.Config, error) {
	return s.cfg.get(func() (*config.Config, error) {
		return daemon.LoadConfig(daemon.Options{ConfigDir: s.src.ConfigDir, Root: s.src.Root, Builtin: defaults.FS()})
	})
}

// SSHConfig parses sshd's configuration files.
func (s *State) SSHConfig() (*sshd.Config, error) {
	return s.sshCfg.get(func() (*sshd.Config, error) {
		if s.src.SSHD == nil {
			return nil, errNoSSHD
		}
		return sshd.Load(s.src.Root, s.src.SSHD.Config)
	})
}

var errNoSSHD = errors.New("sshd is not installed")

// SSHEffective is sshd -T for a connection that matches no Match block.
func (s *State) SSHEffective(ctx context.Context) (sshd.Effective, error) {
	return s.sshEff.get(func() (sshd.Effective, error) {
		if s.src.SSHD == nil {
			return nil, errNoSSHD
		}
		return s.src.SSHD.Effective(ctx, nil)
	})
}

// SSHReport runs palisade's ssh audit, with the sshd jail of the
// configuration.
func (s *State) SSHReport(ctx context.Context) (*sshd.Report, error) {
	return s.sshRep.get(func() (*sshd.Report, error) {
		if s.src.SSHD == nil {
			return nil, errNoSSHD
		}
		a := &sshd.Auditor{Daemon: s.src.SSHD, Root: s.src.Root, Jail: s.sshJail()}
		return a.Audit(ctx)
	})
}

// sshJail describes palisade's sshd jail for the ssh audit: the first
// enabled jail with the sshd filter (nil when the configuration does not
// load), as the hardening commands see it.
func (s *State) sshJail() *sshd.JailInfo {
	cfg, err := s.Config()
	if err != nil {
		return nil
	}
	for _, j := range cfg.Enabled() {
		if (service{filters: []string{"sshd"}}).protects(j) {
			return &sshd.JailInfo{Found: true, Enabled: true, Name: j.Name, Ports: j.Ports, Where: j.Where, PortFile: ports.TargetIn(cfg.Dir, j.Name).File}
		}
	}
	return &sshd.JailInfo{PortFile: filepath.Join(cfg.Dir, "jail.local")}
}

// Sockets lists the sockets listening on the host.
func (s *State) Sockets() ([]Socket, error) {
	return s.sockets.get(func() ([]Socket, error) {
		if s.src.Sockets == nil {
			return nil, errors.New("no socket reader")
		}
		socks, owners, err := s.src.Sockets.Sockets()
		if err == nil && !owners {
			s.Limit("the processes owning sockets are not known (needs root): services are recognised by port only")
		}
		return socks, err
	})
}

// Ruleset reads the kernel's nftables ruleset.
func (s *State) Ruleset(ctx context.Context) (*Ruleset, error) {
	return s.ruleset.get(func() (*Ruleset, error) {
		if s.src.Ruleset == nil {
			return nil, errors.New("the nftables ruleset cannot be read (nft is not installed)")
		}
		rs, err := s.src.Ruleset.Ruleset(ctx)
		if errors.Is(err, ErrNotReadable) {
			s.Limit("the kernel's firewall ruleset (nft list ruleset needs root): firewall checks use the configuration only")
		}
		return rs, err
	})
}

// Daemon asks the running daemon for its status.
func (s *State) Daemon(ctx context.Context) (*DaemonStatus, error) {
	return s.daemon.get(func() (*DaemonStatus, error) {
		if s.src.Daemon == nil {
			return nil, ErrDaemonNotRunning
		}
		st, err := s.src.Daemon.Status(ctx)
		if errors.Is(err, ErrNotReadable) {
			s.Limit("the daemon's status (its control socket is root-only)")
		}
		return st, err
	})
}

// Cloudflare reports the Cloudflare lock: from the daemon when one runs,
// otherwise from the database and the kernel.
func (s *State) Cloudflare(ctx context.Context) (*cloudflare.Status, error) {
	return s.cf.get(func() (*cloudflare.Status, error) {
		if _, err := s.Daemon(ctx); err == nil {
			return s.src.Daemon.Cloudflare(ctx)
		}
		if s.src.Cloudflare == nil {
			return nil, errors.New("the Cloudflare lock's state cannot be read")
		}
		cfg, err := s.Config()
		if err != nil {
			return nil, err
		}
		rs, _ := s.Ruleset(ctx)
		st, err := s.src.Cloudflare.Status(ctx, cfg, rs)
		if errors.Is(err, ErrNotReadable) {
			s.Limit("the Cloudflare lock's database (root-only)")
		}
		return st, err
	})
}

// Policy reads palisade's firewall policy (nil when there is none).
func (s *State) Policy(ctx context.Context) (*FirewallState, error) {
	return s.policy.get(func() (*FirewallState, error) {
		if s.src.Policy == nil {
			return nil, nil
		}
		return s.src.Policy.Read(ctx)
	})
}

// UFW reads ufw's configuration (nil when ufw is not installed).
func (s *State) UFW(ctx context.Context) (*FirewallState, error) {
	return s.ufw.get(func() (*FirewallState, error) {
		if s.src.UFW == nil {
			return nil, nil
		}
		return s.src.UFW.Read(ctx)
	})
}

// Packages returns dpkg's installed packages (empty when there is no dpkg
// database).
func (s *State) Packages() (map[string]Package, error) {
	return s.pkgs.get(func() (map[string]Package, error) {
		return ReadDpkgStatus(s.Path("/var/lib/dpkg/status"))
	})
}

// Installed reports whether one of the packages is installed.
func (s *State) Installed(names ...string) (string, bool) {
	pkgs, _ := s.Packages()
	for _, n := range names {
		if p, ok := pkgs[n]; ok && p.Installed() {
			return n, true
		}
	}
	return "", false
}

// Exists reports whether the system path p exists under the root.
func (s *State) Exists(p string) bool {
	_, err := os.Lstat(s.Path(p))
	return err == nil
}

// AdminAddr is the client address of the SSH session running the audit:
// SSH_CONNECTION, or (under sudo, which drops it) the session found by
// Sources.AdminAddr. by says where it came from.
func (s *State) AdminAddr() (addr netip.Addr, by string) {
	a, _ := s.admin.get(func() (netip.Addr, error) {
		if a, ok := parseSSHConnection(s.src.Getenv("SSH_CONNECTION")); ok {
			s.adminBy = "SSH_CONNECTION"
			return a, nil
		}
		if s.src.AdminAddr != nil {
			a, by := s.src.AdminAddr()
			s.adminBy = by
			return a, nil
		}
		return netip.Addr{}, nil
	})
	return a, s.adminBy
}

// parseSSHConnection reads the client address of "client cport server sport".
func parseSSHConnection(v string) (netip.Addr, bool) {
	f := strings.Fields(v)
	if len(f) != 4 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(f[0])
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// SessionAddr walks the audit's parent processes under /proc and returns
// the SSH_CONNECTION client address of the first that has one (sudo drops
// the variable, the login shell above it still has it). It reads at most
// 64 ancestors.
func SessionAddr(proc string) (netip.Addr, string) {
	pid := os.Getppid()
	for range 64 {
		if pid <= 1 {
			break
		}
		env, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "environ"))
		if err == nil {
			for _, kv := range strings.Split(string(env), "\x00") {
				if v, ok := strings.CutPrefix(kv, "SSH_CONNECTION="); ok {
					if a, ok := parseSSHConnection(v); ok {
						return a, fmt.Sprintf("SSH_CONNECTION of process %d", pid)
					}
				}
			}
		}
		stat, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
		if err != nil {
			break
		}
		// pid (comm) state ppid ...: comm may hold blanks and parentheses.
		rest := string(stat)
		if i := strings.LastIndexByte(rest, ')'); i >= 0 {
			rest = rest[i+1:]
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			break
		}
		pid, _ = strconv.Atoi(f[1])
	}
	return netip.Addr{}, ""
}

package sshd

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/harden/fsx"
)

// Severity ranks a finding.
type Severity string

// Severities, worst first.
const (
	Critical Severity = "critical"
	High     Severity = "high"
	Medium   Severity = "medium"
	Low      Severity = "low"
	Info     Severity = "info"
	OK       Severity = "ok"
)

// Finding is one audit result.
type Finding struct {
	ID          string   `json:"id"`
	Severity    Severity `json:"severity"`
	Setting     string   `json:"setting,omitempty"`
	Value       string   `json:"value,omitempty"`
	Where       string   `json:"where,omitempty"` // file:line that sets the value; "" for a default
	Explanation string   `json:"explanation"`
	Fix         string   `json:"fix,omitempty"`
}

// JailInfo says how palisade's sshd jail is configured, in the
// configuration the daemon runs.
type JailInfo struct {
	Found   bool
	Enabled bool
	// Name is the jail's name (sshd, or another jail using the sshd
	// filter).
	Name  string
	Ports []firewall.PortRange
	Where string
	// PortFile is where the jail's port is set (for the fix), Source
	// where the configuration came from ("the running daemon (DIR)").
	PortFile string
	Source   string
}

// Report is the result of Audit.
type Report struct {
	Config   string     `json:"config"`
	Ports    []int      `json:"ports"`
	Findings []Finding  `json:"findings"`
	Users    []UserKeys `json:"users"`
}

// Worst returns the most severe finding's severity (OK when none).
func (r *Report) Worst() Severity {
	worst := OK
	for _, f := range r.Findings {
		if rank(f.Severity) < rank(worst) {
			worst = f.Severity
		}
	}
	return worst
}

func rank(s Severity) int {
	return slices.Index([]Severity{Critical, High, Medium, Low, Info, OK}, s)
}

// Auditor inspects an sshd configuration.
type Auditor struct {
	Daemon *Daemon
	Root   string
	// Jail describes palisade's sshd jail; nil when unknown.
	Jail *JailInfo
}

// Audit reads the effective configuration and reports on it.
func (a *Auditor) Audit(ctx context.Context) (*Report, error) {
	cfg, err := Load(a.Root, a.Daemon.Config)
	if err != nil {
		return nil, err
	}
	eff, err := a.Daemon.Effective(ctx, nil)
	if err != nil {
		return nil, err
	}
	r := &Report{Config: a.Daemon.Config, Ports: Ports(eff)}
	// where names the line that sets kw to value: the first global
	// directive, unless a Match block that applies to every connection
	// (such as "Match all") overrides it.
	where := func(kw, value string) string {
		d, ok := firstOf(cfg, strings.ToLower(kw))
		if ok && (value == "" || len(d.Args) == 0 || strings.EqualFold(d.Args[0], value)) {
			return d.Where()
		}
		for _, md := range cfg.Directives {
			if md.Match != nil && slices.Contains(spellings(strings.ToLower(kw)), md.Key()) && len(md.Args) > 0 && strings.EqualFold(md.Args[0], value) {
				return md.Where()
			}
		}
		if ok {
			return d.Where()
		}
		return ""
	}
	add := func(f Finding) {
		if f.Where == "" && f.Setting != "" {
			f.Where = where(f.Setting, f.Value)
		}
		r.Findings = append(r.Findings, f)
	}
	yes := func(kw string) bool { return eff.Get(kw) == "yes" }

	if yes("passwordauthentication") {
		add(Finding{ID: "password-auth", Severity: High, Setting: "PasswordAuthentication", Value: "yes",
			Explanation: "password logins are accepted: bots guess passwords around the clock; use keys only",
			Fix:         "palisade ssh harden --keys-only"})
	} else {
		add(Finding{ID: "password-auth", Severity: OK, Setting: "PasswordAuthentication", Value: eff.Get("passwordauthentication"), Explanation: "password logins are refused"})
	}
	if yes("kbdinteractiveauthentication") && yes("usepam") {
		add(Finding{ID: "kbd-interactive", Severity: High, Setting: "KbdInteractiveAuthentication", Value: "yes",
			Explanation: "keyboard-interactive login through PAM asks for the password even when PasswordAuthentication is no",
			Fix:         "palisade ssh harden --keys-only"})
	} else if yes("kbdinteractiveauthentication") {
		add(Finding{ID: "kbd-interactive", Severity: Low, Setting: "KbdInteractiveAuthentication", Value: "yes",
			Explanation: "keyboard-interactive login is enabled (UsePAM is off, so it cannot ask for the password)",
			Fix:         "palisade ssh harden --keys-only"})
	}
	switch v := eff.Get("permitrootlogin"); v {
	case "yes":
		add(Finding{ID: "root-login", Severity: High, Setting: "PermitRootLogin", Value: v,
			Explanation: "root may log in with a password: the one account name every attacker knows",
			Fix:         "palisade ssh harden --no-root-password"})
	case "without-password", "prohibit-password", "forced-commands-only":
		add(Finding{ID: "root-login", Severity: Info, Setting: "PermitRootLogin", Value: v, Explanation: "root may log in with a key only"})
	default:
		add(Finding{ID: "root-login", Severity: OK, Setting: "PermitRootLogin", Value: v, Explanation: "root may not log in"})
	}
	if eff.Get("pubkeyauthentication") == "no" {
		add(Finding{ID: "pubkey-auth", Severity: High, Setting: "PubkeyAuthentication", Value: "no",
			Explanation: "key logins are switched off, so only passwords remain",
			Fix:         "palisade ssh harden --keys-only"})
	}
	if yes("permitemptypasswords") {
		add(Finding{ID: "empty-passwords", Severity: Critical, Setting: "PermitEmptyPasswords", Value: "yes",
			Explanation: "accounts without a password can log in without one",
			Fix:         "palisade ssh harden --keys-only"})
	}
	if slices.Contains(r.Ports, 22) {
		add(Finding{ID: "default-port", Severity: Low, Setting: "Port", Value: "22",
			Explanation: "port 22 receives nearly all automated scans; a non-default port cuts the noise (it is not a defence on its own)",
			Fix:         "palisade ssh harden --port 2222"})
	}
	for _, la := range eff["listenaddress"] {
		if _, set := cfg.First("listenaddress"); !set {
			break
		}
		add(Finding{ID: "listen-address", Severity: Info, Setting: "ListenAddress", Value: la, Explanation: "sshd listens on " + la})
	}
	if n, err := strconv.Atoi(eff.Get("maxauthtries")); err == nil && n > 3 {
		add(Finding{ID: "max-auth-tries", Severity: Low, Setting: "MaxAuthTries", Value: strconv.Itoa(n),
			Explanation: "each connection may try this many authentications; 3 is enough for a key-only server",
			Fix:         "set MaxAuthTries 3 in " + a.Daemon.Config})
	}
	if n, err := strconv.Atoi(eff.Get("logingracetime")); err == nil && (n == 0 || n > 60) {
		add(Finding{ID: "login-grace-time", Severity: Low, Setting: "LoginGraceTime", Value: eff.Get("logingracetime"),
			Explanation: "unauthenticated connections are held this many seconds (0 = forever); 30 limits idle connection floods",
			Fix:         "set LoginGraceTime 30 in " + a.Daemon.Config})
	}
	if yes("x11forwarding") {
		add(Finding{ID: "x11-forwarding", Severity: Low, Setting: "X11Forwarding", Value: "yes",
			Explanation: "X11 forwarding is rarely needed on a server and widens what a stolen session can do",
			Fix:         "set X11Forwarding no in " + a.Daemon.Config})
	}
	if len(eff["allowusers"]) == 0 && len(eff["allowgroups"]) == 0 {
		add(Finding{ID: "allow-users", Severity: Info, Setting: "AllowUsers",
			Explanation: "every account with a login shell may log in over SSH; AllowUsers or AllowGroups narrows it to the admins",
			Fix:         "set AllowUsers <you> in " + a.Daemon.Config})
	} else {
		add(Finding{ID: "allow-users", Severity: OK, Setting: "AllowUsers", Value: strings.Join(append(eff["allowusers"], eff["allowgroups"]...), " "), Explanation: "logins are limited to listed users or groups"})
	}
	if SocketActivated(a.Root) {
		add(Finding{ID: "socket-activation", Severity: Info, Setting: "ssh.socket",
			Explanation: "sshd is started by systemd's ssh.socket: its ListenStream, not Port, decides the listening port",
			Fix:         "palisade ssh harden --port N (updates ssh.socket too)"})
	}
	a.matchFindings(ctx, cfg, eff, add)

	// Users and keys.
	users, err := LoadUsers(a.Root)
	if err == nil {
		pats := strings.Fields(strings.Join(eff["authorizedkeysfile"], " "))
		withKeys := 0
		for _, u := range LoginUsers(users, eff) {
			uk := KeysOf(a.Root, pats, u)
			r.Users = append(r.Users, uk)
			if uk.Keys > 0 {
				withKeys++
			}
		}
		if withKeys == 0 {
			add(Finding{ID: "no-keys", Severity: High,
				Explanation: "no login user has a usable authorized_keys entry: switching passwords off now would lock everyone out",
				Fix:         "ssh-copy-id -p PORT you@server (from your own machine), then palisade ssh harden --keys-only"})
		}
	}

	// Jail coverage.
	switch {
	case a.Jail == nil:
	case !a.Jail.Found || !a.Jail.Enabled:
		file := cmp.Or(a.Jail.PortFile, "/etc/palisade/jail.local")
		add(Finding{ID: "jail", Severity: Medium, Where: a.Jail.Where,
			Explanation: "no enabled palisade sshd jail" + from(a.Jail.Source) + ": failed logins are not banned",
			Fix:         "enable [sshd] in " + file + " (enabled = true)"})
	default:
		var missing []string
		for _, p := range r.Ports {
			if !Covers(a.Jail.Ports, p) {
				missing = append(missing, strconv.Itoa(p))
			}
		}
		name := cmp.Or(a.Jail.Name, "sshd")
		if len(missing) > 0 {
			add(Finding{ID: "jail", Severity: Medium, Where: a.Jail.Where, Value: firewall.FormatPorts(a.Jail.Ports),
				Explanation: "the " + name + " jail" + from(a.Jail.Source) + " bans on ports " + firewall.FormatPorts(a.Jail.Ports) + " but sshd listens on " + strings.Join(missing, ","),
				Fix:         "set port = " + strings.Join(missing, ",") + " in [" + name + "] of " + cmp.Or(a.Jail.PortFile, "/etc/palisade/jail.local")})
		} else {
			add(Finding{ID: "jail", Severity: OK, Where: a.Jail.Where, Value: firewall.FormatPorts(a.Jail.Ports), Explanation: "the " + name + " jail" + from(a.Jail.Source) + " protects the SSH port"})
		}
	}
	slices.SortStableFunc(r.Findings, func(x, y Finding) int { return rank(x.Severity) - rank(y.Severity) })
	return r, nil
}

func from(source string) string {
	if source == "" {
		return ""
	}
	return " of " + source
}

// Covers reports whether the port ranges rs (a jail's ports; empty means
// every port) include p.
func Covers(rs []firewall.PortRange, p int) bool {
	if len(rs) == 0 {
		return true // all ports
	}
	for _, r := range rs {
		if int(r.From) <= p && p <= int(r.To) {
			return true
		}
	}
	return false
}

// Ports returns the ports sshd listens on according to eff.
func Ports(eff Effective) []int {
	var out []int
	add := func(p int) {
		if p > 0 && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, la := range eff["listenaddress"] {
		if ap, err := netip.ParseAddrPort(strings.Fields(la)[0]); err == nil {
			add(int(ap.Port()))
		}
	}
	if len(out) == 0 {
		for _, p := range eff["port"] {
			n, _ := strconv.Atoi(p)
			add(n)
		}
	}
	slices.Sort(out)
	return out
}

// SocketActivated reports whether systemd's ssh.socket is enabled under root.
func SocketActivated(root string) bool {
	for _, p := range []string{"/etc/systemd/system/sockets.target.wants/ssh.socket", "/etc/systemd/system/sockets.target.wants/sshd.socket"} {
		if _, err := os.Lstat(fsx.Path(root, p)); err == nil {
			return true
		}
	}
	return false
}

// riskyKeys are compared between the global configuration and each Match
// block's result.
var riskyKeys = []struct{ key, name, bad string }{
	{"passwordauthentication", "PasswordAuthentication", "yes"},
	{"kbdinteractiveauthentication", "KbdInteractiveAuthentication", "yes"},
	{"permitrootlogin", "PermitRootLogin", "yes"},
	{"permitemptypasswords", "PermitEmptyPasswords", "yes"},
}

// MatchConn builds a connection that a Match block's criteria select.
func MatchConn(m *Match) Conn {
	c := Conn{User: "palisade-audit", Host: "palisade.invalid", Addr: "192.0.2.1"}
	for i := 0; i+1 < len(m.Criteria); i += 2 {
		crit, val := strings.ToLower(m.Criteria[i]), m.Criteria[i+1]
		first := strings.Split(val, ",")[0]
		if strings.HasPrefix(first, "!") {
			continue
		}
		switch crit {
		case "user":
			if u := strings.Trim(first, "*?"); u != "" {
				c.User = u
			}
		case "host":
			if h := strings.Trim(first, "*?."); h != "" {
				c.Host = "palisade." + h
				if !strings.ContainsAny(first, "*?") {
					c.Host = first
				}
			}
		case "address":
			if p, err := netip.ParsePrefix(first); err == nil {
				c.Addr = p.Addr().String()
			} else if ad, err := netip.ParseAddr(first); err == nil {
				c.Addr = ad.String()
			}
		}
	}
	return c
}

func (a *Auditor) matchFindings(ctx context.Context, cfg *Config, global Effective, add func(Finding)) {
	for _, m := range cfg.Matches() {
		conn := MatchConn(m)
		eff, err := a.Daemon.Effective(ctx, &conn)
		if err != nil {
			add(Finding{ID: "match-block", Severity: Info, Where: m.Where(), Explanation: "could not evaluate Match " + strings.Join(m.Criteria, " ") + ": " + err.Error()})
			continue
		}
		for _, rk := range riskyKeys {
			if eff.Get(rk.key) == rk.bad && global.Get(rk.key) != rk.bad {
				where := m.Where()
				for _, d := range cfg.InMatch(m) {
					if d.Key() == rk.key {
						where = d.Where()
						break
					}
				}
				add(Finding{ID: "match-" + rk.key, Severity: High, Setting: rk.name, Value: rk.bad, Where: where,
					Explanation: fmt.Sprintf("the Match %s block at %s sets %s %s for %s", strings.Join(m.Criteria, " "), m.Where(), rk.name, rk.bad, conn.spec()),
					Fix:         "palisade ssh harden --keys-only"})
			}
		}
	}
}

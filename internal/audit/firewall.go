package audit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/firewall/policy"
	"github.com/palisade-project/palisade/internal/firewall/policyctl"
	"github.com/palisade-project/palisade/internal/harden/fsx"
)

// Kernel states of a firewall.
const (
	kernelYes     = "yes"
	kernelNo      = "no"
	kernelUnknown = "unknown"
)

// effective is the firewall that decides what reaches the host.
type effective struct {
	// Name is palisade, ufw, firewalld, nftables (a foreign ruleset) or
	// none.
	Name string
	// State is the evaluated policy (nil for firewalld and foreign
	// rulesets, and for none).
	State *FirewallState
	// Kernel says whether the kernel holds it.
	Kernel string
	// Open are ports opened in palisade's allow chain.
	Open []ProtoPort
	// Broken is palisade's policy file when it does not parse (State is
	// nil then: what the kernel holds is the last applied policy).
	Broken   *FirewallState
	Evidence []string
}

// evaluated reports whether reachability can be computed.
func (e *effective) evaluated() bool { return e.State != nil || (e.Name == "none" && e.Broken == nil) }

// reach is the verdict for proto/port.
func (e *effective) reach(proto string, port uint16) (Verdict, bool) {
	switch {
	case e.State != nil:
		return e.State.Reach(proto, port, e.Open), true
	case e.Name == "none" && e.Broken == nil:
		return Verdict{Reachable: true, Reason: "no firewall is enabled"}, true
	}
	return Verdict{Reachable: true, Reason: e.Name + " decides (not evaluated by the audit)"}, false
}

// Effective determines the firewall in force: palisade's policy when
// firewall.rules enables it, else ufw when enabled, else firewalld or
// another ruleset that drops by default, else none ("unknown" when the
// ruleset cannot be read).
func (s *State) Effective(ctx context.Context) *effective {
	e := &effective{Name: "none", Kernel: kernelUnknown}
	rs, rsErr := s.Ruleset(ctx)
	if rs != nil {
		e.Open = rs.OpenPorts()
	}
	pol, polErr := s.Policy(ctx)
	ufw, ufwErr := s.UFW(ctx)
	for _, err := range []error{polErr, ufwErr} {
		if err != nil {
			e.Evidence = append(e.Evidence, err.Error())
		}
	}
	switch {
	case pol != nil && len(pol.Errors) > 0:
		e.Name, e.Broken = FirewallPalisade, pol
		e.Evidence = append(e.Evidence, pol.Errors...)
	case pol != nil && pol.Enabled:
		e.Name, e.State = FirewallPalisade, pol
		e.Evidence = append(e.Evidence, "palisade policy enabled ("+pol.EnabledWhere+")")
		if rs != nil {
			if ok, _ := rs.PolicyInstalled(); ok {
				e.Kernel = kernelYes
			} else {
				e.Kernel = kernelNo
			}
		}
	case ufw != nil && (ufw.Enabled || (rs != nil && rs.UFWLoaded())):
		e.Name, e.State = FirewallUFW, ufw
		if ufw.EnabledWhere != "" {
			e.Evidence = append(e.Evidence, "ufw ENABLED=yes ("+ufw.EnabledWhere+")")
		}
		if rs != nil && rs.UFWLoaded() {
			e.Kernel = kernelYes
			e.State.Enabled = true
			e.Evidence = append(e.Evidence, "ufw's chains are in the kernel (ufw-user-input)")
		}
	case rs != nil && rs.FirewalldLoaded():
		e.Name, e.Kernel = "firewalld", kernelYes
		e.Evidence = append(e.Evidence, "table inet firewalld is in the kernel")
	case rs != nil && len(rs.ForeignInput()) > 0:
		e.Name, e.Kernel = "nftables", kernelYes
		for _, c := range rs.ForeignInput() {
			e.Evidence = append(e.Evidence, fmt.Sprintf("table %s %s chain %s: hook input, policy drop", c.Family, c.Table, c.Name))
		}
	case rsErr != nil:
		// Without the kernel's ruleset (not root) a firewall of another
		// kind cannot be ruled out.
		e.Name = "unknown"
		e.Evidence = append(e.Evidence, "neither palisade's policy nor ufw is enabled, and the kernel's ruleset could not be read")
	default:
		if pol != nil {
			e.Evidence = append(e.Evidence, "palisade policy not enabled ("+cmpOr(pol.EnabledWhere, pol.Files[0]+": no enable line")+")")
		}
		if ufw != nil {
			e.Evidence = append(e.Evidence, "ufw installed but not enabled ("+cmpOr(ufw.EnabledWhere, ufw.Files[0])+")")
		}
		if rs != nil {
			e.Evidence = append(e.Evidence, "no input chain in the kernel drops by default ("+rs.Source+")")
		}
	}
	if rsErr != nil {
		e.Evidence = append(e.Evidence, "kernel ruleset not read: "+rsErr.Error())
	}
	return e
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// sshPorts returns the ports sshd listens on (22 when unknown).
func sshPorts(ctx context.Context, st *State) []uint16 {
	if rep, err := st.SSHReport(ctx); err == nil && len(rep.Ports) > 0 {
		out := make([]uint16, 0, len(rep.Ports))
		for _, p := range rep.Ports {
			out = append(out, uint16(p))
		}
		return out
	}
	var out []uint16
	if socks, err := st.Sockets(); err == nil {
		for _, s := range socks {
			if s.Proto == "tcp" && s.Process == "sshd" && !s.Loopback() && !slices.Contains(out, s.Port) {
				out = append(out, s.Port)
			}
		}
	}
	if len(out) == 0 {
		out = []uint16{22}
	}
	return out
}

// firewallChecker checks the firewall policy against the guide.
type firewallChecker struct{}

func (firewallChecker) Area() string { return AreaFirewall }

func (firewallChecker) Check(ctx context.Context, st *State) []Check {
	eff := st.Effective(ctx)
	out := []Check{fwEnabled(eff), fwInKernel(eff), fwApplied(st, eff)}
	out = append(out, fwDefault(eff), fwPortsIntended(st, eff), fwSSHLimit(ctx, st, eff), fwFlush(ctx, st, eff), fwDocker(ctx, st, eff))
	return out
}

func fwEnabled(eff *effective) Check {
	c := Check{ID: "firewall.enabled", Severity: High, Title: "a firewall policy is enabled", Evidence: eff.Evidence}
	switch {
	case eff.Broken != nil:
		c.Status = Fail
		c.Message = eff.Broken.Files[0] + " does not parse: palisade firewall apply and the daemon refuse it (the kernel keeps whatever was applied last)"
		c.Fix = "correct the lines named, then palisade firewall apply"
		return c
	}
	switch eff.Name {
	case FirewallPalisade:
		c.Status, c.Message = Pass, "palisade's firewall policy is enabled"
	case FirewallUFW:
		c.Status, c.Message = Pass, "ufw is enabled (palisade firewall import ufw moves its rules to palisade's policy)"
	case "firewalld", "nftables":
		c.Status, c.Message = Pass, "a firewall other than palisade's ("+eff.Name+") is loaded; the audit does not evaluate its rules"
	case "unknown":
		c.Status, c.Message = Skip, "neither palisade's policy nor ufw is enabled; whether another firewall is loaded needs root (nft list ruleset)"
	default:
		c.Status, c.Message = Fail, "no firewall is enabled: every listening port is reachable from the internet"
		c.Fix = "palisade firewall default deny && palisade firewall limit 22/tcp --conn 2 --rate 1/1s && palisade firewall enable (then palisade firewall confirm)"
	}
	return c
}

func fwInKernel(eff *effective) Check {
	c := Check{ID: "firewall.in-kernel", Severity: High, Title: "the kernel holds the enabled policy", Evidence: eff.Evidence}
	switch {
	case eff.State == nil:
		c.Status, c.Message = Skip, "no palisade or ufw policy is enabled"
	case eff.Kernel == kernelYes:
		c.Status, c.Message = Pass, eff.Name+"'s rules are in the kernel"
	case eff.Kernel == kernelUnknown:
		c.Status, c.Message = Skip, "the kernel's ruleset could not be read"
		if eff.Name == FirewallUFW {
			c.Message = "ufw's chains are not visible to nft (legacy iptables?) or the ruleset could not be read"
		}
	default:
		c.Status = Fail
		c.Message = "firewall.rules enables the policy but the kernel does not hold it (table inet palisade chain pol_input is missing): never applied, or removed by nft flush ruleset (nftables.service)"
		c.Fix = "palisade firewall apply"
	}
	return c
}

// fwApplied checks that the policy in force is the file's: no hand edit
// waits for "palisade firewall apply" (the daemon re-installs the policy
// last applied, not the file), and no change waits for confirmation.
func fwApplied(st *State, eff *effective) Check {
	c := Check{ID: "firewall.applied", Severity: Medium, Title: "the policy in force is firewall.rules, confirmed"}
	if eff.Name != FirewallPalisade || eff.State == nil {
		c.Status, c.Message = Skip, "palisade's policy is not enabled"
		return c
	}
	store := policyctl.NewStore(st.src.Root)
	applied := filepath.Join(store.Dir, policyctl.AppliedFile)
	data, err := fsx.ReadFile(applied)
	switch {
	case errors.Is(err, fs.ErrPermission):
		st.Limit("the policy last applied (" + applied + ", root-only)")
		c.Status, c.Message = Skip, "the policy last applied cannot be read (needs root)"
		return c
	case errors.Is(err, fs.ErrNotExist):
		c.Status = Warn
		c.Message = "firewall.rules was never applied by palisade firewall: after a flush the daemon has no recorded policy to re-install"
		c.Fix = "palisade firewall apply"
		return c
	case err != nil:
		c.Status, c.Message, c.Evidence = Skip, "the policy last applied cannot be read", []string{err.Error()}
		return c
	}
	c.Evidence = append(c.Evidence, "applied: "+applied)
	var problems []string
	if last, perr := policy.Parse(applied, data, policyctl.LoadNames(st.src.Root)); perr != nil || !samePolicy(last.Policy(), eff.State) {
		problems = append(problems, "firewall.rules was changed since it was applied: the kernel (and a re-install after a flush) runs the previous policy")
		c.Fix = "palisade firewall apply"
	}
	if tx, err := store.Load(); err == nil && tx != nil && tx.Pending() {
		problems = append(problems, fmt.Sprintf("change %s waits for confirmation: it is rolled back at %s unless confirmed", tx.ID, tx.Deadline.UTC().Format(time.RFC3339)))
		c.Fix = "palisade firewall confirm (after checking that a new SSH session gets in)"
	}
	if len(problems) == 0 {
		c.Status, c.Message = Pass, "the kernel runs firewall.rules as it is, and no change waits for confirmation"
		return c
	}
	c.Status, c.Message = Warn, strings.Join(problems, "; ")
	c.Evidence = append(c.Evidence, problems...)
	return c
}

// samePolicy compares an applied policy with the file's.
func samePolicy(p policy.Policy, st *FirewallState) bool {
	if p.Enabled != st.Enabled || string(p.Default) != st.Default || len(p.Rules) != len(st.Rules) {
		return false
	}
	for i, r := range p.Rules {
		if r.String() != st.Rules[i].Text {
			return false
		}
	}
	return true
}

func fwDefault(eff *effective) Check {
	c := Check{ID: "firewall.default-deny", Severity: High, Title: "new incoming connections are refused by default", Evidence: slices.Clone(eff.Evidence)}
	switch {
	case eff.State != nil:
		where := cmpOr(eff.State.DefaultWhere, "default")
		c.Evidence = append(c.Evidence, fmt.Sprintf("%s default incoming: %s (%s)", eff.Name, eff.State.Default, where))
		if eff.State.Default == "deny" || eff.State.Default == "reject" {
			c.Status, c.Message = Pass, "incoming connections no rule allows are refused ("+eff.State.Default+")"
		} else {
			c.Status, c.Message = Fail, "the default policy allows every incoming connection"
			c.Fix = "palisade firewall default deny"
			if eff.Name == FirewallUFW {
				c.Fix = "ufw default deny incoming"
			}
		}
	case eff.Name == "firewalld" || eff.Name == "nftables":
		c.Status, c.Message = Pass, eff.Name+" drops by default"
	case eff.Broken != nil:
		c.Status, c.Message = Skip, "firewall.rules does not parse (see firewall.enabled)"
	case eff.Name == "unknown":
		c.Status, c.Message = Skip, "the kernel's ruleset could not be read (needs root)"
	default:
		c.Status, c.Message = Fail, "no firewall: every incoming connection is accepted"
		c.Fix = "palisade firewall default deny && palisade firewall enable"
	}
	return c
}

// fwPortsIntended checks that every listening non-loopback port is allowed
// by a rule (on purpose) or refused.
func fwPortsIntended(st *State, eff *effective) Check {
	c := Check{ID: "firewall.ports-intended", Severity: Medium, Title: "every listening port is allowed on purpose or closed"}
	socks, err := st.Sockets()
	if err != nil {
		c.Status, c.Message, c.Evidence = Skip, "the listening sockets cannot be read", []string{err.Error()}
		return c
	}
	if !eff.evaluated() {
		c.Status, c.Message, c.Evidence = Skip, "the firewall in force ("+eff.Name+") cannot be evaluated by the audit", eff.Evidence
		return c
	}
	var accidental []string
	for _, s := range Exposed(socks) {
		v, _ := eff.reach(s.Proto, s.Port)
		line := fmt.Sprintf("%s: %s", s, v.Reason)
		c.Evidence = append(c.Evidence, line)
		if v.Reachable && !v.OnPurpose {
			accidental = append(accidental, fmt.Sprintf("%d/%s", s.Port, s.Proto))
		}
	}
	if len(c.Evidence) == 0 {
		c.Status, c.Message = Pass, "nothing listens on a non-loopback address"
		return c
	}
	if len(accidental) == 0 {
		c.Status, c.Message = Pass, "every listening port is either allowed by a rule or refused"
		return c
	}
	c.Status = Fail
	c.Message = "reachable only because nothing refuses them: " + strings.Join(accidental, ", ")
	c.Fix = "for each port: palisade firewall allow PORT/PROTO if it should be public, otherwise stop the service or bind it to 127.0.0.1; then palisade firewall default deny"
	return c
}

func fwSSHLimit(ctx context.Context, st *State, eff *effective) Check {
	c := Check{ID: "firewall.ssh-limit", Severity: Medium, Title: "SSH has a connection limit (concurrent and/or new connections per source)"}
	ports := sshPorts(ctx, st)
	if eff.State == nil {
		c.Status = Fail
		c.Message = "no palisade or ufw policy limits connections to SSH"
		switch {
		case eff.Broken != nil:
			c.Status, c.Message = Skip, "firewall.rules does not parse (see firewall.enabled)"
		case eff.Name == "firewalld" || eff.Name == "nftables":
			c.Status, c.Message = Skip, eff.Name+" decides; the audit does not evaluate its rules"
		case eff.Name == "unknown":
			c.Status, c.Message = Skip, "the kernel's ruleset could not be read (needs root)"
		}
		c.Evidence = eff.Evidence
		c.Fix = fmt.Sprintf("palisade firewall limit %d/tcp --conn 2 --rate 1/1s", ports[0])
		return c
	}
	var missing []string
	for _, p := range ports {
		if r, ok := eff.State.Limited(p); ok {
			c.Evidence = append(c.Evidence, fmt.Sprintf("port %d/tcp: rule %d %s (%s)", p, r.Number, r.Text, r.Where))
		} else {
			v := eff.State.Reach("tcp", p, eff.Open)
			c.Evidence = append(c.Evidence, fmt.Sprintf("port %d/tcp: no limit; %s", p, v.Reason))
			missing = append(missing, strconv.Itoa(int(p)))
		}
	}
	if len(missing) == 0 {
		c.Status, c.Message = Pass, "every SSH port is behind a limit rule"
		return c
	}
	c.Status = Fail
	c.Message = "no limit rule decides for SSH port " + strings.Join(missing, ",") + ": a brute-forcer may open connections as fast as it likes"
	c.Fix = fmt.Sprintf("palisade firewall limit %s/tcp --conn 2 --rate 1/1s", missing[0])
	if eff.Name == FirewallUFW {
		c.Fix = fmt.Sprintf("ufw limit %s/tcp", missing[0])
	}
	return c
}

// unitEnabled returns the wants link of a systemd unit, if it is enabled.
func unitEnabled(st *State, unit string) (string, bool) {
	for _, target := range []string{"sysinit.target.wants", "multi-user.target.wants", "network-pre.target.wants", "basic.target.wants", "network.target.wants"} {
		p := "/etc/systemd/system/" + target + "/" + unit
		if st.Exists(p) {
			return st.Path(p), true
		}
	}
	return "", false
}

// fwFlush explains Debian's nftables.service, whose ruleset starts with
// "flush ruleset" and removes palisade's table at boot or on restart.
func fwFlush(ctx context.Context, st *State, eff *effective) Check {
	c := Check{ID: "firewall.flush-ruleset", Severity: Medium, Title: "nftables.service's flush ruleset does not remove palisade's policy"}
	link, enabled := unitEnabled(st, "nftables.service")
	conf := st.Path("/etc/nftables.conf")
	flushAt := ""
	if data, err := fsx.ReadFile(conf); err == nil {
		for i, line := range fsx.SplitLines(data) {
			if strings.Join(strings.Fields(line), " ") == "flush ruleset" {
				flushAt = fmt.Sprintf("%s:%d", conf, i+1)
				break
			}
		}
	}
	switch {
	case !enabled:
		c.Status, c.Message = Pass, "nftables.service is not enabled"
		return c
	case flushAt == "":
		c.Status, c.Message, c.Evidence = Pass, "nftables.service is enabled but its ruleset does not flush", []string{link}
		return c
	}
	c.Evidence = []string{"nftables.service enabled (" + link + ")", "flush ruleset (" + flushAt + ")"}
	if eff.Name != FirewallPalisade {
		c.Status = Pass
		c.Message = "nftables.service flushes every table at boot and on restart; palisade's policy is not in use, and the daemon re-installs its ban table"
		return c
	}
	if l, ok := unitEnabled(st, "palisade-firewall.service"); ok {
		c.Status = Pass
		c.Message = "palisade-firewall.service applies the policy after nftables.service at boot"
		c.Evidence = append(c.Evidence, "palisade-firewall.service enabled ("+l+")")
		return c
	}
	if d, err := st.Daemon(ctx); err == nil {
		c.Status = Warn
		c.Message = "nftables.service flushes the ruleset at boot or restart; the running daemon re-installs the policy within seconds, but until it starts the host has no policy"
		c.Evidence = append(c.Evidence, fmt.Sprintf("palisade daemon running (pid %d)", d.PID))
		c.Fix = "systemctl enable palisade-firewall.service"
		return c
	}
	c.Status = Fail
	c.Message = "nftables.service starts with flush ruleset: at boot (or systemctl restart nftables) it removes palisade's table, and nothing re-installs the policy"
	c.Fix = "systemctl enable palisade-firewall.service (applies the policy after nftables.service), and run the palisade daemon"
	return c
}

// fwDocker detects container ports that Docker publishes around the
// policy: DNATed packets are forwarded, never delivered to the input hook.
func fwDocker(ctx context.Context, st *State, eff *effective) Check {
	c := Check{ID: "firewall.docker", Severity: High, Title: "Docker does not publish ports around the firewall policy"}
	rs, rsErr := st.Ruleset(ctx)
	docker := st.Exists("/usr/bin/dockerd") || st.Exists("/usr/sbin/dockerd") || st.Exists("/run/docker.sock")
	if rs != nil {
		if _, ok := rs.Chain("ip", "nat", "DOCKER"); ok {
			docker = true
		}
	}
	var published []Published
	if rs != nil {
		published = rs.DockerPublished()
	}
	if socks, err := st.Sockets(); err == nil {
		for _, s := range socks {
			if s.Process == "docker-proxy" && !s.Loopback() && !slices.ContainsFunc(published, func(p Published) bool { return p.Proto == s.Proto && p.Port == s.Port }) {
				published = append(published, Published{Proto: s.Proto, Port: s.Port, Where: "docker-proxy " + s.String()})
				docker = true
			}
		}
	}
	if !docker {
		c.Status, c.Message = Skip, "Docker is not installed"
		return c
	}
	if rs == nil && rsErr != nil {
		c.Evidence = append(c.Evidence, "kernel ruleset not read: "+rsErr.Error())
	}
	if len(published) == 0 {
		c.Status, c.Message = Pass, "no container port is published"
		return c
	}
	var bypass []string
	for _, p := range published {
		line := fmt.Sprintf("%d/%s -> %s (%s)", p.Port, p.Proto, cmpOr(p.To, "container"), p.Where)
		if eff.State != nil {
			if v := eff.State.Reach(p.Proto, p.Port, eff.Open); v.OnPurpose {
				c.Evidence = append(c.Evidence, line+": allowed on purpose, "+v.Reason)
				continue
			}
		}
		c.Evidence = append(c.Evidence, line+": published to everybody")
		bypass = append(bypass, fmt.Sprintf("%d/%s", p.Port, p.Proto))
	}
	if len(bypass) == 0 {
		c.Status, c.Message = Pass, "every published container port is allowed on purpose"
		return c
	}
	c.Status = Fail
	c.Message = "Docker publishes " + strings.Join(bypass, ", ") + " with DNAT: those packets are forwarded to the container and never reach the input hook, so the policy's default deny does not apply to them"
	if rs != nil && len(rs.RulesOf("ip", "filter", "DOCKER-USER")) > 1 {
		c.Status = Warn
		c.Message += " (DOCKER-USER holds rules the audit does not evaluate)"
	}
	c.Fix = "publish them on loopback (docker run -p 127.0.0.1:PORT:PORT) or filter them in Docker's DOCKER-USER chain; if they are meant to be public, say so: palisade firewall allow PORT/PROTO"
	return c
}

// portsChecker reports services on well-known default ports and what is
// reachable from outside.
type portsChecker struct{}

func (portsChecker) Area() string { return AreaPorts }

func (portsChecker) Check(ctx context.Context, st *State) []Check {
	socks, err := st.Sockets()
	if err != nil {
		return []Check{{ID: "ports.sockets", Severity: Advice, Status: Skip, Title: "listening sockets (/proc/net)",
			Message: "the socket tables cannot be read", Evidence: []string{err.Error()}}}
	}
	out := []Check{
		defaultPort(socks, "ports.ssh-default", 22, "SSH", "palisade ssh harden --port 2222"),
		defaultPort(socks, "ports.ftp-default", 21, "FTP", "palisade ftp port 2121"),
	}
	exposed := Check{ID: "ports.exposed", Severity: Advice, Status: Info, Title: "what is reachable from outside"}
	eff := st.Effective(ctx)
	var lock []string
	if cf, err := st.Cloudflare(ctx); err == nil && cf.State == "on" && cf.Kernel.Installed {
		lock = strings.Split(cf.Ports, ",")
	}
	n, unknown := 0, 0
	for _, s := range Exposed(socks) {
		v, known := eff.reach(s.Proto, s.Port)
		verdict := "closed"
		switch {
		case !known:
			verdict = "not known"
			unknown++
			if eff.Name == "unknown" {
				v.Reason = "the kernel's ruleset could not be read (needs root)"
			}
		case v.Reachable && s.Proto == "tcp" && slices.Contains(lock, strconv.Itoa(int(s.Port))):
			verdict = "reachable from Cloudflare only"
			n++
		case v.Reachable:
			verdict = "reachable"
			n++
		}
		exposed.Evidence = append(exposed.Evidence, fmt.Sprintf("%s: %s (%s)", s, verdict, v.Reason))
	}
	exposed.Message = fmt.Sprintf("%d of %d non-loopback listening ports are reachable from outside (firewall: %s)", n, len(Exposed(socks)), eff.Name)
	if unknown > 0 {
		exposed.Message = fmt.Sprintf("%d non-loopback listening port(s): %d reachable from outside, %d not known (firewall: %s)", len(Exposed(socks)), n, unknown, eff.Name)
	}
	return append(out, exposed)
}

func defaultPort(socks []Socket, id string, port uint16, what, fix string) Check {
	c := Check{ID: id, Severity: Low, Title: fmt.Sprintf("no service listens on %s's default port %d", what, port)}
	l := Listening(socks, "tcp", port)
	if len(l) == 0 {
		c.Status, c.Message = Pass, fmt.Sprintf("nothing listens on port %d/tcp", port)
		return c
	}
	for _, s := range l {
		c.Evidence = append(c.Evidence, s.String())
	}
	c.Status = Fail
	c.Message = fmt.Sprintf("port %d receives nearly all automated %s scans; a port of your own cuts the noise (it is no defence on its own)", port, what)
	c.Fix = fix
	return c
}

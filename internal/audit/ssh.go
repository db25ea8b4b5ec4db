package audit

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/palisade-project/palisade/internal/harden/fsx"
	"github.com/palisade-project/palisade/internal/harden/sshd"
)

// sshItem is one finding of "palisade ssh audit" as an audit check: its
// title and the severity it has when it fails (the weight of its pass).
type sshItem struct {
	id, title string
	worst     Severity
	// always: reported as a pass when ssh audit does not mention it.
	always bool
}

// sshItems are the findings of internal/harden/sshd's audit, in report
// order. Findings not listed here are passed through with their own
// severity.
func sshItems() []sshItem {
	return []sshItem{
		{"password-auth", "password logins are refused (PasswordAuthentication no)", High, true},
		{"kbd-interactive", "no password prompt through keyboard-interactive/PAM", High, true},
		{"empty-passwords", "empty passwords are refused (PermitEmptyPasswords no)", Critical, true},
		{"pubkey-auth", "key logins are on (PubkeyAuthentication yes)", High, true},
		{"no-keys", "a login user has a usable authorized_keys entry", High, true},
		{"root-login", "root cannot log in with a password (PermitRootLogin)", High, true},
		{"match-passwordauthentication", "no Match block turns passwords back on", High, true},
		{"match-kbdinteractiveauthentication", "no Match block turns keyboard-interactive back on", High, true},
		{"match-permitrootlogin", "no Match block lets root log in with a password", High, true},
		{"match-permitemptypasswords", "no Match block allows empty passwords", Critical, true},
		{"match-block", "every Match block could be evaluated", Advice, false},
		{"default-port", "sshd does not listen on port 22", Low, true},
		{"listen-address", "addresses sshd listens on (ListenAddress)", Advice, false},
		{"max-auth-tries", "MaxAuthTries is 3 or less", Low, true},
		{"login-grace-time", "LoginGraceTime is between 1 and 60 seconds", Low, true},
		{"x11-forwarding", "X11Forwarding is off", Low, true},
		{"allow-users", "logins are limited to named users or groups (AllowUsers/AllowGroups)", Advice, true},
		{"socket-activation", "how sshd is started (ssh.socket)", Advice, false},
		{"jail", "palisade's sshd jail is enabled and covers the SSH ports", Medium, true},
	}
}

// sshChecker turns "palisade ssh audit" into checks, plus the second
// factor as an informational item.
type sshChecker struct{}

func (sshChecker) Area() string { return AreaSSH }

func (sshChecker) Check(ctx context.Context, st *State) []Check {
	if st.src.SSHD == nil {
		return []Check{{ID: "ssh.sshd", Severity: Advice, Status: Skip, Title: "the SSH server",
			Message: "no sshd configuration (" + st.Path(sshd.DefaultConfig) + "): openssh-server is not installed"}}
	}
	rep, err := st.SSHReport(ctx)
	if err != nil {
		if !st.src.Privileged {
			st.Limit("sshd's effective configuration (sshd -T reads the host keys, root-only)")
			return []Check{{ID: "ssh.sshd", Severity: High, Status: Skip, Title: "sshd's effective configuration (sshd -T)",
				Message: "sshd -T needs root: the SSH checks were skipped", Evidence: []string{err.Error()}}}
		}
		return []Check{{ID: "ssh.sshd", Severity: High, Status: Fail, Title: "sshd's effective configuration (sshd -T)",
			Message: "sshd does not accept its configuration: it will not start (or restart) with it", Evidence: []string{err.Error()},
			Fix: "sshd -t -f " + st.src.SSHD.Config + " names the problem; correct it, then palisade ssh audit"}}
	}
	byID := map[string][]sshd.Finding{}
	var order []string
	for _, f := range rep.Findings {
		if _, seen := byID[f.ID]; !seen {
			order = append(order, f.ID)
		}
		byID[f.ID] = append(byID[f.ID], f)
	}
	var out []Check
	known := map[string]bool{}
	for _, it := range sshItems() {
		known[it.id] = true
		fs, found := byID[it.id]
		switch {
		case found:
			out = append(out, sshCheck(it, fs, rep))
		case it.id == "jail":
			out = append(out, Check{ID: "ssh.jail", Severity: it.worst, Status: Skip, Title: it.title,
				Message: "palisade's configuration does not load (see jails.config)"})
		case it.always:
			out = append(out, Check{ID: "ssh." + it.id, Severity: it.worst, Status: Pass, Title: it.title,
				Message: "ssh audit reports no problem", Evidence: []string{fmt.Sprintf("sshd -T (%s), ports %v", rep.Config, rep.Ports)}})
		}
	}
	for _, id := range order {
		if !known[id] {
			fs := byID[id]
			out = append(out, sshCheck(sshItem{id: id, title: id, worst: sshSeverity(fs[0].Severity)}, fs, rep))
		}
	}
	return append(out, secondFactor(ctx, st))
}

// sshSeverity maps an ssh audit severity to the audit's.
func sshSeverity(s sshd.Severity) Severity {
	switch s {
	case sshd.Critical:
		return Critical
	case sshd.High:
		return High
	case sshd.Medium:
		return Medium
	case sshd.Low:
		return Low
	}
	return Advice
}

func sshCheck(it sshItem, fs []sshd.Finding, rep *sshd.Report) Check {
	c := Check{ID: "ssh." + it.id, Severity: it.worst, Title: it.title, Status: Pass}
	var msgs []string
	for _, f := range fs {
		ev := strings.TrimSpace(f.Setting + " " + f.Value)
		switch {
		case f.Where != "":
			ev = strings.TrimSpace(ev + " (" + f.Where + ")")
		case f.Setting != "":
			ev += " (default)"
		}
		if ev != "" {
			c.Evidence = append(c.Evidence, ev)
		}
		if !slices.Contains(msgs, f.Explanation) {
			msgs = append(msgs, f.Explanation)
		}
		switch f.Severity {
		case sshd.OK:
		case sshd.Info:
			if c.Status == Pass {
				c.Status = Info
			}
		default:
			c.Status = Fail
			if sev := sshSeverity(f.Severity); sev.weight() > 0 {
				c.Severity = sev
			}
			if c.Fix == "" {
				c.Fix = f.Fix
			}
		}
		if c.Status == Info && c.Fix == "" {
			c.Fix = f.Fix
		}
	}
	if c.Status == Info && it.worst.weight() > 0 {
		// A finding ssh audit calls informational (root may log in with a
		// key only) meets the recommendation.
		c.Status = Pass
	}
	c.Message = strings.Join(msgs, "; ")
	if len(c.Evidence) == 0 {
		c.Evidence = []string{fmt.Sprintf("sshd -T (%s), ports %v", rep.Config, rep.Ports)}
	}
	return c
}

// totpModules are PAM modules that ask for a second factor.
func totpModules() []string {
	return []string{"pam_google_authenticator.so", "pam_oath.so", "pam_totp.so", "pam_u2f.so", "pam_duo.so", "pam_yubico.so"}
}

// secondFactor reports whether logins need a second factor: an
// AuthenticationMethods list that combines a key with keyboard-interactive
// (PAM), and a TOTP or token module in sshd's PAM stack.
func secondFactor(ctx context.Context, st *State) Check {
	c := Check{ID: "ssh.second-factor", Severity: Advice, Status: Info, Title: "a second factor (TOTP/token through PAM) is asked after the key"}
	eff, err := st.SSHEffective(ctx)
	if err != nil {
		c.Status, c.Message = Skip, "sshd -T: "+err.Error()
		return c
	}
	methods := eff.Get("authenticationmethods")
	where := "default"
	if cfg, err := st.SSHConfig(); err == nil {
		if d, ok := cfg.First("authenticationmethods"); ok {
			where = d.Where()
		}
	}
	c.Evidence = append(c.Evidence, fmt.Sprintf("AuthenticationMethods %s (%s)", methods, where))
	combined := false
	for _, list := range strings.Fields(methods) {
		parts := strings.Split(list, ",")
		hasKey := slices.Contains(parts, "publickey")
		hasKbd := slices.ContainsFunc(parts, func(p string) bool { return strings.HasPrefix(p, "keyboard-interactive") })
		if hasKey && hasKbd {
			combined = true
		}
	}
	pamFile := st.Path("/etc/pam.d/sshd")
	module, moduleWhere := "", ""
	if data, err := fsx.ReadFile(pamFile); err == nil {
		for i, line := range fsx.SplitLines(data) {
			f := strings.Fields(line)
			if len(f) < 3 || strings.HasPrefix(f[0], "#") || f[0] != "auth" {
				continue
			}
			for _, w := range f[2:] {
				if slices.Contains(totpModules(), strings.TrimPrefix(w, "/lib/security/")) || slices.ContainsFunc(totpModules(), func(m string) bool { return strings.HasSuffix(w, "/"+m) }) {
					module, moduleWhere = w, fmt.Sprintf("%s:%d", pamFile, i+1)
				}
			}
		}
	}
	if module != "" {
		c.Evidence = append(c.Evidence, fmt.Sprintf("auth %s (%s)", module, moduleWhere))
	}
	pam := eff.Get("usepam") == "yes" && eff.Get("kbdinteractiveauthentication") == "yes"
	switch {
	case combined && module != "" && pam:
		c.Message = "logins need a key and then a code from " + module
	case combined && module != "":
		c.Message = "AuthenticationMethods asks for a second factor, but UsePAM or KbdInteractiveAuthentication is off: logins with it cannot succeed"
	case module != "":
		c.Message = module + " is in sshd's PAM stack, but AuthenticationMethods does not require keyboard-interactive after the key: key logins skip it"
	default:
		c.Message = "logins need the key only; a second factor (TOTP) protects a stolen key: install libpam-google-authenticator, add its auth line to /etc/pam.d/sshd and set AuthenticationMethods publickey,keyboard-interactive with KbdInteractiveAuthentication yes"
	}
	return c
}

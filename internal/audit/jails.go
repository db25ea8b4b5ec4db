package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/config"
)

// service is a server the guide wants a jail for.
type service struct {
	key       string
	name      string
	packages  []string
	binaries  []string
	processes []string
	// filters are the filter names of jails that protect it ("apache-"
	// stands for every filter of that family).
	filters []string
	// example is the jail.local section that enables the usual jail.
	example string
}

func guideServices() []service {
	return []service{
		{"sshd", "sshd", []string{"openssh-server"}, []string{"/usr/sbin/sshd"}, []string{"sshd"}, []string{"sshd"},
			"[sshd] enabled = true"},
		{"proftpd", "proftpd", []string{"proftpd-core", "proftpd-basic"}, []string{"/usr/sbin/proftpd"}, []string{"proftpd"}, []string{"proftpd"},
			"[proftpd] enabled = true, port = ftp,ftp-data,ftps,ftps-data, logpath = %(proftpd_log)s"},
		{"vsftpd", "vsftpd", []string{"vsftpd"}, []string{"/usr/sbin/vsftpd"}, []string{"vsftpd"}, []string{"vsftpd"},
			"[vsftpd] enabled = true, port = ftp,ftp-data,ftps,ftps-data, logpath = %(vsftpd_log)s"},
		{"postfix", "postfix", []string{"postfix"}, []string{"/usr/sbin/postfix"}, []string{"master", "smtpd"}, []string{"postfix"},
			"[postfix] enabled = true, port = smtp,submission,submissions, logpath = %(postfix_log)s"},
		{"qmail", "qmail", []string{"qmail", "netqmail"}, []string{"/var/qmail/bin/qmail-smtpd", "/usr/sbin/qmail-smtpd"}, []string{"qmail-smtpd", "qmail-send"}, []string{"qmail"},
			"[qmail] enabled = true, port = smtp, logpath = %(syslog_mail)s"},
		{"courier", "courier", []string{"courier-imap", "courier-pop", "courier-mta", "courier-authdaemon"}, []string{"/usr/sbin/courierlogger"}, []string{"couriertcpd", "courierlogger"}, []string{"courier-"},
			"[courier-auth] enabled = true, port = smtp,submission,imap,imaps,pop3,pop3s, logpath = %(syslog_mail)s"},
		{"dovecot", "dovecot", []string{"dovecot-core"}, []string{"/usr/sbin/dovecot"}, []string{"dovecot"}, []string{"dovecot"},
			"[dovecot] enabled = true, port = pop3,pop3s,imap,imaps,submission,submissions,sieve, logpath = %(dovecot_log)s"},
		{"apache", "apache", []string{"apache2"}, []string{"/usr/sbin/apache2", "/usr/sbin/httpd"}, []string{"apache2", "httpd"}, []string{"apache-"},
			"[apache-auth] enabled = true, port = http,https, logpath = %(apache_error_log)s"},
		{"nginx", "nginx", []string{"nginx", "nginx-core", "nginx-full", "nginx-light", "nginx-extras"}, []string{"/usr/sbin/nginx"}, []string{"nginx"}, []string{"nginx-"},
			"[nginx-http-auth] enabled = true, port = http,https, logpath = %(nginx_error_log)s"},
		{"lighttpd", "lighttpd", []string{"lighttpd"}, []string{"/usr/sbin/lighttpd"}, []string{"lighttpd"}, []string{"lighttpd-"},
			"[lighttpd-auth] enabled = true, port = http,https, logpath = /var/log/lighttpd/error.log"},
	}
}

// present says whether the service is installed or listening, and why.
func (sv service) present(st *State, socks []Socket) (bool, []string) {
	var why []string
	if p, ok := st.Installed(sv.packages...); ok {
		why = append(why, "package "+p+" installed")
	}
	for _, b := range sv.binaries {
		if st.Exists(b) {
			why = append(why, st.Path(b)+" exists")
			break
		}
	}
	for _, s := range socks {
		if slices.Contains(sv.processes, s.Process) && !s.Loopback() {
			why = append(why, "listening: "+s.String())
			break
		}
	}
	return len(why) > 0, why
}

// protects reports whether a jail's filter is one of the service's.
func (sv service) protects(j config.Jail) bool {
	name := strings.TrimSuffix(filepath.Base(j.Filter.Name), ".conf")
	for _, f := range sv.filters {
		if name == f || (strings.HasSuffix(f, "-") && strings.HasPrefix(name, f)) {
			return true
		}
	}
	return false
}

// jailsChecker checks that every service the guide names has a working
// jail, and the jails' settings.
type jailsChecker struct{}

func (jailsChecker) Area() string { return AreaJails }

func (jailsChecker) Check(ctx context.Context, st *State) []Check {
	cfgCheck := Check{ID: "jails.config", Severity: High, Title: "palisade's configuration loads"}
	cfg, err := st.Config()
	if err != nil {
		cfgCheck.Status, cfgCheck.Message = Fail, "the configuration does not load: the daemon refuses to start (or reload) with it"
		for _, e := range config.AsErrorList(err) {
			cfgCheck.Evidence = append(cfgCheck.Evidence, e.Error())
		}
		cfgCheck.Fix = "palisade config check --config-dir " + st.src.ConfigDir + " names each error; correct them"
		return []Check{cfgCheck}
	}
	cfgCheck.Status, cfgCheck.Message = Pass, fmt.Sprintf("%d jail(s), %d enabled", len(cfg.Jails), len(cfg.Enabled()))
	cfgCheck.Evidence = append(slices.Clone(cfg.Files), cfg.Warnings...)
	if _, err := os.Stat(st.src.ConfigDir); err != nil {
		cfgCheck.Message += " (" + st.src.ConfigDir + " does not exist: the built-in defaults)"
		if f2b := st.Path("/etc/fail2ban"); st.Exists("/etc/fail2ban/jail.conf") && filepath.Clean(f2b) != filepath.Clean(st.src.ConfigDir) {
			cfgCheck.Evidence = append(cfgCheck.Evidence, "fail2ban's configuration is in "+f2b+": palisade audit --config-dir "+f2b+" audits its jails (palisade daemon --config-dir "+f2b+" runs them)")
		}
	}
	out := []Check{cfgCheck}

	socks, _ := st.Sockets()
	daemon, derr := st.Daemon(ctx)
	for _, sv := range guideServices() {
		out = append(out, serviceJail(st, cfg, sv, socks, daemon, derr))
	}
	return append(out, ignoreAdmin(st, cfg), jailValues(cfg), sshdIncrement(cfg))
}

func serviceJail(st *State, cfg *config.Config, sv service, socks []Socket, daemon *DaemonStatus, derr error) Check {
	sev := Medium
	if sv.key == "sshd" {
		sev = High
	}
	c := Check{ID: "jails." + sv.key, Severity: sev, Title: sv.name + " has an enabled jail whose log is read"}
	ok, why := sv.present(st, socks)
	if !ok {
		c.Status, c.Message = Skip, sv.name+" is neither installed nor listening"
		return c
	}
	c.Evidence = why
	var jails []config.Jail
	for _, j := range cfg.Enabled() {
		if sv.protects(j) {
			jails = append(jails, j)
		}
	}
	fix := "add to " + st.src.ConfigDir + "/jail.local: " + sv.example + "; then palisade config check && palisade reload"
	if len(jails) == 0 {
		how := "is installed"
		if slices.ContainsFunc(why, func(w string) bool { return strings.HasPrefix(w, "listening: ") }) {
			how = "listens"
		}
		c.Status, c.Message, c.Fix = Fail, sv.name+" "+how+" but no enabled jail watches it: its failed logins are never banned", fix
		for _, j := range cfg.Jails {
			if sv.protects(j) {
				c.Evidence = append(c.Evidence, fmt.Sprintf("jail %s is disabled (%s)", j.Name, j.Where))
				c.Fix = "set enabled = true in [" + j.Name + "] of " + st.src.ConfigDir + "/jail.local; then palisade reload"
			}
		}
		return c
	}
	var problems []string
	working := 0
	for _, j := range jails {
		src, exists := logSource(st, j)
		line := fmt.Sprintf("jail %s (%s): filter %s, %s", j.Name, j.Where, j.Filter.Name, src)
		var problem string
		switch {
		case !exists:
			problem = "its log source does not exist"
		case derr != nil && errors.Is(derr, ErrNotReadable):
			problem = "the daemon could not be asked whether it reads it"
		case derr != nil:
			problem = "the daemon is not running: nothing reads it"
		default:
			dj, ok := daemon.Jail(j.Name)
			switch {
			case !ok:
				problem = "the running daemon does not run it (palisade reload?)"
			case dj.Error != "":
				problem = "the daemon reports: " + dj.Error
			case !dj.Health.Healthy:
				problem = "unhealthy: " + strings.Join(dj.Health.Problems, "; ")
			default:
				line += "; read by the daemon from " + strings.Join(dj.Sources, ", ")
			}
		}
		if problem != "" {
			line += "; " + problem
			problems = append(problems, j.Name+": "+problem)
		} else {
			working++
		}
		c.Evidence = append(c.Evidence, line)
	}
	switch {
	case working > 0:
		c.Status, c.Message = Pass, fmt.Sprintf("%d enabled jail(s) watch %s", working, sv.name)
	case derr != nil && errors.Is(derr, ErrNotReadable):
		c.Status, c.Message = Warn, "enabled, but whether the daemon reads its log needs root"
	default:
		c.Status, c.Message = Fail, strings.Join(problems, "; ")
		c.Fix = "systemctl enable --now palisade (then palisade status shows the jail's sources)"
		if slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, "does not exist") }) {
			c.Fix = "set logpath in [" + jails[0].Name + "] of " + st.src.ConfigDir + "/jail.local to the log " + sv.name + " writes (or backend = systemd); then palisade reload"
		}
	}
	return c
}

// logSource describes a jail's log source and whether it exists.
func logSource(st *State, j config.Jail) (string, bool) {
	src := j.Source
	journal := st.Exists("/var/log/journal") || st.Exists("/run/log/journal")
	if src.Journal && src.JournalPath != "" {
		return "journal files in " + src.JournalPath, st.Exists(src.JournalPath)
	}
	if src.Journal || len(src.Files) == 0 {
		return "journal", journal
	}
	var found []string
	for _, lp := range src.Files {
		m, _ := filepath.Glob(st.Path(lp.Pattern))
		found = append(found, m...)
	}
	if len(found) > 0 {
		return "logpath " + strings.Join(found, ", "), true
	}
	// Only palisade's built-in default (neither backend nor logpath
	// configured) falls back to the journal; a configured logpath is
	// waited for.
	if src.JournalFallback && journal {
		return "journal (logpath " + strings.Join(src.Patterns(), ", ") + " does not exist)", true
	}
	return "logpath " + strings.Join(src.Patterns(), ", ") + " (missing)", false
}

// ignoreAdmin checks that every enabled jail ignores the admin's address.
func ignoreAdmin(st *State, cfg *config.Config) Check {
	c := Check{ID: "jails.ignoreip-admin", Severity: Medium, Title: "ignoreip holds the admin's address (no ban locks you out)"}
	addr, by := st.AdminAddr()
	if !addr.IsValid() {
		c.Status, c.Message = Skip, "not run from an SSH session (no SSH_CONNECTION): the admin's address is unknown"
		return c
	}
	var missing []string
	for _, j := range cfg.Enabled() {
		covered := ""
		for _, ig := range j.IgnoreIP {
			if ig.Prefix.IsValid() && ig.Prefix.Contains(addr) {
				covered = ig.Text
				break
			}
		}
		if covered != "" {
			c.Evidence = append(c.Evidence, fmt.Sprintf("jail %s: ignoreip %s", j.Name, covered))
		} else {
			c.Evidence = append(c.Evidence, fmt.Sprintf("jail %s: %s not in ignoreip %s", j.Name, addr, ignoreText(j)))
			missing = append(missing, j.Name)
		}
	}
	c.Evidence = append([]string{"admin address " + addr.String() + " (" + by + ")"}, c.Evidence...)
	if len(missing) == 0 {
		c.Status, c.Message = Pass, "every enabled jail ignores "+addr.String()
		return c
	}
	c.Status = Fail
	c.Message = "a few mistyped passwords from " + addr.String() + " would ban you in: " + strings.Join(missing, ", ")
	c.Fix = "add " + addr.String() + " to ignoreip in [DEFAULT] of " + st.src.ConfigDir + "/jail.local (ignoreip = 127.0.0.1/8 ::1 " + addr.String() + "); then palisade reload"
	return c
}

func ignoreText(j config.Jail) string {
	var t []string
	for _, ig := range j.IgnoreIP {
		t = append(t, ig.Text)
	}
	if len(t) == 0 {
		return "(empty)"
	}
	return strings.Join(t, " ")
}

// Sane ranges of the jail settings.
const (
	minBanTime  = 10 * time.Minute
	minFindTime = time.Minute
	maxFindTime = 7 * 24 * time.Hour
	maxMaxRetry = 10
)

// jailValues checks bantime, findtime and maxretry of the enabled jails.
func jailValues(cfg *config.Config) Check {
	c := Check{ID: "jails.values", Severity: Low, Title: fmt.Sprintf("bantime ≥ %v, findtime %v-%v, maxretry 1-%d", minBanTime, minFindTime, maxFindTime, maxMaxRetry)}
	var bad []string
	for _, j := range cfg.Enabled() {
		var p []string
		if j.BanTime >= 0 && j.BanTime < minBanTime {
			p = append(p, fmt.Sprintf("bantime %v is too short to slow a bot down", j.BanTime))
		}
		if j.FindTime < minFindTime {
			p = append(p, fmt.Sprintf("findtime %v forgets failures before a slow attacker reaches maxretry", j.FindTime))
		}
		if j.FindTime > maxFindTime {
			p = append(p, fmt.Sprintf("findtime %v keeps failures for long (a user's typos add up)", j.FindTime))
		}
		if j.MaxRetry < 1 || j.MaxRetry > maxMaxRetry {
			p = append(p, fmt.Sprintf("maxretry %d", j.MaxRetry))
		}
		line := fmt.Sprintf("jail %s (%s): bantime %v, findtime %v, maxretry %d", j.Name, j.Where, j.BanTime, j.FindTime, j.MaxRetry)
		if j.BanTime < 0 {
			line = fmt.Sprintf("jail %s (%s): bantime permanent, findtime %v, maxretry %d", j.Name, j.Where, j.FindTime, j.MaxRetry)
		}
		if len(p) > 0 {
			line += ": " + strings.Join(p, "; ")
			bad = append(bad, j.Name)
		}
		c.Evidence = append(c.Evidence, line)
	}
	switch {
	case len(c.Evidence) == 0:
		c.Status, c.Message = Skip, "no jail is enabled"
	case len(bad) == 0:
		c.Status, c.Message = Pass, "every enabled jail's bantime, findtime and maxretry are sane"
	default:
		c.Status = Fail
		c.Message = "unusual values in " + strings.Join(bad, ", ")
		c.Fix = "set bantime = 1h, findtime = 10m, maxretry = 5 in the jail's section of " + cfg.Dir + "/jail.local; then palisade reload"
	}
	return c
}

// sshdIncrement checks that repeat offenders of sshd get longer bans.
func sshdIncrement(cfg *config.Config) Check {
	c := Check{ID: "jails.sshd-increment", Severity: Medium, Title: "repeat offenders get longer bans in sshd (bantime.increment)"}
	var jails []config.Jail
	for _, j := range cfg.Enabled() {
		if (service{filters: []string{"sshd"}}).protects(j) {
			jails = append(jails, j)
		}
	}
	if len(jails) == 0 {
		c.Status, c.Message = Skip, "no sshd jail is enabled (see jails.sshd)"
		return c
	}
	var off []string
	for _, j := range jails {
		c.Evidence = append(c.Evidence, fmt.Sprintf("jail %s (%s): bantime.increment = %v", j.Name, j.Where, j.Increment.Enabled))
		if !j.Increment.Enabled {
			off = append(off, j.Name)
		}
	}
	if len(off) == 0 {
		c.Status, c.Message = Pass, "a returning brute-forcer is banned longer each time"
		return c
	}
	c.Status = Fail
	c.Message = "a brute-forcer banned for " + jails[0].BanTime.String() + " comes back and tries again, forever"
	c.Fix = "set bantime.increment = true in [" + off[0] + "] of " + cfg.Dir + "/jail.local; then palisade reload"
	return c
}

package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/health"
	"github.com/palisade-project/palisade/internal/notify"
)

// observeDir writes palisade.local and jail.local (and extra files) into
// a temp dir.
func observeDir(t *testing.T, palisade, jail string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("palisade.local", palisade, 0o644)
	if jail != "" {
		write("jail.local", jail, 0o644)
	}
	for name, text := range files {
		write(name, text, 0o600)
	}
	return dir
}

const issueExample = `[notify:admin]
type = smtp            ; smtp | webhook
server = mail.example.org:587
tls = starttls         ; none | starttls | implicit
user = palisade
password_file = smtp.pass
from = palisade@example.org
to = admin@example.org, Ops Team <ops@example.org>
events = ban, health   ; ban unban escalation health lifecycle
jails =                ; empty: all jails
group_wait = 60s
max_per_hour = 20
digest =               ; e.g. daily 07:00

[notify:chat]
type = webhook
url = https://hooks.example.org/T000
format = json          ; json | slack | ntfy
secret_file = hook.secret

[metrics]
listen = 127.0.0.1:9539

[health]
interval = 5s
grace = off
idle = 6h
`

func TestObserveIssueExample(t *testing.T) {
	dir := observeDir(t, issueExample, "[sshd]\nenabled = true\nhealth.idle = 1d\nhealth.nomatch = 12h\n[quiet]\nenabled = true\nfilter = sshd\nlogpath = /var/log/q.log\nhealth.idle = off\n",
		map[string]string{"smtp.pass": "pa55word\n", "hook.secret": "s3cret"})
	cfg, err := Load(dir, LoadOptions{Builtin: builtin, Services: testServices})
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.Observe
	if len(o.Notify) != 2 {
		t.Fatalf("routes %+v", o.Notify)
	}
	a, c := o.Notify[0], o.Notify[1]
	if a.Name != "admin" || a.Type != notify.TypeSMTP || a.Events != notify.EventBan|notify.EventHealth || len(a.Jails) != 0 ||
		a.GroupWait != time.Minute || a.MaxPerHour != 20 || a.Digest != nil || a.Retries != notify.DefaultRetries {
		t.Errorf("admin route %+v", a)
	}
	s := a.SMTP
	if s.Host != "mail.example.org" || s.Port != 587 || s.TLS != notify.TLSStartTLS || s.User != "palisade" || s.Password != "pa55word" ||
		s.From != "palisade@example.org" || strings.Join(s.To, ",") != "admin@example.org,ops@example.org" || s.Auth != "auto" {
		t.Errorf("smtp %+v", s)
	}
	if !strings.HasSuffix(a.Where, "palisade.local:2") {
		t.Errorf("where %q", a.Where)
	}
	if c.Name != "chat" || c.Type != notify.TypeWebhook || c.Webhook.URL != "https://hooks.example.org/T000" ||
		c.Webhook.Format != notify.FormatJSON || string(c.Webhook.Secret) != "s3cret" || c.Webhook.SignatureHeader != notify.DefaultSignatureHeader {
		t.Errorf("chat route %+v", c)
	}
	if o.Metrics.Listen != "127.0.0.1:9539" {
		t.Errorf("metrics %+v", o.Metrics)
	}
	want := health.Config{Interval: 5 * time.Second, Grace: -1, Idle: 6 * time.Hour,
		Jails: map[string]health.Thresholds{"sshd": {Idle: 24 * time.Hour, NoMatch: 12 * time.Hour}, "quiet": {Idle: -1}}}
	if o.Health.Interval != want.Interval || o.Health.Grace != want.Grace || o.Health.Idle != want.Idle || o.Health.NoMatch != 0 ||
		len(o.Health.Jails) != 2 || o.Health.Jails["sshd"] != want.Jails["sshd"] || o.Health.Jails["quiet"] != want.Jails["quiet"] {
		t.Errorf("health %+v", o.Health)
	}
	for _, w := range cfg.Warnings {
		if strings.Contains(w, "readable by other") {
			t.Errorf("warning for a 0600 secret: %s", w)
		}
	}
}

func TestObserveDefaultsAndInheritance(t *testing.T) {
	dir := observeDir(t, `[notify]
server = smtp.example.org:465
user = palisade
password_file = /PASS
from = palisade@example.org
group_wait = 10s

[notify:ops]
to = ops@example.org
digest = daily 07:30
jails = sshd

[notify:boss]
to = boss@example.org
group_wait = 5m
events = health
enabled = yes

[notify:off]
to = x@example.org
enabled = no

[notify:hook]
url_file = hook.url
format = mattermost
`, "", map[string]string{"hook.url": "http://127.0.0.1:8065/hooks/abc\n"})
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte("pw"), 0o644); err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(filepath.Join(dir, "palisade.local"))
	if err := os.WriteFile(filepath.Join(dir, "palisade.local"), []byte(strings.Replace(string(text), "/PASS", pass, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(dir, LoadOptions{Builtin: builtin, Services: testServices})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, r := range cfg.Observe.Notify {
		names = append(names, r.Name)
	}
	get := func(name string) notify.RouteConfig {
		for _, r := range cfg.Observe.Notify {
			if r.Name == name {
				return r
			}
		}
		t.Fatalf("no route %s in %v", name, names)
		return notify.RouteConfig{}
	}
	if len(names) != 3 || strings.Contains(strings.Join(names, ","), "off") {
		t.Fatalf("routes %v (the disabled one must be absent)", names)
	}
	ops := get("ops")
	if ops.SMTP.Host != "smtp.example.org" || ops.SMTP.Port != 465 || ops.SMTP.TLS != notify.TLSImplicit || ops.SMTP.Password != "pw" ||
		ops.GroupWait != 10*time.Second || ops.Digest == nil || *ops.Digest != (notify.Digest{Hour: 7, Minute: 30}) || ops.Jails[0] != "sshd" {
		t.Errorf("ops %+v", ops)
	}
	if boss := get("boss"); boss.GroupWait != 5*time.Minute || boss.Events != notify.EventHealth || boss.SMTP.To[0] != "boss@example.org" {
		t.Errorf("boss %+v", boss)
	}
	if hook := get("hook"); hook.Type != notify.TypeWebhook || hook.Webhook.URL != "http://127.0.0.1:8065/hooks/abc" || hook.Webhook.Format != notify.FormatSlack {
		t.Errorf("hook %+v", hook)
	}
	warned := false
	for _, w := range cfg.Warnings {
		warned = warned || strings.Contains(w, "readable by other users (mode 0644)")
	}
	if !warned {
		t.Errorf("no warning for a world-readable password file: %v", cfg.Warnings)
	}
}

func TestObserveErrorsNameFileLineAndKey(t *testing.T) {
	for _, c := range []struct {
		name, text, want string
	}{
		{"type", "[notify:a]\ntype = pigeon\n", "palisade.local:2: [notify:a] type: unknown route type"},
		{"tls", "[notify:a]\nserver = mail.example.org\ntls = sometimes\nfrom = a@example.org\nto = b@example.org\n", "palisade.local:3: [notify:a] tls: unknown tls mode"},
		{"no to", "[notify:a]\nfrom = a@example.org\n", "[notify:a] to: an smtp route needs at least one to address"},
		{"bad to", "[notify:a]\nfrom = a@example.org\nto = not-an-address\n", "palisade.local:3: [notify:a] to: \"not-an-address\" is not a mail address"},
		{"plain password", "[notify:a]\npassword = hunter2\n", "palisade.local:2: [notify:a] password: unknown option: put secrets in a file"},
		{"no password file", "[notify:a]\nuser = u\npassword_file = /nonexistent/pass\nfrom = a@example.org\nto = b@example.org\n", "palisade.local:3: [notify:a] password_file: open /nonexistent/pass"},
		{"password in clear", "[notify:a]\nserver = mail.example.org:25\ntls = none\nuser = u\npassword_file = pass\nfrom = a@example.org\nto = b@example.org\n", "palisade.local:3: [notify:a] tls: refusing to send a password without TLS"},
		{"events", "[notify:a]\nevents = ban, everything\nfrom = a@example.org\nto = b@example.org\n", "palisade.local:2: [notify:a] events: unknown event \"everything\""},
		{"digest", "[notify:a]\ndigest = weekly\nfrom = a@example.org\nto = b@example.org\n", "palisade.local:2: [notify:a] digest:"},
		{"group_wait", "[notify:a]\ngroup_wait = soon\nfrom = a@example.org\nto = b@example.org\n", "palisade.local:2: [notify:a] group_wait:"},
		{"url", "[notify:a]\ntype = webhook\nurl = ftp://example.org/x\n", "palisade.local:3: [notify:a] url:"},
		{"format", "[notify:a]\nurl = https://example.org/x\nformat = xml\n", "palisade.local:3: [notify:a] format: unknown format"},
		{"name", "[notify:a b]\nto = b@example.org\n", "[notify:a b] invalid route name"},
		{"inherited", "[notify]\nmax_per_hour = lots\n[notify:a]\nfrom = a@example.org\nto = b@example.org\n[notify:b]\nfrom = a@example.org\nto = b@example.org\n", "palisade.local:2: [notify] max_per_hour:"},
		{"unknown", "[notify:a]\nfrom = a@example.org\nto = b@example.org\ngroupwait = 1m\n", "palisade.local:4: [notify:a] groupwait: unknown option"},
		{"metrics", "[metrics]\nlisten = 9539\n", "palisade.local:2: [metrics] listen:"},
		{"metrics key", "[metrics]\nport = 9539\n", "palisade.local:2: [metrics] port: unknown option"},
		{"health", "[health]\nidle = sometimes\n", "palisade.local:2: [health] idle:"},
		{"ca_file", "[notify:a]\nfrom = a@example.org\nto = b@example.org\nca_file = pass\n", "palisade.local:4: [notify:a] ca_file: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := observeDir(t, c.text, "", map[string]string{"pass": "pw"})
			_, err := Load(dir, LoadOptions{Builtin: builtin, Services: testServices})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if c.name == "inherited" && strings.Count(err.Error(), "max_per_hour") != 1 {
				t.Errorf("an inherited error reported more than once: %v", err)
			}
		})
	}
	dir := observeDir(t, "[Definition]\nloglevel = INFO\n", "[sshd]\nenabled = true\nhealth.nomatch = never\n", nil)
	if _, err := Load(dir, LoadOptions{Builtin: builtin, Services: testServices}); err == nil || !strings.Contains(err.Error(), "jail.local:3: [sshd] health.nomatch:") {
		t.Fatalf("jail health option: %v", err)
	}
}

func TestNoObserveSectionsMeansNothing(t *testing.T) {
	cfg, err := Load(observeDir(t, "[Definition]\nloglevel = INFO\n", "", nil), LoadOptions{Builtin: builtin, Services: testServices})
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.Observe; len(o.Notify) != 0 || o.Metrics.Enabled() || o.Health.Idle != 0 || o.Health.NoMatch != 0 {
		t.Fatalf("observe %+v", o)
	}
}

func TestFail2banMailActionsMapToMailer(t *testing.T) {
	jail := `[DEFAULT]
destemail = admin@example.org
sender = fail2ban@<fq-hostname>

[sshd]
enabled = true
action = nftables-multiport[name=sshd, port=ssh]
         sendmail-whois[name=sshd, dest="%(destemail)s", sender="%(sender)s"]

[proftpd]
enabled = true
logpath = /var/log/proftpd.log
action = iptables-multiport
         mail-whois[dest=%(destemail)s]

[nginx]
enabled = true
filter = sshd
logpath = /var/log/nginx.log
action = nftables-multiport
         sendmail-whois-lines[dest=web@example.org]
`
	dir := observeDir(t, "[notify]\nserver = 127.0.0.1:2525\ngroup_wait = 2m\n", jail, nil)
	cfg, err := Load(dir, LoadOptions{Builtin: builtin, Services: testServices})
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Observe.Notify
	if len(r) != 2 {
		t.Fatalf("routes %+v", r)
	}
	a, b := r[0], r[1]
	if a.Name != "fail2ban-mail-2" {
		a, b = b, a
	}
	// nginx sorts first: its route is the first one built.
	if b.Name != "fail2ban-mail" || strings.Join(b.Jails, ",") != "nginx" || !b.Lines || b.SMTP.To[0] != "web@example.org" || b.SMTP.From != "fail2ban@<fq-hostname>" {
		t.Errorf("lines route %+v", b)
	}
	if strings.Join(a.Jails, ",") != "proftpd,sshd" || a.Lines || a.SMTP.To[0] != "admin@example.org" || a.SMTP.From != "fail2ban@<fq-hostname>" ||
		a.SMTP.Host != "127.0.0.1" || a.SMTP.Port != 2525 || a.SMTP.TLS != notify.TLSNone || a.Events != notify.EventBan || a.GroupWait != 2*time.Minute {
		t.Errorf("mail route %+v", a)
	}
	found := false
	for _, w := range cfg.Warnings {
		found = found || strings.Contains(w, "jails proftpd, sshd: fail2ban mail actions (mail-whois, sendmail-whois) are sent by palisade's built-in mailer as route fail2ban-mail-2")
	}
	if !found {
		t.Errorf("warnings %v", cfg.Warnings)
	}
	if !IsMailAction("sendmail-whois-ipjailmatches") || !IsMailAction("mail.conf") || IsMailAction("mailgun") || IsMailAction("nftables") {
		t.Error("IsMailAction")
	}
	cfg, err = Load(observeDir(t, "[notify]\nfail2ban_mail = no\n", jail, nil), LoadOptions{Builtin: builtin, Services: testServices})
	if err != nil || len(cfg.Observe.Notify) != 0 {
		t.Fatalf("fail2ban_mail = no: %v %+v", err, cfg.Observe.Notify)
	}
}

// TestFail2banActionMW reads Debian's fail2ban jail.conf (at run time,
// from the installed package) with a jail.local that picks action_mw.
func TestFail2banActionMW(t *testing.T) {
	if _, err := os.Stat("/etc/fail2ban/jail.conf"); err != nil {
		t.Skip("fail2ban not installed (Debian package fail2ban)")
	}
	dir := t.TempDir()
	for _, f := range []string{"jail.conf", "paths-common.conf", "paths-debian.conf"} {
		b, err := os.ReadFile(filepath.Join("/etc/fail2ban", f))
		if err != nil {
			t.Skip(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "jail.local"), []byte("[DEFAULT]\ndestemail = admin@example.org\naction = %(action_mwl)s\n[sshd]\nenabled = true\nlogpath = /var/log/auth.log\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(dir, LoadOptions{Builtin: builtin, Services: testServices})
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Observe.Notify
	if len(r) != 1 || r[0].Jails[0] != "sshd" || r[0].SMTP.To[0] != "admin@example.org" || r[0].SMTP.From != "root@<fq-hostname>" || !r[0].Lines ||
		r[0].SMTP.Host != "localhost" || r[0].SMTP.Port != 25 {
		t.Fatalf("routes %+v", r)
	}
}

package config

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/config/ini"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/health"
	"github.com/palisade-project/palisade/internal/metrics"
	"github.com/palisade-project/palisade/internal/notify"
)

// Observe is what palisade tells and shows about itself: notification
// routes ([notify] and [notify:NAME] of palisade.conf/.local, plus the
// fail2ban mail actions of jails), metrics ([metrics]) and the health
// watchdog ([health] and the jails' health.* options).
type Observe struct {
	Notify  []notify.RouteConfig
	Metrics metrics.Config
	Health  health.Config
}

// notifyPrefix starts a route's section name.
const notifyPrefix = "notify:"

// routeKeys are the options of [notify:NAME] (and, as defaults, of
// [notify]).
var routeKeys = []string{
	"enabled", "type", "events", "jails", "group_wait", "max_per_hour", "digest", "lines", "maxlines",
	"timeout", "retries", "queue", "subject_prefix",
	"server", "tls", "ca_file", "user", "password_file", "auth", "from", "to",
	"url", "url_file", "format", "secret_file", "signature_header", "token_file",
}

// IsMailAction reports whether a fail2ban action name is one of its mail
// actions (mail, mail-whois*, sendmail, sendmail-*): palisade never runs
// them, and maps them to its built-in mailer instead.
func IsMailAction(name string) bool {
	n := strings.ToLower(strings.TrimSpace(name))
	n = strings.TrimSuffix(strings.TrimSuffix(n, ".conf"), ".local")
	return n == "mail" || n == "sendmail" || strings.HasPrefix(n, "mail-") || strings.HasPrefix(n, "sendmail-")
}

// loadObserve reads the [notify*], [metrics] and [health] sections of
// palisade.conf/.local, the jails' health options (from jc, the jail
// configuration) and maps fail2ban mail actions of enabled jails to mail
// routes.
func loadObserve(dir string, loader *ini.Loader, jc *ini.Config, jails []Jail) (Observe, []string, ErrorList) {
	var obs Observe
	var errs ErrorList
	var warns []string
	pc, err := loader.Read("palisade")
	if err != nil {
		pc = ini.New() // no palisade.conf at all (or its error is reported by loadDaemon)
	}
	base := &reader{c: pc, section: "notify"}
	if pc.HasSection("notify") {
		errs = append(errs, unknownKeys(pc, "notify", append([]string{"fail2ban_mail"}, routeKeys...))...)
	}
	for _, sec := range pc.Sections() {
		name, ok := strings.CutPrefix(sec, notifyPrefix)
		if !ok {
			continue
		}
		r := &reader{c: pc, section: sec}
		if !validRouteName(name) {
			r.failSection("invalid route name %q (use letters, digits, '-', '_', '.'; at most 64)", name)
			errs = append(errs, r.errs...)
			continue
		}
		errs = append(errs, unknownKeys(pc, sec, routeKeys)...)
		rc, enabled := readRoute(dir, name, r, base, jails, &warns)
		errs = append(errs, r.errs...)
		if enabled && len(r.errs) == 0 {
			obs.Notify = append(obs.Notify, rc)
		}
	}
	if base.boolean("fail2ban_mail", true) {
		routes, mwarns, merrs := mailRoutes(dir, base, jails, obs.Notify)
		obs.Notify = append(obs.Notify, routes...)
		warns = append(warns, mwarns...)
		errs = append(errs, merrs...)
	}
	// [notify] values are read once per route: report each problem once.
	seen := map[string]bool{}
	for _, e := range base.errs {
		if !seen[e.Error()] {
			seen[e.Error()] = true
			errs = append(errs, e)
		}
	}

	if pc.HasSection("metrics") {
		mr := &reader{c: pc, section: "metrics"}
		errs = append(errs, unknownKeys(pc, "metrics", []string{"listen"})...)
		if l, err := metrics.ParseListen(mr.str("listen", "")); err != nil {
			mr.fail("listen", "%v", err)
		} else {
			obs.Metrics.Listen = l
		}
		errs = append(errs, mr.errs...)
	}

	hr := &reader{c: pc, section: "health"}
	if pc.HasSection("health") {
		errs = append(errs, unknownKeys(pc, "health", []string{"interval", "grace", "idle", "nomatch"})...)
		obs.Health.Interval = hr.fineDuration("interval", health.DefaultInterval)
		if obs.Health.Interval == 0 {
			hr.fail("interval", "must be longer than 0")
		}
		obs.Health.Grace = offDuration(hr, "grace", health.DefaultGrace)
		obs.Health.Idle = max(offDuration(hr, "idle", 0), 0)
		obs.Health.NoMatch = max(offDuration(hr, "nomatch", 0), 0)
	}
	errs = append(errs, hr.errs...)
	if jc != nil {
		for _, j := range jails {
			if !j.Enabled {
				continue
			}
			jr := &reader{c: jc, section: j.Name}
			t := health.Thresholds{Idle: offDuration(jr, "health.idle", 0), NoMatch: offDuration(jr, "health.nomatch", 0)}
			errs = append(errs, jr.errs...)
			if t != (health.Thresholds{}) {
				if obs.Health.Jails == nil {
					obs.Health.Jails = map[string]health.Thresholds{}
				}
				obs.Health.Jails[j.Name] = t
			}
		}
	}
	return obs, warns, errs
}

// fineDuration reads a duration that may be shorter than a second: the
// one duration syntax (fail2ban's 600, 10m, 1h, 2d or Go's 500ms, 1m30s).
func (r *reader) fineDuration(key string, def time.Duration) time.Duration {
	return r.duration(key, def, false)
}

// offDuration reads a fineDuration that may be "off" (returned as -1) or
// "0" (also off).
func offDuration(r *reader, key string, def time.Duration) time.Duration {
	s := strings.ToLower(r.str(key, ""))
	switch s {
	case "":
		return def
	case "off", "no", "none", "0":
		return -1
	}
	return r.fineDuration(key, def)
}

func (r *reader) failSection(format string, args ...any) {
	e := &Error{Section: r.section, Msg: fmt.Sprintf(format, args...)}
	if keys, err := r.c.Options(r.section, false); err == nil && len(keys) > 0 {
		if v, ok := r.c.Raw(r.section, keys[0]); ok {
			e.File, e.Line = v.File, v.Line
		}
	}
	r.errs = append(r.errs, e)
}

func unknownKeys(c *ini.Config, section string, known []string) ErrorList {
	var errs ErrorList
	keys, _ := c.Options(section, false)
	for _, k := range keys {
		if slices.Contains(known, k) {
			continue
		}
		e := &Error{Section: section, Key: k, Msg: "unknown option"}
		if k == "password" || k == "secret" || k == "token" {
			e.Msg = "unknown option: put secrets in a file and name it with " + k + "_file"
		}
		if v, ok := c.Raw(section, k); ok {
			e.File, e.Line = v.File, v.Line
		}
		errs = append(errs, e)
	}
	return errs
}

func validRouteName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// routeReader reads a route's options, falling back to [notify] for the
// options the route's own section does not set.
type routeReader struct {
	own, base *reader
}

func (rr routeReader) pick(key string) *reader {
	if rr.own.c.HasOption(rr.own.section, key, false) || rr.base == nil || !rr.base.c.HasOption("notify", key, false) {
		return rr.own
	}
	return rr.base
}

func (rr routeReader) str(key, def string) string { return rr.pick(key).str(key, def) }

// secretFile reads a secret from a file (relative paths are relative to
// the configuration directory); the file should not be readable by
// others.
func (rr routeReader) secretFile(dir, key string, warns *[]string) []byte {
	r := rr.pick(key)
	p := r.str(key, "")
	if p == "" {
		return nil
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		r.fail(key, "%v", err)
		return nil
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" || strings.ContainsAny(s, "\r\n") {
		r.fail(key, "%s must hold the secret on one line", p)
		return nil
	}
	if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
		*warns = append(*warns, fmt.Sprintf("[%s] %s: %s is readable by other users (mode %04o); chmod 600 it", r.section, key, p, fi.Mode().Perm()))
	}
	return []byte(s)
}

func readRoute(dir, name string, own, base *reader, jails []Jail, warns *[]string) (notify.RouteConfig, bool) {
	rr := routeReader{own: own, base: base}
	rc := notify.RouteConfig{Name: name}
	if v, ok := own.c.Raw(own.section, "type"); ok {
		rc.Where = v.Where()
	}
	enabled := rr.pick("enabled").boolean("enabled", true)
	rc.Type = strings.ToLower(rr.str("type", ""))
	if rc.Type == "" {
		rc.Type = notify.TypeSMTP
		if rr.str("url", "") != "" || rr.str("url_file", "") != "" {
			rc.Type = notify.TypeWebhook
		}
	}
	commonRoute(&rc, rr, jails, warns)
	switch rc.Type {
	case notify.TypeSMTP:
		smtpServer(dir, &rc, rr, warns)
		smtpEnvelope(&rc, rr)
	case notify.TypeWebhook:
		webhookRoute(dir, &rc, rr, warns)
	default:
		rr.pick("type").fail("type", "unknown route type %q (want smtp or webhook)", rc.Type)
	}
	return rc, enabled
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(c rune) bool { return c == ',' || c == ' ' || c == '\t' || c == '\n' })
}

// commonRoute reads the options every route type has.
func commonRoute(rc *notify.RouteConfig, rr routeReader, jails []Jail, warns *[]string) {
	r := rr.pick("events")
	rc.Events = notify.DefaultEvents
	if r.c.HasOption(r.section, "events", false) {
		ev, err := notify.ParseEvents(r.str("events", ""))
		if err != nil {
			r.fail("events", "%v", err)
		}
		rc.Events = ev
	}
	r = rr.pick("jails")
	for _, j := range splitList(r.str("jails", "")) {
		if firewall.CheckJailName(j) != nil {
			r.fail("jails", "invalid jail name %q", j)
			continue
		}
		if !slices.ContainsFunc(jails, func(x Jail) bool { return x.Name == j }) {
			*warns = append(*warns, fmt.Sprintf("[%s] jails: no jail named %s is configured", rr.own.section, j))
		}
		rc.Jails = append(rc.Jails, j)
	}
	rc.GroupWait = rr.pick("group_wait").fineDuration("group_wait", notify.DefaultGroupWait)
	rc.MaxPerHour = rr.pick("max_per_hour").integer("max_per_hour", notify.DefaultMaxPerHour, 0, 100000)
	r = rr.pick("digest")
	d, err := notify.ParseDigest(r.str("digest", ""))
	if err != nil {
		r.fail("digest", "%v", err)
	}
	rc.Digest = d
	rc.Lines = rr.pick("lines").boolean("lines", false)
	rc.MaxLines = rr.pick("maxlines").integer("maxlines", notify.DefaultMaxLines, 1, 100)
	rc.Timeout = rr.pick("timeout").fineDuration("timeout", notify.DefaultTimeout)
	if rc.Timeout == 0 {
		rr.pick("timeout").fail("timeout", "must be longer than 0")
	}
	rc.Retries = rr.pick("retries").integer("retries", notify.DefaultRetries, 0, 10)
	rc.Queue = rr.pick("queue").integer("queue", notify.DefaultQueue, 1, 1000000)
	rc.SubjectPrefix = notify.Clean(rr.str("subject_prefix", "[palisade]"), 64)
}

// smtpServer reads an SMTP route's server, TLS and authentication.
func smtpServer(dir string, rc *notify.RouteConfig, rr routeReader, warns *[]string) {
	r := rr.pick("server")
	host, port, mode, err := notify.ParseServer(r.str("server", "localhost"), rr.str("tls", ""))
	if err != nil {
		if strings.Contains(err.Error(), "tls mode") {
			rr.pick("tls").fail("tls", "%v", err)
		} else {
			r.fail("server", "%v", err)
		}
	}
	rc.SMTP = notify.SMTPConfig{Host: host, Port: port, TLS: mode, CAFile: caFile(dir, rr),
		User: rr.str("user", ""), Auth: strings.ToLower(rr.str("auth", "auto"))}
	if !notify.ValidAuth(rc.SMTP.Auth) {
		rr.pick("auth").fail("auth", "unknown mechanism %q (want auto, plain, login, cram-md5, scram-sha-1 or scram-sha-256)", rc.SMTP.Auth)
	}
	rc.SMTP.Password = string(rr.secretFile(dir, "password_file", warns))
	switch {
	case rc.SMTP.User != "" && rr.str("password_file", "") == "":
		rr.pick("user").fail("user", "a user needs a password_file")
	case rc.SMTP.User != "" && mode == notify.TLSNone && err == nil && !loopbackHost(host):
		rr.pick("tls").fail("tls", "refusing to send a password without TLS to %s (use starttls or implicit)", host)
	}
}

// hostTags are the fail2ban tags a sender address may hold; the mailer
// fills them in with the host name.
var hostTags = strings.NewReplacer("<fq-hostname>", "localhost", "<sh-hostname>", "localhost")

// parseFrom validates a sender, keeping fail2ban's host-name tags.
func parseFrom(s string) (string, error) {
	a, err := notify.ParseAddress(hostTags.Replace(s))
	if err != nil {
		return "", err
	}
	if strings.Contains(s, "<fq-hostname>") || strings.Contains(s, "<sh-hostname>") {
		return strings.TrimSpace(s), nil
	}
	return a, nil
}

// smtpEnvelope reads an SMTP route's from and to.
func smtpEnvelope(rc *notify.RouteConfig, rr routeReader) {
	r := rr.pick("from")
	if s := r.str("from", ""); s == "" {
		r.fail("from", "an smtp route needs a from address")
	} else if a, err := parseFrom(s); err != nil {
		r.fail("from", "%v", err)
	} else {
		rc.SMTP.From = a
	}
	r = rr.pick("to")
	to, err := notify.ParseAddressList(r.str("to", ""))
	switch {
	case err != nil:
		r.fail("to", "%v", err)
	case len(to) == 0:
		r.fail("to", "an smtp route needs at least one to address")
	}
	rc.SMTP.To = to
}

// caFile reads ca_file and checks that it holds a PEM certificate.
func caFile(dir string, rr routeReader) string {
	r := rr.pick("ca_file")
	p := relPath(dir, r.str("ca_file", ""))
	if p == "" {
		return ""
	}
	b, err := os.ReadFile(p)
	switch {
	case err != nil:
		r.fail("ca_file", "%v", err)
	case !x509.NewCertPool().AppendCertsFromPEM(b):
		r.fail("ca_file", "%s holds no PEM certificate", p)
	}
	return p
}

func relPath(dir, p string) string {
	if p != "" && !filepath.IsAbs(p) {
		return filepath.Join(dir, p)
	}
	return p
}

func loopbackHost(h string) bool {
	_, _, mode, err := notify.ParseServer(h, "")
	return err == nil && mode == notify.TLSNone
}

func webhookRoute(dir string, rc *notify.RouteConfig, rr routeReader, warns *[]string) {
	key := "url"
	u := rr.str("url", "")
	if rr.str("url_file", "") != "" {
		if u != "" {
			rr.pick("url_file").fail("url_file", "set url or url_file, not both")
		}
		key, u = "url_file", string(rr.secretFile(dir, "url_file", warns))
	}
	r := rr.pick(key)
	switch v, err := notify.ParseWebhookURL(u); {
	case u == "" && key == "url":
		r.fail("url", "a webhook route needs a url (or url_file)")
	case u == "":
	case err != nil:
		r.fail(key, "%v", err)
	default:
		u = v
	}
	rc.Webhook = notify.WebhookConfig{URL: u, Format: strings.ToLower(rr.str("format", notify.FormatJSON)),
		Secret: rr.secretFile(dir, "secret_file", warns), Token: string(rr.secretFile(dir, "token_file", warns)),
		SignatureHeader: rr.str("signature_header", notify.DefaultSignatureHeader), CAFile: caFile(dir, rr)}
	switch rc.Webhook.Format {
	case notify.FormatJSON, notify.FormatSlack, notify.FormatNtfy:
	case "mattermost":
		rc.Webhook.Format = notify.FormatSlack
	default:
		rr.pick("format").fail("format", "unknown format %q (want json, slack, mattermost or ntfy)", rc.Webhook.Format)
	}
	if h := rc.Webhook.SignatureHeader; h == "" || strings.ContainsAny(h, " :\r\n\t") || len(h) > 64 {
		rr.pick("signature_header").fail("signature_header", "%q is not an HTTP header name", h)
	}
}

// mailRoutes maps the fail2ban mail actions of enabled jails (action_mw,
// action_mwl, mail-whois, sendmail-* with dest and sender) to SMTP routes
// of palisade's mailer: no whois lookup, no shell, no sendmail. Jails
// with the same recipients, sender and line choice share one route
// (fail2ban-mail, fail2ban-mail-2, ...), so a storm across jails is still
// a handful of messages. The server and the other route options come
// from [notify] (default localhost:25, the local MTA that sendmail would
// have used).
func mailRoutes(dir string, base *reader, jails []Jail, existing []notify.RouteConfig) ([]notify.RouteConfig, []string, ErrorList) {
	type key struct{ dest, sender, name string }
	type group struct {
		key
		lines bool
		jails []string
		acts  []string
	}
	groups := map[string]*group{}
	var order []string
	var errs ErrorList
	jails = slices.Clone(jails)
	slices.SortFunc(jails, func(a, b Jail) int { return strings.Compare(a.Name, b.Name) })
	for _, j := range jails {
		if !j.Enabled {
			continue
		}
		for _, a := range j.Actions {
			name := a.Name
			if !IsMailAction(name) {
				continue
			}
			args := map[string]string{}
			for _, o := range a.Args {
				args[o.Name] = strings.TrimSpace(o.Value)
			}
			get := func(arg, opt, def string) string {
				if v := args[arg]; v != "" {
					return v
				}
				if v := strings.TrimSpace(j.Options[opt]); v != "" {
					return v
				}
				return def
			}
			dest := get("dest", "destemail", "root@localhost")
			sender := get("sender", "sender", "root@<fq-hostname>")
			sname := get("sendername", "sendername", "Fail2Ban")
			if _, err := notify.ParseAddressList(dest); err != nil {
				errs = append(errs, &Error{File: j.File, Line: j.Line, Section: j.Name, Key: "action", Msg: fmt.Sprintf("%s: dest: %v", name, err)})
				continue
			}
			lname := strings.ToLower(name)
			k := key{dest, sender, sname}
			id := fmt.Sprintf("%v/%v", k, strings.Contains(lname, "lines") || strings.Contains(lname, "matches"))
			g := groups[id]
			if g == nil {
				g = &group{key: k, lines: strings.Contains(lname, "lines") || strings.Contains(lname, "matches")}
				groups[id] = g
				order = append(order, id)
			}
			if !slices.Contains(g.jails, j.Name) {
				g.jails = append(g.jails, j.Name)
				g.acts = append(g.acts, name)
			}
		}
	}
	var out []notify.RouteConfig
	var warns []string
	taken := map[string]bool{}
	for _, rc := range existing {
		taken[rc.Name] = true
	}
	for i, id := range order {
		g := groups[id]
		name := "fail2ban-mail"
		if i > 0 {
			name += "-" + strconv.Itoa(i+1)
		}
		for taken[name] {
			name += "x"
		}
		taken[name] = true
		// The route has no section of its own: options come from [notify],
		// from and to from the jail's action.
		rr := routeReader{own: &reader{c: ini.New(), section: notifyPrefix + name}, base: base}
		rc := notify.RouteConfig{Name: name, Type: notify.TypeSMTP}
		commonRoute(&rc, rr, jails, &warns)
		smtpServer(dir, &rc, rr, &warns)
		rc.Jails = g.jails
		if !base.c.HasOption("notify", "events", false) {
			rc.Events = notify.EventBan
		}
		from, err := parseFrom(g.sender)
		if err != nil {
			errs = append(errs, &Error{Section: g.jails[0], Key: "action", Msg: fmt.Sprintf("sender: %v", err)})
			continue
		}
		rc.SMTP.From = from
		rc.SMTP.To, _ = notify.ParseAddressList(g.dest)
		rc.Lines = g.lines
		rc.Where = "fail2ban mail action of jail " + strings.Join(g.jails, ", ")
		errs = append(errs, rr.own.errs...)
		warns = append(warns, fmt.Sprintf("jails %s: fail2ban mail actions (%s) are sent by palisade's built-in mailer as route %s: to %s through %s:%d (no whois, no shell; [notify] fail2ban_mail = no turns this off)",
			strings.Join(g.jails, ", "), strings.Join(slices.Compact(slices.Sorted(slices.Values(g.acts))), ", "), name, strings.Join(rc.SMTP.To, ", "), rc.SMTP.Host, rc.SMTP.Port))
		out = append(out, rc)
	}
	return out, warns, errs
}

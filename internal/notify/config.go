package notify

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Route types.
const (
	TypeSMTP    = "smtp"
	TypeWebhook = "webhook"
)

// TLS modes of an SMTP route.
const (
	TLSNone     = "none"
	TLSStartTLS = "starttls"
	TLSImplicit = "implicit"
)

// Webhook payload formats.
const (
	FormatJSON  = "json"
	FormatSlack = "slack" // Slack and Mattermost incoming webhooks
	FormatNtfy  = "ntfy"
)

// Defaults of a route.
const (
	DefaultGroupWait  = 60 * time.Second
	DefaultMaxPerHour = 20
	DefaultTimeout    = 15 * time.Second
	DefaultRetries    = 2
	DefaultQueue      = 1024
	DefaultMaxLines   = 10
	// DefaultSignatureHeader carries a webhook's HMAC-SHA256 signature.
	DefaultSignatureHeader = "X-Palisade-Signature"
)

// RouteConfig is one [notify:NAME] section, validated by the
// configuration loader (internal/config).
type RouteConfig struct {
	Name string
	// Type is TypeSMTP or TypeWebhook.
	Type string
	// Events selects what the route sends; Jails restricts it to these
	// jails (empty: every jail). Daemon-wide events (start, stop) ignore
	// Jails.
	Events EventSet
	Jails  []string
	// GroupWait collects the bans, unbans and escalations of this long
	// into one message (0: send each at once). Health and lifecycle
	// events wait at most one second.
	GroupWait time.Duration
	// MaxPerHour caps ban messages per hour (0: no cap); what comes
	// beyond the cap is folded into the next message.
	MaxPerHour int
	// Digest, when set, sends a daily summary at that time of day.
	Digest *Digest
	// Lines includes matched log lines (attacker-controlled text: escaped,
	// at most MaxLines lines of MaxLineLen bytes per ban).
	Lines    bool
	MaxLines int
	// Timeout bounds one delivery attempt; Retries more attempts follow a
	// failure (1s, 2s, 4s... apart).
	Timeout time.Duration
	Retries int
	// Queue bounds the events waiting for the route's accumulator.
	Queue int
	// SubjectPrefix starts every subject (default "[palisade]").
	SubjectPrefix string

	SMTP    SMTPConfig
	Webhook WebhookConfig
	// Where is the file:line of the route's section, for messages.
	Where string
}

// SMTPConfig is an SMTP route's server and envelope.
type SMTPConfig struct {
	// Host and Port of the server; TLS is TLSNone, TLSStartTLS or
	// TLSImplicit.
	Host string
	Port int
	TLS  string
	// CAFile, when set, is the PEM bundle that verifies the server (else
	// the system roots).
	CAFile string
	// User and Password authenticate (no AUTH when User is empty); Auth
	// is the mechanism: auto, plain, login, cram-md5, scram-sha-256.
	User     string
	Password string
	Auth     string
	From     string
	To       []string
}

// WebhookConfig is a webhook route's endpoint.
type WebhookConfig struct {
	URL    string
	Format string
	// Secret, when set, signs each body: header SignatureHeader carries
	// "sha256=" and the hex HMAC-SHA256 of the body.
	Secret          []byte
	SignatureHeader string
	// Token, when set, is sent as "Authorization: Bearer TOKEN".
	Token  string
	CAFile string
}

// Digest is a daily summary's time of day.
type Digest struct {
	Hour, Minute int
}

func (d Digest) String() string { return fmt.Sprintf("daily %02d:%02d", d.Hour, d.Minute) }

// ParseDigest parses "daily HH:MM" (or "HH:MM"); "" and "off" are no
// digest.
func ParseDigest(s string) (*Digest, error) {
	f := strings.Fields(strings.ToLower(s))
	if len(f) == 0 || len(f) == 1 && (f[0] == "off" || f[0] == "no" || f[0] == "none") {
		return nil, nil
	}
	if f[0] == "daily" {
		f = f[1:]
	}
	if len(f) != 1 {
		return nil, fmt.Errorf("%q: want \"daily HH:MM\"", s)
	}
	h, m, ok := strings.Cut(f[0], ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 || len(m) != 2 {
		return nil, fmt.Errorf("%q: want \"daily HH:MM\" (24-hour clock)", s)
	}
	return &Digest{Hour: hh, Minute: mm}, nil
}

// ParseServer splits "host[:port]" and chooses the TLS mode when tls is
// "": implicit for port 465, none for a loopback host, else starttls. The
// default port follows the mode (465 implicit, 25 none, else 587).
func ParseServer(server, tls string) (host string, port int, mode string, err error) {
	server = strings.TrimSpace(server)
	if server == "" {
		return "", 0, "", fmt.Errorf("empty server")
	}
	host, ps, splitErr := net.SplitHostPort(server)
	if splitErr != nil {
		host, ps = strings.Trim(server, "[]"), ""
	}
	if host == "" || strings.ContainsAny(host, " /\\@") {
		return "", 0, "", fmt.Errorf("%q is not host[:port]", server)
	}
	if ps != "" {
		port, err = strconv.Atoi(ps)
		if err != nil || port < 1 || port > 65535 {
			return "", 0, "", fmt.Errorf("%q: bad port", server)
		}
	}
	mode = strings.ToLower(strings.TrimSpace(tls))
	switch mode {
	case "":
		switch {
		case port == 465:
			mode = TLSImplicit
		case isLoopbackHost(host):
			mode = TLSNone
		default:
			mode = TLSStartTLS
		}
	case TLSNone, TLSStartTLS, TLSImplicit:
	case "ssl", "tls":
		mode = TLSImplicit
	default:
		return "", 0, "", fmt.Errorf("unknown tls mode %q (want none, starttls or implicit)", tls)
	}
	if port == 0 {
		switch mode {
		case TLSImplicit:
			port = 465
		case TLSNone:
			port = 25
		default:
			port = 587
		}
	}
	return host, port, mode, nil
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// ParseAddressList parses a list of mail addresses, separated by commas
// (RFC 5322: "Ops Team <ops@example.org>, admin@example.org") or, when
// the list has neither commas nor angle brackets, by spaces. It returns
// each as addr-spec.
func ParseAddressList(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var items []string
	if strings.ContainsAny(s, ",<") {
		items = strings.Split(s, ",")
	} else {
		items = strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == ';' })
	}
	var out []string
	for _, f := range items {
		if strings.TrimSpace(f) == "" {
			continue
		}
		a, err := ParseAddress(f)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// ParseAddress validates one mail address ("user@example.org" or "Name
// <user@example.org>") and returns its addr-spec.
func ParseAddress(s string) (string, error) {
	a, err := mail.ParseAddress(strings.TrimSpace(s))
	if err != nil || !strings.Contains(a.Address, "@") || strings.ContainsAny(a.Address, "\r\n") {
		return "", fmt.Errorf("%q is not a mail address", s)
	}
	return a.Address, nil
}

// ParseWebhookURL validates a webhook URL (http or https, with a host).
func ParseWebhookURL(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("%q is not an http(s) URL with a host (and no user:password)", redactURL(s))
	}
	return u.String(), nil
}

// redactURL keeps the scheme and host of a URL: webhook paths often hold
// tokens.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	out := u.Scheme + "://" + u.Host
	if u.Path != "" && u.Path != "/" {
		out += "/…"
	}
	return out
}

func (c RouteConfig) withDefaults() RouteConfig {
	if c.Queue <= 0 {
		c.Queue = DefaultQueue
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Retries < 0 {
		c.Retries = 0
	}
	if c.MaxLines <= 0 {
		c.MaxLines = DefaultMaxLines
	}
	if c.GroupWait < 0 {
		c.GroupWait = 0
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = "[palisade]"
	}
	if c.Webhook.Format == "" {
		c.Webhook.Format = FormatJSON
	}
	if c.Webhook.SignatureHeader == "" {
		c.Webhook.SignatureHeader = DefaultSignatureHeader
	}
	return c
}

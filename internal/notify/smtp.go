package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	mail "github.com/wneessen/go-mail"
)

// NewSink builds the sink of a route from its type.
func NewSink(rc RouteConfig, host string) (Sink, error) {
	switch rc.Type {
	case TypeSMTP:
		return newSMTPSink(rc, host)
	case TypeWebhook:
		return newWebhookSink(rc)
	}
	return nil, fmt.Errorf("unknown route type %q", rc.Type)
}

func loadCAs(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// smtpSink sends mail with go-mail: one connection per message, STARTTLS
// or implicit TLS as configured, a deadline on every step.
type smtpSink struct {
	cfg  SMTPConfig
	helo string
	opts []mail.Option
}

var authTypes = map[string]mail.SMTPAuthType{
	"auto": mail.SMTPAuthAutoDiscover, "": mail.SMTPAuthAutoDiscover, "plain": mail.SMTPAuthPlain,
	"login": mail.SMTPAuthLogin, "cram-md5": mail.SMTPAuthCramMD5, "scram-sha-1": mail.SMTPAuthSCRAMSHA1,
	"scram-sha-256": mail.SMTPAuthSCRAMSHA256,
}

// ValidAuth reports whether s names a supported SMTP AUTH mechanism.
func ValidAuth(s string) bool { _, ok := authTypes[strings.ToLower(s)]; return ok }

func newSMTPSink(rc RouteConfig, host string) (*smtpSink, error) {
	c := rc.SMTP
	if c.Host == "" || c.Port == 0 || c.From == "" || len(c.To) == 0 {
		return nil, fmt.Errorf("smtp route needs server, from and to")
	}
	pool, err := loadCAs(c.CAFile)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{ServerName: c.Host, RootCAs: pool, MinVersion: tls.VersionTLS12}
	helo := host
	if helo == "" || strings.ContainsAny(helo, " \t") {
		helo = "localhost"
	}
	// fail2ban's sender = root@<fq-hostname> names this host.
	short, _, _ := strings.Cut(helo, ".")
	c.From = strings.NewReplacer("<fq-hostname>", helo, "<sh-hostname>", short).Replace(c.From)
	if _, err := ParseAddress(c.From); err != nil {
		return nil, fmt.Errorf("from: %w", err)
	}
	s := &smtpSink{cfg: c, helo: helo}
	s.opts = []mail.Option{mail.WithPort(c.Port), mail.WithTimeout(rc.Timeout), mail.WithTLSConfig(tc), mail.WithHELO(helo)}
	switch c.TLS {
	case TLSNone:
		s.opts = append(s.opts, mail.WithTLSPolicy(mail.NoTLS))
	case TLSImplicit:
		s.opts = append(s.opts, mail.WithSSL())
	default:
		s.opts = append(s.opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if c.User != "" {
		at, ok := authTypes[strings.ToLower(c.Auth)]
		if !ok {
			return nil, fmt.Errorf("unknown auth mechanism %q", c.Auth)
		}
		s.opts = append(s.opts, mail.WithSMTPAuth(at), mail.WithUsername(c.User), mail.WithPassword(c.Password))
	}
	return s, nil
}

func (s *smtpSink) Target() string {
	t := "smtp://" + net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port)) + " (" + s.cfg.TLS
	if s.cfg.User != "" {
		t += ", auth as " + s.cfg.User
	}
	return t + ") to " + strings.Join(s.cfg.To, ", ")
}

// Send implements Sink.
func (s *smtpSink) Send(ctx context.Context, r *Report) error {
	m := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := m.From(s.cfg.From); err != nil {
		return fmt.Errorf("from: %w", err)
	}
	if err := m.To(s.cfg.To...); err != nil {
		return fmt.Errorf("to: %w", err)
	}
	m.Subject(r.Subject)
	m.SetDateWithValue(r.Sent)
	m.SetMessageID()
	m.SetUserAgent("palisade")
	// RFC 3834: no vacation replies or bounces to auto-replies.
	m.SetGenHeader(mail.Header("Auto-Submitted"), "auto-generated")
	m.SetGenHeader(mail.Header("X-Palisade-Route"), r.Route)
	m.SetBodyString(mail.TypeTextPlain, r.Text())
	c, err := mail.NewClient(s.cfg.Host, s.opts...)
	if err != nil {
		return fmt.Errorf("smtp client: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		return fmt.Errorf("smtp %s: %w", net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port)), err)
	}
	return nil
}

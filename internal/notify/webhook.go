package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxErrBody is how much of a failed webhook reply is kept for the error.
const maxErrBody = 512

// webhookSink posts each report to one URL: palisade's JSON report, a
// Slack/Mattermost message, or an ntfy notification.
type webhookSink struct {
	cfg    WebhookConfig
	client *http.Client
}

func newWebhookSink(rc RouteConfig) (*webhookSink, error) {
	c := rc.Webhook
	if _, err := ParseWebhookURL(c.URL); err != nil {
		return nil, err
	}
	switch c.Format {
	case FormatJSON, FormatSlack, FormatNtfy:
	default:
		return nil, fmt.Errorf("unknown webhook format %q", c.Format)
	}
	pool, err := loadCAs(c.CAFile)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	tr.MaxIdleConns, tr.IdleConnTimeout = 2, 0
	client := &http.Client{Transport: tr, Timeout: rc.Timeout,
		// A redirect could carry the signature and token elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &webhookSink{cfg: c, client: client}, nil
}

func (w *webhookSink) Target() string { return redactURL(w.cfg.URL) + " (" + w.cfg.Format + ")" }

// Sign returns the signature header value of body under secret:
// "sha256=" and the hex HMAC-SHA256.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// slackEscape escapes what Slack and Mattermost treat as markup.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Payload renders r in format: the body, its content type, and extra
// headers.
func Payload(format string, r *Report) ([]byte, string, map[string]string, error) {
	switch format {
	case FormatJSON, "":
		b, err := json.Marshal(r)
		return b, "application/json", nil, err
	case FormatSlack:
		text := "*" + slackEscape.Replace(r.Subject) + "*\n```\n" + strings.ReplaceAll(slackEscape.Replace(r.Text()), "```", "'''") + "```"
		b, err := json.Marshal(struct {
			Text     string `json:"text"`
			Username string `json:"username,omitempty"`
		}{Text: text, Username: "palisade"})
		return b, "application/json", nil, err
	case FormatNtfy:
		prio, tags := "default", "shield"
		switch {
		case r.Counts.Problems > 0:
			prio, tags = "high", "warning"
		case r.Counts.Recoveries > 0:
			tags = "white_check_mark"
		case r.Counts.Bans > 0:
			tags = "no_entry"
		}
		// ntfy headers must be one line of printable text.
		title := strings.Map(func(c rune) rune {
			if c < 0x20 || c == 0x7f {
				return ' '
			}
			return c
		}, r.Subject)
		return []byte(r.Text()), "text/plain; charset=utf-8", map[string]string{"Title": title, "Priority": prio, "Tags": tags}, nil
	}
	return nil, "", nil, fmt.Errorf("unknown webhook format %q", format)
}

// Send implements Sink.
func (w *webhookSink) Send(ctx context.Context, r *Report) error {
	body, ctype, hdr, err := Payload(w.cfg.Format, r)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", "palisade")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if len(w.cfg.Secret) > 0 {
		req.Header.Set(w.cfg.SignatureHeader, Sign(w.cfg.Secret, body))
	}
	if w.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+w.cfg.Token)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) {
			// url.Error repeats the URL, which may hold a token.
			err = ue.Unwrap()
		}
		return fmt.Errorf("webhook %s: %w", redactURL(w.cfg.URL), err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook %s: HTTP %s: %s", redactURL(w.cfg.URL), resp.Status, Clean(strings.TrimSpace(string(msg)), 200))
	}
	return nil
}

// Package edge bans at Cloudflare's edge what a host firewall cannot ban
// behind the proxy: it mirrors the bans of web jails into the zone's IP
// Access Rules (mode block), stores each rule's id, deletes the rule when
// the ban ends, retries failed API calls with backoff (reported, never
// counted as done), and reconciles the zone's rules with the ban store at
// start-up and periodically.
package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultBaseURL is Cloudflare's API.
const DefaultBaseURL = "https://api.cloudflare.com/client/v4"

// maxReply bounds an API reply.
const maxReply = 4 << 20

// Rule is one IP Access Rule.
type Rule struct {
	ID string `json:"id,omitempty"`
	// Mode is "block" for palisade's rules.
	Mode string `json:"mode"`
	// Target is "ip", "ip6" or "ip_range"; Value the address or range.
	Target string `json:"target"`
	Value  string `json:"value"`
	Notes  string `json:"notes"`
}

// Filter narrows List.
type Filter struct {
	// Notes matches rules whose notes contain it (Cloudflare's search,
	// case-insensitive).
	Notes string
	// Value matches the rule's configuration value exactly.
	Value string
}

// APIError is a failed API call.
type APIError struct {
	Op     string
	Status int
	// Code and Message are Cloudflare's first error, when it sent one.
	Code    int
	Message string
	// RetryAfter is the server's Retry-After (429), if any.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("cloudflare API %s: HTTP %d", e.Op, e.Status)
	if e.Code != 0 || e.Message != "" {
		s += fmt.Sprintf(" (error %d: %s)", e.Code, e.Message)
	}
	return s
}

// Duplicate reports whether Cloudflare refused a create because an equal
// rule exists.
func (e *APIError) Duplicate() bool {
	return e.Code == 10009 || strings.Contains(strings.ToLower(e.Message), "duplicate")
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// BaseURL is the API root (default DefaultBaseURL). It must be https,
	// except on a loopback host (tests, a local relay).
	BaseURL string
	// Zone is the zone id (32 hexadecimal digits).
	Zone string
	// Token is the API token (Zone > Firewall Services > Edit). It is sent
	// only in the Authorization header and never logged.
	Token string
	// HTTP is the client (default: 30s timeout, no redirects).
	HTTP *http.Client
}

// Client talks to one zone's IP Access Rules.
type Client struct {
	base  *url.URL
	zone  string
	token string
	http  *http.Client
}

// ValidZone reports whether s looks like a zone id.
func ValidZone(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// CheckBaseURL validates an API root: https, or http on a loopback host.
func CheckBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("API URL %q: want https://host/path", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		h := u.Hostname()
		if h != "localhost" && h != "127.0.0.1" && h != "::1" {
			return nil, fmt.Errorf("API URL %q: plain http is allowed only on a loopback host (the token would travel in clear)", s)
		}
	default:
		return nil, fmt.Errorf("API URL %q: want https", s)
	}
	return u, nil
}

func validToken(t string) bool {
	if t == "" || len(t) > 1024 {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] > '~' {
			return false
		}
	}
	return true
}

// NewClient checks cfg and returns a client.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := CheckBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if !ValidZone(cfg.Zone) {
		return nil, fmt.Errorf("zone %q: want the zone id (32 hexadecimal digits)", cfg.Zone)
	}
	if !validToken(cfg.Token) {
		return nil, errors.New("API token empty or not printable")
	}
	h := cfg.HTTP
	if h == nil {
		h = &http.Client{
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Client{base: u, zone: cfg.Zone, token: cfg.Token, http: h}, nil
}

func (c *Client) rulesURL(id string, q url.Values) string {
	u := *c.base
	u.Path += "/zones/" + c.zone + "/firewall/access_rules/rules"
	if id != "" {
		u.Path += "/" + url.PathEscape(id)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

type envelope struct {
	Success bool `json:"success"`
	Errors  []struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
	Result     json.RawMessage `json:"result"`
	ResultInfo *struct {
		Page       int `json:"page"`
		TotalPages int `json:"total_pages"`
	} `json:"result_info"`
}

func (c *Client) do(ctx context.Context, op, method, u string, body any) (envelope, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return envelope{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return envelope{}, fmt.Errorf("cloudflare API %s: %w", op, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "palisade")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL holds nothing secret, but keep messages short
		}
		return envelope{}, fmt.Errorf("cloudflare API %s: %w", op, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return envelope{}, fmt.Errorf("cloudflare API %s: read reply: %w", op, err)
	}
	var env envelope
	jerr := json.Unmarshal(raw, &env)
	if resp.StatusCode/100 != 2 || jerr != nil || !env.Success {
		ae := &APIError{Op: op, Status: resp.StatusCode}
		if len(env.Errors) > 0 {
			ae.Code, ae.Message = env.Errors[0].Code, clip(env.Errors[0].Message)
		} else if jerr != nil {
			ae.Message = "reply is not the API's JSON"
		}
		if s := resp.Header.Get("Retry-After"); s != "" {
			if n, err := strconv.Atoi(s); err == nil && n >= 0 {
				ae.RetryAfter = time.Duration(min(n, 3600)) * time.Second
			}
		}
		return env, ae
	}
	return env, nil
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

type ruleJSON struct {
	ID            string `json:"id,omitempty"`
	Mode          string `json:"mode"`
	Configuration struct {
		Target string `json:"target"`
		Value  string `json:"value"`
	} `json:"configuration"`
	Notes string `json:"notes"`
}

// Create adds a rule and returns its id.
func (c *Client) Create(ctx context.Context, r Rule) (string, error) {
	var body ruleJSON
	body.Mode, body.Configuration.Target, body.Configuration.Value, body.Notes = r.Mode, r.Target, r.Value, r.Notes
	env, err := c.do(ctx, "create", http.MethodPost, c.rulesURL("", nil), body)
	if err != nil {
		return "", err
	}
	var res ruleJSON
	if err := json.Unmarshal(env.Result, &res); err != nil || !validID(res.ID) {
		return "", &APIError{Op: "create", Status: http.StatusOK, Message: "reply has no rule id"}
	}
	return res.ID, nil
}

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

// Delete removes a rule. A rule that no longer exists (404) is not an
// error.
func (c *Client) Delete(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("cloudflare API delete: invalid rule id %q", id)
	}
	_, err := c.do(ctx, "delete", http.MethodDelete, c.rulesURL(id, nil), nil)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return nil
	}
	return err
}

// List returns the zone's block rules matching f (every page, at most
// 100 pages of 100).
func (c *Client) List(ctx context.Context, f Filter) ([]Rule, error) {
	var out []Rule
	for page := 1; page <= 100; page++ {
		q := url.Values{"mode": {"block"}, "per_page": {"100"}, "page": {strconv.Itoa(page)}}
		if f.Notes != "" {
			q.Set("notes", f.Notes)
		}
		if f.Value != "" {
			q.Set("configuration.value", f.Value)
		}
		env, err := c.do(ctx, "list", http.MethodGet, c.rulesURL("", q), nil)
		if err != nil {
			return nil, err
		}
		var rs []ruleJSON
		if err := json.Unmarshal(env.Result, &rs); err != nil {
			return nil, &APIError{Op: "list", Status: http.StatusOK, Message: "reply has no rule list"}
		}
		for _, r := range rs {
			out = append(out, Rule{ID: r.ID, Mode: r.Mode, Target: r.Configuration.Target, Value: r.Configuration.Value, Notes: r.Notes})
		}
		if env.ResultInfo == nil || page >= env.ResultInfo.TotalPages || len(rs) == 0 {
			return out, nil
		}
	}
	return out, nil
}

// ReadToken reads an API token from a file that only its owner (root, or
// the user running palisade) can read; it refuses anything else, so a
// leaked-by-permissions token is noticed instead of used.
func ReadToken(path string) (string, error) {
	if path == "" {
		return "", errors.New("no token_file configured")
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("token file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("token file %s has mode %04o: it must be readable by its owner only (chmod 600)", path, perm)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return "", fmt.Errorf("token file %s is owned by uid %d, not by the user running palisade (uid %d)", path, st.Uid, os.Geteuid())
	}
	b, err := io.ReadAll(io.LimitReader(f, 4097))
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if len(b) > 4096 {
		return "", fmt.Errorf("token file %s is larger than 4 KiB", path)
	}
	t := strings.TrimSpace(string(b))
	if !validToken(t) {
		return "", fmt.Errorf("token file %s does not hold one printable token", path)
	}
	return t, nil
}

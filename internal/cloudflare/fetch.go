package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultURL is Cloudflare's JSON API of its ranges.
const DefaultURL = "https://api.cloudflare.com/client/v4/ips"

// Fetch defaults.
const (
	DefaultFetchTimeout = 30 * time.Second
	// MaxBody bounds a reply or file (Cloudflare's is about 1 KiB).
	MaxBody = 1 << 20
)

// Fetcher reads a list from a URL (the JSON API) or a file.
type Fetcher struct {
	// Client does the HTTP requests; nil means a client with Timeout that
	// follows no redirects.
	Client *http.Client
	// Timeout bounds one fetch, body included (default 30s).
	Timeout time.Duration
	// Now stamps the list (default time.Now).
	Now func() time.Time
}

// IsURL reports whether source names an http(s) URL rather than a file.
func IsURL(source string) bool {
	return strings.HasPrefix(source, "https://") || strings.HasPrefix(source, "http://")
}

// CheckSource validates a source: an http(s) URL with a host, or an
// absolute file path. It returns a warning for plain http.
func CheckSource(source string) (warning string, err error) {
	switch {
	case source == "":
		return "", errors.New("empty source")
	case IsURL(source):
		u, err := url.Parse(source)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("source %s: not a valid URL", quote(source))
		}
		if u.User != nil {
			return "", fmt.Errorf("source %s: credentials in the URL are not allowed", quote(u.Redacted()))
		}
		if u.Scheme == "http" {
			return fmt.Sprintf("%s is plain http: the list can be altered in transit (use https unless this is a local mirror)", u.Redacted()), nil
		}
		return "", nil
	case strings.Contains(source, "://"):
		return "", fmt.Errorf("source %s: only https:// and http:// URLs or file paths", quote(source))
	case !strings.HasPrefix(source, "/"):
		return "", fmt.Errorf("source %s: a file must be given by its absolute path", quote(source))
	}
	return "", nil
}

// Fetch reads and validates the list at source. Warnings (plain http) are
// returned with the list. Every failure wraps ErrRefused when the content
// was wrong, or names the network or file error.
func (f *Fetcher) Fetch(ctx context.Context, source string) (List, []string, error) {
	var warns []string
	w, err := CheckSource(source)
	if err != nil {
		return List{}, nil, err
	}
	if w != "" {
		warns = append(warns, w)
	}
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	var l List
	if IsURL(source) {
		l, err = f.fetchURL(ctx, source)
	} else {
		l, err = readFile(source)
	}
	if err != nil {
		return List{}, warns, err
	}
	l.Source, l.Fetched = source, now()
	return l, warns, nil
}

func readFile(path string) (List, error) {
	fh, err := os.Open(path)
	if err != nil {
		return List{}, fmt.Errorf("read %s: %w", path, err)
	}
	defer fh.Close()
	body, err := io.ReadAll(io.LimitReader(fh, MaxBody+1))
	if err != nil {
		return List{}, fmt.Errorf("read %s: %w", path, err)
	}
	if len(body) > MaxBody {
		return List{}, refused("%s is larger than %d bytes", path, MaxBody)
	}
	l, err := ParseText(body)
	if err != nil {
		return List{}, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

func (f *Fetcher) fetchURL(ctx context.Context, source string) (List, error) {
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := f.Client
	if client == nil {
		client = &http.Client{
			Timeout: timeout,
			// A redirect could lead from https to http or to another
			// host: the list must come from where it was asked for.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, source, nil)
	if err != nil {
		return List{}, fmt.Errorf("fetch %s: %w", source, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "palisade")
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return List{}, fmt.Errorf("fetch %s: no complete answer within %v: %w", source, timeout, ctx.Err())
		}
		return List{}, fmt.Errorf("fetch %s: %w", source, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return List{}, refused("fetch %s: HTTP %s (want 200)", source, resp.Status)
	}
	ct := resp.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return List{}, refused("fetch %s: content type %s, want application/json (a challenge or error page?)", source, quote(ct))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		if ctx.Err() != nil {
			return List{}, fmt.Errorf("fetch %s: body not complete within %v: %w", source, timeout, ctx.Err())
		}
		return List{}, fmt.Errorf("fetch %s: read body: %w", source, err)
	}
	if len(body) > MaxBody {
		return List{}, refused("fetch %s: reply larger than %d bytes", source, MaxBody)
	}
	l, err := ParseAPI(body)
	if err != nil {
		return List{}, fmt.Errorf("fetch %s: %w", source, err)
	}
	return l, nil
}

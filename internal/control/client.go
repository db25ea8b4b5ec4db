package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// ErrNotRunning is returned by the client when nobody listens on the
// socket.
var ErrNotRunning = errors.New("the daemon is not running (no control socket)")

// RemoteError is an error reply from the daemon.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return e.Msg }

// Client talks to a daemon's control socket.
type Client struct {
	// Path is the socket path.
	Path string
	// Timeout bounds one call when the context has no deadline (default 70s).
	Timeout time.Duration
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client { return &Client{Path: path} }

// Call sends req and decodes the reply's data into out (which may be nil).
func (c *Client) Call(ctx context.Context, req Request, out any) error {
	if err := req.Validate(); err != nil {
		return err
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 70 * time.Second
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Path)
	if err != nil {
		if isNotRunning(err) {
			return fmt.Errorf("%w: %s", ErrNotRunning, c.Path)
		}
		return fmt.Errorf("control socket %s: %w", c.Path, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	// The server may refuse (and close) before reading the request; its
	// reply is still readable, so a write error only counts without one.
	_, werr := conn.Write(append(b, '\n'))
	// Decode the reply as it arrives: a large one (every ban) is never
	// held as text and as values at once.
	var resp struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
		Data  any    `json:"data"`
	}
	var raw json.RawMessage
	if out != nil {
		resp.Data = out
	} else {
		resp.Data = &raw
	}
	dec := json.NewDecoder(bufio.NewReaderSize(conn, 64<<10))
	if err := dec.Decode(&resp); err != nil {
		if dec.InputOffset() == 0 {
			if werr != nil {
				return fmt.Errorf("control socket %s: sending request: %w", c.Path, werr)
			}
			if ctx.Err() != nil {
				return fmt.Errorf("control socket %s: %w", c.Path, ctx.Err())
			}
			return fmt.Errorf("control socket %s: reading reply: %w", c.Path, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("control socket %s: %w", c.Path, ctx.Err())
		}
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		if errors.As(err, &se) || errors.As(err, &te) {
			return fmt.Errorf("control socket %s: malformed reply: %w", c.Path, err)
		}
		return fmt.Errorf("control socket %s: reading reply: %w", c.Path, err)
	}
	if !resp.OK {
		return &RemoteError{Msg: resp.Error}
	}
	return nil
}

func isNotRunning(err error) bool {
	var oe *net.OpError
	if !errors.As(err, &oe) {
		return false
	}
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}

// Ping checks that the daemon answers.
func (c *Client) Ping(ctx context.Context) (PingReply, error) {
	var r PingReply
	err := c.Call(ctx, Request{Verb: VerbPing}, &r)
	return r, err
}

// Status returns every jail, or only jail when it is not empty.
func (c *Client) Status(ctx context.Context, jail string) (StatusReply, error) {
	var r StatusReply
	err := c.Call(ctx, Request{Verb: VerbStatus, Jail: jail}, &r)
	return r, err
}

// Ban bans ip in jail; dur is a fail2ban duration or "" for the jail's
// bantime.
func (c *Client) Ban(ctx context.Context, jail, ip, dur string) (BanReply, error) {
	var r BanReply
	err := c.Call(ctx, Request{Verb: VerbBan, Jail: jail, IP: ip, For: dur}, &r)
	return r, err
}

// Unban lifts the ban of ip in jail.
func (c *Client) Unban(ctx context.Context, jail, ip string) (UnbanReply, error) {
	var r UnbanReply
	err := c.Call(ctx, Request{Verb: VerbUnban, Jail: jail, IP: ip}, &r)
	return r, err
}

// UnbanAll lifts every ban (of jail, when not empty).
func (c *Client) UnbanAll(ctx context.Context, jail string) (UnbanReply, error) {
	var r UnbanReply
	err := c.Call(ctx, Request{Verb: VerbUnban, Jail: jail, All: true}, &r)
	return r, err
}

// Banned returns every active ban (of jail, when not empty).
func (c *Client) Banned(ctx context.Context, jail string) (BannedReply, error) {
	var r BannedReply
	err := c.Call(ctx, Request{Verb: VerbBanned, Jail: jail}, &r)
	return r, err
}

// Explain says why ip is banned, ignored or counted.
func (c *Client) Explain(ctx context.Context, ip string) (ExplainReply, error) {
	var r ExplainReply
	err := c.Call(ctx, Request{Verb: VerbExplain, IP: ip}, &r)
	return r, err
}

// Reload asks the daemon to re-read its configuration.
func (c *Client) Reload(ctx context.Context) (ReloadReply, error) {
	var r ReloadReply
	err := c.Call(ctx, Request{Verb: VerbReload}, &r)
	return r, err
}

// Config returns the configuration directory the daemon runs and each
// jail's filter and ports.
func (c *Client) Config(ctx context.Context) (ConfigReply, error) {
	var r ConfigReply
	err := c.Call(ctx, Request{Verb: VerbConfig}, &r)
	return r, err
}

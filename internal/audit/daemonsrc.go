package audit

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/palisade-project/palisade/internal/cloudflare"
	"github.com/palisade-project/palisade/internal/control"
)

// DaemonReader asks the running palisade daemon.
type DaemonReader interface {
	// Status is the daemon's status; ErrDaemonNotRunning when none
	// answers, ErrNotReadable when the socket is root-only.
	Status(ctx context.Context) (*DaemonStatus, error)
	// Cloudflare is the daemon's Cloudflare lock status.
	Cloudflare(ctx context.Context) (*cloudflare.Status, error)
}

// ErrDaemonNotRunning is returned when no daemon answers.
var ErrDaemonNotRunning = errors.New("the palisade daemon is not running")

// DaemonStatus is the daemon's status reply with its ping (pid, version)
// and the socket that answered.
type DaemonStatus struct {
	control.StatusReply
	Socket  string
	PID     int
	Version string
}

// Jail returns the running jail named name.
func (d *DaemonStatus) Jail(name string) (control.JailStatus, bool) {
	for _, j := range d.Jails {
		if j.Name == name {
			return j, true
		}
	}
	return control.JailStatus{}, false
}

// ControlDaemon asks the daemon over its control socket.
type ControlDaemon struct {
	Client *control.Client
}

// Status implements DaemonReader.
func (c ControlDaemon) Status(ctx context.Context) (*DaemonStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var ping control.PingReply
	if err := c.Client.Call(ctx, control.Request{Verb: control.VerbPing}, &ping); err != nil {
		return nil, c.err(err)
	}
	st := &DaemonStatus{Socket: c.Client.Path}
	if err := c.Client.Call(ctx, control.Request{Verb: control.VerbStatus}, &st.StatusReply); err != nil {
		return nil, c.err(err)
	}
	st.Socket, st.PID, st.Version = c.Client.Path, ping.PID, ping.Version
	return st, nil
}

// Cloudflare implements DaemonReader.
func (c ControlDaemon) Cloudflare(ctx context.Context) (*cloudflare.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var st cloudflare.Status
	if err := c.Client.Cloudflare(ctx, control.CloudflareArgs{Op: control.CloudflareStatus}, &st); err != nil {
		return nil, c.err(err)
	}
	return &st, nil
}

func (c ControlDaemon) err(err error) error {
	switch {
	case errors.Is(err, control.ErrNotRunning):
		return fmt.Errorf("%w (no control socket at %s)", ErrDaemonNotRunning, c.Client.Path)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("control socket %s: %w", c.Client.Path, ErrNotReadable)
	}
	return err
}

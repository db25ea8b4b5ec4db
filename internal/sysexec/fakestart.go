package sysexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// FakeStarter is a Starter for tests: every Start records the command and
// returns a FakeProcess whose output the test writes and whose exit it
// decides.
type FakeStarter struct {
	mu       sync.Mutex
	cmds     []Cmd
	startErr error
	started  chan *FakeProcess
}

// NewFakeStarter returns a FakeStarter.
func NewFakeStarter() *FakeStarter {
	return &FakeStarter{started: make(chan *FakeProcess, 64)}
}

// FailStarts makes the following Starts fail with err (nil: succeed again).
func (f *FakeStarter) FailStarts(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.startErr = err
}

// Cmds returns every command started (or attempted) so far.
func (f *FakeStarter) Cmds() []Cmd {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Cmd(nil), f.cmds...)
}

// Start implements Starter.
func (f *FakeStarter) Start(ctx context.Context, c Cmd) (Process, error) {
	f.mu.Lock()
	f.cmds = append(f.cmds, c)
	err := f.startErr
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	p := &FakeProcess{cmd: c, r: pr, w: pw, exited: make(chan struct{})}
	go func() {
		select {
		case <-ctx.Done():
			p.Exit(ctx.Err())
		case <-p.exited:
		}
	}()
	select {
	case f.started <- p:
	default:
		return nil, errors.New("fake starter: too many unclaimed processes")
	}
	return p, nil
}

// Next waits (at most timeout) for the next started process.
func (f *FakeStarter) Next(timeout time.Duration) (*FakeProcess, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case p := <-f.started:
		return p, nil
	case <-t.C:
		return nil, fmt.Errorf("fake starter: no process started within %v", timeout)
	}
}

// FakeProcess is a process started by FakeStarter.
type FakeProcess struct {
	cmd    Cmd
	r      *io.PipeReader
	w      *io.PipeWriter
	once   sync.Once
	err    error
	exited chan struct{}
}

// Cmd is the command the process was started with.
func (p *FakeProcess) Cmd() Cmd { return p.cmd }

// Stdout implements Process.
func (p *FakeProcess) Stdout() io.Reader { return p.r }

// Write writes s to the process's standard output; it blocks until the
// reader has taken it, and fails once the process has exited.
func (p *FakeProcess) Write(s string) error {
	_, err := io.WriteString(p.w, s)
	return err
}

// Exit ends the process: its output ends and Wait returns err.
func (p *FakeProcess) Exit(err error) {
	p.once.Do(func() {
		p.err = err
		_ = p.w.Close()
		close(p.exited)
	})
}

// Exited is closed when the process has exited.
func (p *FakeProcess) Exited() <-chan struct{} { return p.exited }

// Wait implements Process.
func (p *FakeProcess) Wait() error {
	<-p.exited
	return p.err
}

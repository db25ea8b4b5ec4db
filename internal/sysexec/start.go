package sysexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Process is a started long-running program whose output is streamed.
type Process interface {
	// Stdout is the program's standard output.
	Stdout() io.Reader
	// Wait waits for the program to exit (after Stdout hit EOF). A non-zero
	// exit is an *ExitError that carries the end of the program's stderr.
	Wait() error
}

// Starter starts long-running programs whose output is read as it comes
// (journalctl --follow); Runner runs programs to completion. Cancelling
// ctx ends the program.
type Starter interface {
	Start(ctx context.Context, c Cmd) (Process, error)
}

// ExecStarter is the real Starter: argv only, no shell, the minimal
// environment plus SYSTEMD_COLORS=0 and c.Env, stderr kept (its last 4 KiB)
// for error messages. Cancelling the context sends SIGTERM, then SIGKILL
// after 3 seconds.
type ExecStarter struct{}

// Start implements Starter. c.Stdin is ignored.
func (ExecStarter) Start(ctx context.Context, c Cmd) (Process, error) {
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Env = env(c, "SYSTEMD_COLORS=0")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 3 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, startError("start", c, err)
	}
	p := &execProcess{cmd: cmd, out: out, name: c.String()}
	cmd.Stderr = &p.stderr
	if err := cmd.Start(); err != nil {
		return nil, startError("start", c, err)
	}
	return p, nil
}

type execProcess struct {
	cmd    *exec.Cmd
	out    io.Reader
	name   string
	stderr tailBuffer
}

func (p *execProcess) Stdout() io.Reader { return p.out }

func (p *execProcess) Wait() error {
	err := p.cmd.Wait()
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Cmd: p.name, ExitCode: ee.ExitCode(), Stderr: p.stderr.String()}
	}
	return fmt.Errorf("%s: %w", p.name, err)
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 4096 {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-4096:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

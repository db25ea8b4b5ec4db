// Package sysexec is the only place in palisade that runs external programs.
//
// Programs are always started directly with an argument vector: there is no
// shell anywhere, so no argument is ever re-parsed. Higher packages depend on
// the small Runner interface and are tested with the scripted Fake.
package sysexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"strings"
	"time"
)

// Result is what a finished program produced.
type Result struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}

// Cmd describes one program invocation.
type Cmd struct {
	Name  string   // program name or absolute path
	Args  []string // arguments, passed verbatim
	Stdin []byte   // optional standard input
	Env   []string // extra environment entries (KEY=VALUE), appended to a minimal base
}

// String renders the command for logs and error messages (not for a shell).
func (c Cmd) String() string {
	return strings.Join(append([]string{c.Name}, c.Args...), " ")
}

// Runner runs programs.
type Runner interface {
	// Run runs c to completion. A non-zero exit status is reported as an
	// *ExitError together with the Result; failure to start is another error.
	Run(ctx context.Context, c Cmd) (Result, error)
}

// ExitError reports a program that ran and exited non-zero.
type ExitError struct {
	Cmd      string
	ExitCode int
	Stderr   string
}

func (e *ExitError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if len(msg) > 512 {
		msg = msg[:512] + "..."
	}
	if msg == "" {
		return fmt.Sprintf("%s: exit status %d", e.Cmd, e.ExitCode)
	}
	return fmt.Sprintf("%s: exit status %d: %s", e.Cmd, e.ExitCode, msg)
}

// env is the environment c starts with: a fixed minimal base, then extra,
// then c.Env.
func env(c Cmd, extra ...string) []string {
	e := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	return append(append(e, extra...), c.Env...)
}

// LookPath finds the program name in the directories of $PATH (or
// returns name itself when it holds a slash and is executable), as a
// program started through this package would be found.
func LookPath(name string) (string, error) { return exec.LookPath(name) }

// Exec is the real Runner. Timeout bounds every run (default 30s).
type Exec struct {
	Timeout time.Duration
}

// NewExec returns a Runner that starts real processes.
func NewExec(timeout time.Duration) *Exec {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return &Exec{Timeout: timeout}
}

// Run implements Runner.
func (e *Exec) Run(ctx context.Context, c Cmd) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, e.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Env = env(c)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	err := cmd.Run()
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if err == nil {
		return res, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.ExitCode = ee.ExitCode()
		return res, &ExitError{Cmd: c.String(), ExitCode: res.ExitCode, Stderr: stderr.String()}
	}
	return res, startError("run", c, err)
}

// startError is a program that could not run: "run ufw status: executable
// file not found in $PATH" (exec's own error would name the program a
// second time).
func startError(verb string, c Cmd, err error) error {
	var ee *exec.Error
	var pe *fs.PathError
	switch {
	case errors.As(err, &ee):
		err = ee.Err
	case errors.As(err, &pe) && pe.Path == c.Name:
		err = pe.Err
	}
	return fmt.Errorf("%s %s: %w", verb, c.String(), err)
}

package sysexec

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// StartDetached starts c in a new session (setsid) without waiting for it:
// the child survives the caller's exit and its terminal hanging up. Its
// standard input is /dev/null; standard output and error go to logPath
// (appended, created 0600) or /dev/null when logPath is "". The child gets
// the same minimal environment as Run plus c.Env. It returns the child's pid.
func StartDetached(c Cmd, logPath string) (int, error) {
	cmd := exec.Command(c.Name, c.Args...)
	cmd.Env = env(c)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", c.String(), err)
	}
	defer devnull.Close()
	cmd.Stdin = devnull
	out := devnull
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return 0, fmt.Errorf("start %s: %w", c.String(), err)
		}
		defer f.Close()
		out = f
	}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", c.String(), err)
	}
	pid := cmd.Process.Pid
	// The child is not waited for; release it so no handle is kept. When
	// the caller exits first, init reaps it.
	_ = cmd.Process.Release()
	return pid, nil
}

package sysexec

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// Fake is a scripted Runner for tests. Each expected invocation is matched by
// its rendered command line (Cmd.String()); unexpected commands fail.
type Fake struct {
	mu    sync.Mutex
	rules []fakeRule
	calls []Cmd
}

type fakeRule struct {
	prefix string
	res    Result
	err    error
}

// On registers the result for every command whose rendered line starts with
// prefix. Later registrations take precedence over earlier ones.
func (f *Fake) On(prefix string, res Result, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, fakeRule{prefix: prefix, res: res, err: err})
}

// Calls returns the commands run so far.
func (f *Fake) Calls() []Cmd {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Cmd(nil), f.calls...)
}

// Run implements Runner.
func (f *Fake) Run(_ context.Context, c Cmd) (Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	line := c.String()
	for i := len(f.rules) - 1; i >= 0; i-- {
		if strings.HasPrefix(line, f.rules[i].prefix) {
			return f.rules[i].res, f.rules[i].err
		}
	}
	return Result{ExitCode: 127}, fmt.Errorf("sysexec fake: unexpected command %q", line)
}

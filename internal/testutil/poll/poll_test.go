package poll

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trueAt  int // the call that first succeeds; 0: never
		timeout time.Duration
		wantErr bool
		minCall int
	}{
		{name: "true at once", trueAt: 1, timeout: time.Second, minCall: 1},
		{name: "true on the fifth look", trueAt: 5, timeout: 5 * time.Second, minCall: 5},
		{name: "never true", trueAt: 0, timeout: 30 * time.Millisecond, wantErr: true, minCall: 2},
		{name: "zero timeout still looks once", trueAt: 1, timeout: 0, minCall: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls int
			err := Wait(tc.timeout, func() error {
				calls++
				if tc.trueAt > 0 && calls >= tc.trueAt {
					return nil
				}
				return fmt.Errorf("call %d", calls)
			})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if tc.wantErr && err.Error() != fmt.Sprintf("call %d", calls) {
				t.Errorf("err = %v, want the last call's error (call %d)", err, calls)
			}
			if calls < tc.minCall {
				t.Errorf("%d calls, want at least %d", calls, tc.minCall)
			}
		})
	}
}

func TestWaitHonoursTheDeadline(t *testing.T) {
	start := time.Now()
	_ = Wait(20*time.Millisecond, func() error { return errors.New("no") })
	if d := time.Since(start); d < 20*time.Millisecond || d > 5*time.Second {
		t.Errorf("Wait returned after %v, want about 20ms", d)
	}
}

// recorder is a testing.TB that records Fatalf instead of stopping.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
}

func TestUntilReports(t *testing.T) {
	r := &recorder{TB: t}
	Until(r, 10*time.Millisecond, "the moon", func() bool { return false })
	if !strings.Contains(r.msg, "the moon") || !strings.Contains(r.msg, "10ms") {
		t.Errorf("failure message %q does not name what and how long", r.msg)
	}
	r.msg = ""
	var n atomic.Int32
	go func() {
		time.Sleep(5 * time.Millisecond)
		n.Store(1)
	}()
	Until(r, Default, "the goroutine", func() bool { return n.Load() == 1 })
	if r.msg != "" {
		t.Errorf("Until failed although the condition became true: %s", r.msg)
	}
	UntilNil(r, 10*time.Millisecond, "a port", func() error { return errors.New("connection refused") })
	if !strings.Contains(r.msg, "connection refused") {
		t.Errorf("UntilNil message %q lacks the last error", r.msg)
	}
}

// Package poll waits in tests for a condition to hold, with a bounded
// deadline: the one polling helper for palisade's tests. A test that waits
// for asynchronous work (a reader delivering lines, a daemon banning, a
// port opening) polls the condition instead of sleeping a fixed time, so
// it is as fast as the machine allows and fails with a message naming
// what it waited for when the deadline passes.
package poll

import (
	"errors"
	"testing"
	"time"
)

// Default is a deadline generous enough for a loaded CI machine.
const Default = 10 * time.Second

// The interval between two looks starts at minInterval and doubles up to
// maxInterval, so quick conditions are seen quickly and slow ones do not
// spin.
const (
	minInterval = time.Millisecond
	maxInterval = 50 * time.Millisecond
)

// Until calls cond until it returns true, failing t (t.Fatalf, so it must
// run on the test's goroutine) when timeout passes first. what names the
// condition in the failure message.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	UntilNil(t, timeout, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

var errNotYet = errors.New("condition still false")

// UntilNil calls cond until it returns nil, failing t with cond's last
// error when timeout passes first.
func UntilNil(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Wait(timeout, cond); err != nil {
		t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
	}
}

// Wait calls cond until it returns nil and returns nil, or returns cond's
// last error once timeout has passed. cond runs at least once.
func Wait(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	interval := minInterval
	for {
		err := cond()
		if err == nil {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		time.Sleep(min(interval, left))
		interval = min(2*interval, maxInterval)
	}
}

// Package sourcetest holds what the tests of palisade's log sources
// share: a Consumer that records what it receives, waits on it with a
// bounded deadline, and journal files written by systemd-journal-remote.
// Only tests import it.
package sourcetest

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/palisade-project/palisade/internal/source"
	"github.com/palisade-project/palisade/internal/testutil/poll"
)

// Collector is a source.Consumer that records every line and status.
type Collector struct {
	mu       sync.Mutex
	lines    []source.Line
	statuses []source.Status
}

// Line implements source.Consumer.
func (c *Collector) Line(l source.Line) {
	c.mu.Lock()
	c.lines = append(c.lines, l)
	c.mu.Unlock()
}

// Status implements source.Consumer.
func (c *Collector) Status(s source.Status) {
	c.mu.Lock()
	c.statuses = append(c.statuses, s)
	c.mu.Unlock()
}

// Lines returns the lines received so far.
func (c *Collector) Lines() []source.Line {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]source.Line(nil), c.lines...)
}

// Texts returns the text of each line received so far.
func (c *Collector) Texts() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, l := range c.lines {
		out = append(out, l.Text)
	}
	return out
}

// Count returns how many lines were received.
func (c *Collector) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lines)
}

// Statuses returns every status received so far.
func (c *Collector) Statuses() []source.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]source.Status(nil), c.statuses...)
}

// LastStatus returns the last status received for src.
func (c *Collector) LastStatus(src string) (source.Status, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.statuses) - 1; i >= 0; i-- {
		if c.statuses[i].Source == src {
			return c.statuses[i], true
		}
	}
	return source.Status{}, false
}

// WaitState waits until the last status for src has state.
func (c *Collector) WaitState(t testing.TB, src string, state source.State) {
	t.Helper()
	poll.Until(t, poll.Default, src+" "+state.String(), func() bool {
		st, ok := c.LastStatus(src)
		return ok && st.State == state
	})
}

// WaitLines waits until c holds as many lines as want and then requires
// exactly want (so excess lines fail at once instead of timing out).
func WaitLines(t testing.TB, c *Collector, want []string) {
	t.Helper()
	poll.UntilNil(t, poll.Default, fmt.Sprintf("%d lines", len(want)), func() error {
		if c.Count() >= len(want) {
			return nil
		}
		return fmt.Errorf("got %q, want %q", c.Texts(), want)
	})
	if diff := cmp.Diff(want, c.Texts()); diff != "" {
		t.Fatalf("lines (-want +got):\n%s", diff)
	}
}

// journalRemote converts the journal export format into a journal file.
const journalRemote = "/lib/systemd/systemd-journal-remote"

// RequireJournalTools skips the test unless journalctl and
// systemd-journal-remote (Debian package systemd-journal-remote) are
// installed.
func RequireJournalTools(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("journalctl"); err != nil {
		t.Skip("journalctl not installed")
	}
	if _, err := os.Stat(journalRemote); err != nil {
		t.Skip("systemd-journal-remote not installed (Debian package systemd-journal-remote)")
	}
}

// ExportEntry renders one sshd.service entry of host1 in the journal
// export format; MESSAGE is written in the binary form so it may hold any
// bytes.
func ExportEntry(boot string, realtime time.Time, mono int64, pid int, msg string) []byte {
	var b []byte
	b = fmt.Appendf(b, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=%s\n_HOSTNAME=host1\nSYSLOG_IDENTIFIER=sshd\n_PID=%d\n_SYSTEMD_UNIT=sshd.service\n", realtime.UnixMicro(), mono, boot, pid)
	b = append(b, "MESSAGE\n"...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(msg)))
	b = append(b, msg...)
	b = append(b, '\n', '\n')
	return b
}

// WriteJournal writes entries (ExportEntry) into the new journal file out
// with systemd-journal-remote.
func WriteJournal(t testing.TB, out string, entries ...[]byte) {
	t.Helper()
	cmd := exec.Command(journalRemote, "--output="+out, "-")
	cmd.Stdin = strings.NewReader(string(slices.Concat(entries...)))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-journal-remote: %v: %s", err, b)
	}
}

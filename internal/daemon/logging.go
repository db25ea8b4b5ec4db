package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// LevelNotice is fail2ban's NOTICE level, used for ban and unban lines.
const LevelNotice = slog.LevelInfo + 2

// logHandler writes fail2ban-style lines:
//
//	2026-01-02 15:04:05,123 palisade                [1234]: INFO    bans restored restored=3
//
// in fail2ban's layout (the logger name padded to 24), so people and
// scripts used to fail2ban's log read palisade's. The ban and unban lines
// recidive counts are the ban manager's (ban.BanLogLine), written to the
// same writer. Attributes follow the message as key=value.
type logHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	level slog.Leveler
	name  string
	pid   int
	attrs string
}

func newLogHandler(w io.Writer, level slog.Leveler) *logHandler {
	return &logHandler{mu: &sync.Mutex{}, w: w, level: level, name: "palisade", pid: os.Getpid()}
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError+4:
		return "CRITICAL"
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= LevelNotice:
		return "NOTICE"
	case l >= slog.LevelInfo:
		return "INFO"
	default:
		return "DEBUG"
	}
}

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	b.WriteString(t.Format("2006-01-02 15:04:05"))
	fmt.Fprintf(&b, ",%03d %-24s[%d]: %-7s %s", t.Nanosecond()/1e6, h.name, h.pid, levelName(r.Level), r.Message)
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, a)
		return true
	})
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func writeAttr(b *strings.Builder, a slog.Attr) {
	if a.Equal(slog.Attr{}) {
		return
	}
	v := a.Value.Resolve().String()
	if strings.ContainsAny(v, " \t\n\"=") || v == "" {
		v = fmt.Sprintf("%q", v)
	}
	fmt.Fprintf(b, " %s=%s", a.Key, v)
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range as {
		if a.Key == "logger" {
			c.name = a.Value.String()
			continue
		}
		writeAttr(&b, a)
	}
	c.attrs = b.String()
	return &c
}

func (h *logHandler) WithGroup(string) slog.Handler { return h }

// NewLogger returns a logger writing fail2ban-style lines to w at level.
// A "logger" attribute given to With renames the emitting component
// ("palisade.ban").
func NewLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(newLogHandler(w, level))
}

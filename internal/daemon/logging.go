package daemon

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
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
	mu *sync.Mutex
	// bufs are the line buffers (shared with the handlers WithAttrs
	// makes): a line is formatted with appends into one, without a
	// string or a boxed value per attribute (the ban manager logs a line
	// per ban and per extension, thousands a second in a storm).
	bufs  *sync.Pool
	w     io.Writer
	level slog.Leveler
	name  string
	pid   int
	attrs string
}

func newLogHandler(w io.Writer, level slog.Leveler) *logHandler {
	bufs := &sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}
	return &logHandler{mu: &sync.Mutex{}, bufs: bufs, w: w, level: level, name: "palisade", pid: os.Getpid()}
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
	bp := h.bufs.Get().(*[]byte)
	b := (*bp)[:0]
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	b = t.AppendFormat(b, "2006-01-02 15:04:05,")
	ms := t.Nanosecond() / 1e6
	b = append(b, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), ' ')
	b = appendPadded(b, h.name, 24)
	b = append(b, '[')
	b = strconv.AppendInt(b, int64(h.pid), 10)
	b = append(b, "]: "...)
	b = appendPadded(b, levelName(r.Level), 7)
	b = append(b, ' ')
	b = append(b, r.Message...)
	b = append(b, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, a)
		return true
	})
	b = append(b, '\n')
	h.mu.Lock()
	_, err := h.w.Write(b)
	h.mu.Unlock()
	if cap(b) <= 64<<10 {
		*bp = b
		h.bufs.Put(bp)
	}
	return err
}

// appendPadded appends s padded with spaces to width (fmt's %-Ns).
func appendPadded(b []byte, s string, width int) []byte {
	b = append(b, s...)
	for n := len(s); n < width; n++ {
		b = append(b, ' ')
	}
	return b
}

// appendAttr appends " key=value", the value as slog.Value.String shows
// it, quoted (strconv.Quote) when it is empty or holds a space, tab,
// newline, quote or "=".
func appendAttr(b []byte, a slog.Attr) []byte {
	if a.Equal(slog.Attr{}) {
		return b
	}
	b = append(b, ' ')
	b = append(b, a.Key...)
	b = append(b, '=')
	start := len(b)
	b = appendValue(b, a.Value.Resolve())
	v := b[start:]
	if len(v) > 0 && !bytes.ContainsAny(v, " \t\n\"=") {
		return b
	}
	return appendQuoted(b, start)
}

// appendQuoted quotes b[start:] in place as strconv.Quote does.
func appendQuoted(b []byte, start int) []byte {
	var tmp [256]byte
	raw := append(tmp[:0], b[start:]...)
	b = b[:start]
	for _, c := range raw {
		if c < 0x20 || c >= 0x7f {
			// Not printable ASCII: strconv's rules for the rest.
			return strconv.AppendQuote(b, string(raw))
		}
	}
	b = append(b, '"')
	for _, c := range raw {
		if c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, c)
	}
	return append(b, '"')
}

// appendValue appends v as v.String() would make it.
func appendValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return append(b, v.String()...)
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindFloat64:
		return strconv.AppendFloat(b, v.Float64(), 'g', -1, 64)
	case slog.KindTime:
		// time.Time.String, without its string (slog.TimeValue drops the
		// monotonic reading String would show)
		return v.Time().AppendFormat(b, "2006-01-02 15:04:05.999999999 -0700 MST")
	case slog.KindAny:
		switch x := v.Any().(type) {
		case netip.Prefix:
			if x.IsValid() {
				return x.AppendTo(b)
			}
		case netip.Addr:
			if x.IsValid() {
				return x.AppendTo(b)
			}
		}
	}
	return append(b, v.String()...)
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	b := []byte(h.attrs)
	for _, a := range as {
		if a.Key == "logger" {
			c.name = a.Value.String()
			continue
		}
		b = appendAttr(b, a)
	}
	c.attrs = string(b)
	return &c
}

func (h *logHandler) WithGroup(string) slog.Handler { return h }

// NewLogger returns a logger writing fail2ban-style lines to w at level.
// A "logger" attribute given to With renames the emitting component
// ("palisade.ban").
func NewLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(newLogHandler(w, level))
}

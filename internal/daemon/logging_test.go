package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fmtLine is the handler's line built with fmt, the way it was written
// before the append-based formatting: the reference its output must
// equal byte for byte.
func fmtLine(t time.Time, name string, pid int, level slog.Level, msg string, attrs ...slog.Attr) string {
	var b strings.Builder
	b.WriteString(t.Format("2006-01-02 15:04:05"))
	fmt.Fprintf(&b, ",%03d %-24s[%d]: %-7s %s", t.Nanosecond()/1e6, name, pid, levelName(level), msg)
	for _, a := range attrs {
		v := a.Value.Resolve().String()
		if strings.ContainsAny(v, " \t\n\"=") || v == "" {
			v = strconv.Quote(v)
		}
		fmt.Fprintf(&b, " %s=%s", a.Key, v)
	}
	b.WriteByte('\n')
	return b.String()
}

type stringer struct{}

func (stringer) String() string { return "a b" }

func TestLogHandlerLines(t *testing.T) {
	at := time.Date(2026, 12, 7, 13, 4, 5, 7_000_000, time.UTC)
	tests := []struct {
		name  string
		t     time.Time
		level slog.Level
		msg   string
		attrs []slog.Attr
	}{
		{"plain", at, slog.LevelInfo, "bans restored", []slog.Attr{slog.Int("restored", 3)}},
		{"ban line", at.Add(993 * time.Millisecond), slog.LevelInfo, "ban", []slog.Attr{
			slog.String("jail", "sshd"), slog.Any("prefix", netip.MustParsePrefix("192.0.2.7/32")),
			slog.Time("expires", at.Add(time.Hour)), slog.Int("offence", 1),
			slog.String("reason", `5 failures within 10m0s (maxretry 5); offence 1, banned for 1h0m0s`)}},
		{"kinds", at, slog.LevelWarn, "kinds", []slog.Attr{
			slog.Uint64("u", 18446744073709551615), slog.Int64("neg", -42), slog.Bool("ok", true),
			slog.Float64("f", 0.25), slog.Float64("big", 1e21), slog.Duration("d", 1500*time.Millisecond),
			slog.Any("addr", netip.MustParseAddr("2001:db8::1")), slog.Any("bad", netip.Prefix{}),
			slog.Any("noaddr", netip.Addr{}), slog.Any("err", errors.New("open: permission denied")),
			slog.Any("s", stringer{}), slog.Time("local", time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600)))}},
		{"quoting", at, slog.LevelError, "quoting", []slog.Attr{
			slog.String("empty", ""), slog.String("eq", "a=b"), slog.String("q", `say "hi" \ back`),
			slog.String("tab", "a\tb"), slog.String("nl", "a\nb"), slog.String("ctl", "bell\a"),
			slog.String("utf8", "café au lait"), slog.String("bad", "x\xffy z"), slog.String("long", strings.Repeat("ab ", 200))}},
		{"levels", at, slog.LevelDebug, "d", nil},
		{"notice", at, LevelNotice, "n", nil},
		{"critical", at, slog.LevelError + 4, "c", []slog.Attr{{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			h := newLogHandler(&out, slog.LevelDebug)
			h.pid = 1234
			r := slog.NewRecord(tt.t, tt.level, tt.msg, 0)
			r.AddAttrs(tt.attrs...)
			if err := h.Handle(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			var want []slog.Attr
			for _, a := range tt.attrs {
				if !a.Equal(slog.Attr{}) {
					want = append(want, a)
				}
			}
			if w := fmtLine(tt.t, "palisade", 1234, tt.level, tt.msg, want...); out.String() != w {
				t.Errorf("got  %q\nwant %q", out.String(), w)
			}
		})
	}
}

func TestLogHandlerWithAttrs(t *testing.T) {
	var out bytes.Buffer
	at := time.Date(2026, 12, 7, 13, 4, 5, 0, time.UTC)
	h := newLogHandler(&out, slog.LevelInfo)
	h.pid = 7
	l := slog.New(h).With("logger", "palisade.ban", "jail", "sshd jail")
	r := slog.NewRecord(at, slog.LevelInfo, "unban", 0)
	r.AddAttrs(slog.Any("prefix", netip.MustParsePrefix("198.51.100.0/24")))
	if err := l.Handler().Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	want := fmtLine(at, "palisade.ban", 7, slog.LevelInfo, "unban", slog.String("jail", "sshd jail"),
		slog.Any("prefix", netip.MustParsePrefix("198.51.100.0/24")))
	if out.String() != want {
		t.Errorf("got  %q\nwant %q", out.String(), want)
	}
	// Below the level: nothing.
	out.Reset()
	l.Debug("hidden")
	if out.Len() != 0 {
		t.Errorf("debug line written at info: %q", out.String())
	}
}

// BenchmarkLogHandler: one ban line (the ban manager writes one per ban
// and per extension).
func BenchmarkLogHandler(b *testing.B) {
	var out bytes.Buffer
	l := slog.New(newLogHandler(&out, slog.LevelInfo))
	p := netip.MustParsePrefix("192.0.2.7/32")
	exp := time.Unix(1800000000, 0).UTC()
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		l.Info("ban", "jail", "sshd", "prefix", p, "expires", exp, "offence", 1, "reason", "5 failures within 10m0s (maxretry 5); offence 1, banned for 1h0m0s")
	}
}

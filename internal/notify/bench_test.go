package notify_test

import (
	"context"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/notify"
)

// blocked is a sink that never returns until its context ends.
type blocked struct{}

func (blocked) Send(ctx context.Context, _ *notify.Report) error { <-ctx.Done(); return ctx.Err() }
func (blocked) Target() string                                   { return "blocked" }

// BenchmarkPublish is the cost of handing one ban event to a route whose
// sink is stuck (what the daemon's event forwarder pays per ban; the ban
// itself never waits for it).
func BenchmarkPublish(b *testing.B) {
	rc := notify.RouteConfig{Name: "r", Type: "blocked", Events: notify.DefaultEvents, GroupWait: time.Minute, Queue: 1 << 16, Timeout: time.Hour}
	n, err := notify.New([]notify.RouteConfig{rc}, notify.Deps{Host: "h", NewSink: func(notify.RouteConfig, string) (notify.Sink, error) { return blocked{}, nil }})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		n.Close(ctx)
		cancel()
	}()
	ev := ban(7, "sshd", time.Now())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		n.Publish(ev)
	}
}

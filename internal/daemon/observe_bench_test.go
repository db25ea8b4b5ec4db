package daemon

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/notify/notifytest"
)

// BenchmarkBanLatencyNotifyHung is BenchmarkBanLatency with a
// notification route to a mail server that accepts connections and never
// answers: bans must land as fast as without it (compare the two), and
// the route's drops are counted.
//
//	GOMAXPROCS=1 go test -run '^$' -bench 'BanLatency' -benchtime 1x -count 5 ./internal/daemon
func BenchmarkBanLatencyNotifyHung(b *testing.B) {
	hung := notifytest.NewHung(b)
	conf := "[notify:admin]\nserver = 127.0.0.1:" + hung.Port() + "\ntls = none\nfrom = p@example.org\nto = a@example.org\n" +
		"group_wait = 0\ntimeout = 2s\nretries = 0\nqueue = 64\nevents = ban\n"
	benchBanLatency(b, func(opts *Options) {
		if err := os.WriteFile(filepath.Join(opts.ConfigDir, "palisade.local"), []byte(conf), 0o644); err != nil {
			b.Fatal(err)
		}
	}, func(d *Daemon) {
		// Give up on the hung server: every ban event is then counted.
		n := d.obs.notifier.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		n.Close(ctx)
		cancel()
		st := n.Stats()[0]
		b.ReportMetric(float64(st.Dropped), "notify-dropped")
		if st.Sent != 0 {
			b.Fatalf("a hung server received mail: %+v", st)
		}
	})
}

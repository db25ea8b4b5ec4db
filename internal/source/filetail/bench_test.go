package filetail

import (
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/source"
)

const benchLine = "Nov 24 19:42:36 host sshd[12345]: Failed password for invalid user admin from 203.0.113.77 port 52214 ssh2\n"

// BenchmarkTailThroughput measures lines appended to a file and delivered
// to a consumer by a live Tailer (fsnotify + poll), in batches of 1000.
func BenchmarkTailThroughput(b *testing.B) {
	path := filepath.Join(b.TempDir(), "auth.log")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	tl := New(Config{})
	defer tl.Close()
	var got atomic.Int64
	ready := make(chan struct{}, 1)
	c := source.ConsumerFuncs{OnLine: func(source.Line) { got.Add(1) }, OnStatus: func(s source.Status) {
		if s.State == source.StateOK {
			select {
			case ready <- struct{}{}:
			default:
			}
		}
	}}
	if _, err := tl.Subscribe([]string{path}, Options{}, c); err != nil {
		b.Fatal(err)
	}
	<-ready
	chunk := []byte{}
	for range 1000 {
		chunk = append(chunk, benchLine...)
	}
	b.SetBytes(int64(len(benchLine)))
	b.ResetTimer()
	start := time.Now()
	written := 0
	for written < b.N {
		n := min(1000, b.N-written)
		if _, err := f.Write(chunk[:n*len(benchLine)]); err != nil {
			b.Fatal(err)
		}
		written += n
	}
	// A tight wait (not testutil/poll's backing-off one): the time until
	// the last line arrives is the measurement.
	deadline := time.Now().Add(time.Minute)
	for got.Load() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("delivered %d of %d lines", got.Load(), b.N)
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lines/s")
}

// BenchmarkTailLatency measures the time from appending one line to the
// consumer's callback, reporting the median and the 99th percentile.
func BenchmarkTailLatency(b *testing.B) {
	for _, mode := range []struct {
		name string
		cfg  Config
	}{
		{"fsnotify", Config{}},
		{"poll100ms", Config{PollOnly: true, PollInterval: 100 * time.Millisecond}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "auth.log")
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			tl := New(mode.cfg)
			defer tl.Close()
			lines := make(chan time.Time, 1)
			ready := make(chan struct{}, 1)
			c := source.ConsumerFuncs{OnLine: func(source.Line) { lines <- time.Now() }, OnStatus: func(s source.Status) {
				if s.State == source.StateOK {
					select {
					case ready <- struct{}{}:
					default:
					}
				}
			}}
			if _, err := tl.Subscribe([]string{path}, Options{}, c); err != nil {
				b.Fatal(err)
			}
			<-ready
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := f.WriteString(benchLine); err != nil {
					b.Fatal(err)
				}
				select {
				case t1 := <-lines:
					lat = append(lat, t1.Sub(t0))
				case <-time.After(10 * time.Second):
					b.Fatal("line not delivered within 10s")
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

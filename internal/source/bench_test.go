package source

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"
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
	tl := NewTailer(TailerConfig{})
	defer tl.Close()
	var got atomic.Int64
	ready := make(chan struct{}, 1)
	c := ConsumerFuncs{OnLine: func(Line) { got.Add(1) }, OnStatus: func(s Status) {
		if s.State == StateOK {
			select {
			case ready <- struct{}{}:
			default:
			}
		}
	}}
	if _, err := tl.Subscribe([]string{path}, TailOptions{}, c); err != nil {
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
		cfg  TailerConfig
	}{
		{"fsnotify", TailerConfig{}},
		{"poll100ms", TailerConfig{PollOnly: true, PollInterval: 100 * time.Millisecond}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "auth.log")
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			tl := NewTailer(mode.cfg)
			defer tl.Close()
			lines := make(chan time.Time, 1)
			ready := make(chan struct{}, 1)
			c := ConsumerFuncs{OnLine: func(Line) { lines <- time.Now() }, OnStatus: func(s Status) {
				if s.State == StateOK {
					select {
					case ready <- struct{}{}:
					default:
					}
				}
			}}
			if _, err := tl.Subscribe([]string{path}, TailOptions{}, c); err != nil {
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

func BenchmarkJournalDecode(b *testing.B) {
	raw := []byte(fmt.Sprintf(`{"__CURSOR":"s=739ad463348b4ceca5a9e69c95a3c93f;i=4ece7;b=6c7c6013a8674f52b0a3bef6f6a09f4c;m=4e2b1d8;t=5e5b43a95ce59;x=c5fe0c6c9a0f3d4","__REALTIME_TIMESTAMP":"1700000000123456","__MONOTONIC_TIMESTAMP":"82031064","_BOOT_ID":"6c7c6013a8674f52b0a3bef6f6a09f4c","PRIORITY":"6","_UID":"0","_GID":"0","_SYSTEMD_UNIT":"ssh.service","_HOSTNAME":"web1","SYSLOG_IDENTIFIER":"sshd","_COMM":"sshd","_PID":"812","_EXE":"/usr/sbin/sshd","MESSAGE":%q}`, benchLine[34:len(benchLine)-1]))
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		e, err := DecodeJournalEntry(raw)
		if err != nil {
			b.Fatal(err)
		}
		_ = e.Format()
	}
}

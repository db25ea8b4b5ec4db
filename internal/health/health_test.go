package health

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// rig is a watchdog over a scripted sample and a manual clock.
type rig struct {
	now     time.Time
	sample  Sample
	changes []Change
	w       *Watchdog
}

func newRig(cfg Config) *rig {
	r := &rig{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r.w = New(cfg, Deps{
		Sample:   func() Sample { return r.sample },
		OnChange: func(c Change) { r.changes = append(r.changes, c) },
		Now:      func() time.Time { return r.now },
	})
	return r
}

func (r *rig) step(d time.Duration) {
	r.now = r.now.Add(d)
	r.w.Check()
}

func (r *rig) jail(name string) *JailSample {
	for i := range r.sample.Jails {
		if r.sample.Jails[i].Jail == name {
			return &r.sample.Jails[i]
		}
	}
	r.sample.Jails = append(r.sample.Jails, JailSample{Jail: name})
	return &r.sample.Jails[len(r.sample.Jails)-1]
}

func (r *rig) take() []Change {
	c := r.changes
	r.changes = nil
	return c
}

func TestReportedProblemCountsAfterGraceOnceAndRecovers(t *testing.T) {
	r := newRig(Config{Interval: time.Second, Grace: 3 * time.Second})
	r.jail("sshd")
	r.jail("nginx")
	r.step(0)
	if ok, _ := r.w.Status(); !ok || len(r.take()) != 0 {
		t.Fatal("healthy at start")
	}
	r.jail("sshd").Problems = []Problem{{Key: "source:/var/log/auth.log", Text: "/var/log/auth.log: missing"}}
	r.step(time.Second) // first seen
	r.step(time.Second)
	r.step(time.Second) // 2s after: within grace
	if ok, _ := r.w.Status(); !ok || len(r.take()) != 0 {
		t.Fatal("counted within the grace time")
	}
	r.step(time.Second) // 3s after: counts
	ch := r.take()
	if len(ch) != 1 || ch[0].Recovered || ch[0].Jail != "sshd" || ch[0].Problem.Text != "/var/log/auth.log: missing" {
		t.Fatalf("changes %+v", ch)
	}
	ok, jails := r.w.Status()
	if ok || jails[1].Jail != "sshd" || jails[1].Healthy || len(jails[1].Problems) != 1 || !jails[0].Healthy {
		t.Fatalf("status %v %+v", ok, jails)
	}
	for range 10 {
		r.step(time.Second)
	}
	if ch := r.take(); len(ch) != 0 {
		t.Fatalf("announced again while it lasts: %+v", ch)
	}
	r.jail("sshd").Problems = nil
	r.step(time.Second)
	ch = r.take()
	if len(ch) != 1 || !ch[0].Recovered || ch[0].Problem.Key != "source:/var/log/auth.log" {
		t.Fatalf("recovery %+v", ch)
	}
	if ok, _ := r.w.Status(); !ok {
		t.Fatal("still unhealthy after recovery")
	}
	if jh := r.w.Jail("sshd"); jh.ProblemsTotal != 1 || !jh.Healthy {
		t.Fatalf("jail %+v", jh)
	}
}

func TestBriefProblemIsNoAlarm(t *testing.T) {
	r := newRig(Config{Grace: 5 * time.Second})
	r.jail("sshd").Problems = []Problem{{Key: "source:x", Text: "x: missing"}}
	r.step(0)
	r.step(2 * time.Second)
	r.jail("sshd").Problems = nil // the rotated file is back
	r.step(time.Second)
	if ch := r.take(); len(ch) != 0 {
		t.Fatalf("changes %+v", ch)
	}
	if r.w.Jail("sshd").ProblemsTotal != 0 {
		t.Fatal("counted")
	}
}

func TestIdleAndNoMatch(t *testing.T) {
	r := newRig(Config{Grace: -1, Idle: time.Hour, NoMatch: 2 * time.Hour,
		Jails: map[string]Thresholds{"quiet": {Idle: -1}, "busy": {Idle: 10 * time.Minute, NoMatch: -1}}})
	for _, j := range []string{"sshd", "quiet", "busy"} {
		r.jail(j)
	}
	r.step(0)
	// Lines flow in sshd and match; nothing anywhere else.
	for i := 1; i <= 6; i++ {
		r.jail("sshd").Lines += 10
		r.jail("sshd").Matches++
		r.step(10 * time.Minute)
	}
	ch := r.take()
	if len(ch) != 1 || ch[0].Jail != "busy" || ch[0].Problem.Key != KeyIdle {
		t.Fatalf("after 60 min: %+v", ch)
	}
	if !strings.Contains(ch[0].Problem.Text, "no log line for 10m0s") {
		t.Errorf("text %q", ch[0].Problem.Text)
	}
	// sshd keeps reading lines but stops matching for two hours.
	for i := 0; i < 12; i++ {
		r.jail("sshd").Lines += 10
		r.jail("busy").Lines++ // busy recovers at once
		r.step(10 * time.Minute)
	}
	got := map[string]bool{}
	for _, c := range r.take() {
		got[c.Jail+"/"+c.Problem.Key+"/"+map[bool]string{true: "ok", false: "bad"}[c.Recovered]] = true
	}
	if !got["busy/idle/ok"] || !got["sshd/nomatch/bad"] || len(got) != 2 {
		t.Fatalf("changes %v, want busy's idle recovery and sshd's no-match problem", got)
	}
	if jh := r.w.Jail("sshd"); jh.Healthy || !strings.Contains(jh.Problems[0], "while 120 lines were read") {
		t.Fatalf("sshd %+v", jh)
	}
	if r.w.Jail("quiet").Healthy != true {
		t.Fatal("quiet has idle off but went unhealthy")
	}
	// A match ends the no-match problem.
	r.jail("sshd").Matches++
	r.step(time.Minute)
	if ch := r.take(); len(ch) != 1 || !ch[0].Recovered || ch[0].Problem.Key != KeyNoMatch {
		t.Fatalf("changes %+v", ch)
	}
}

func TestNoMatchNeedsLines(t *testing.T) {
	r := newRig(Config{Grace: -1, NoMatch: time.Hour})
	r.jail("sshd")
	r.step(0)
	r.step(3 * time.Hour)
	if ch := r.take(); len(ch) != 0 {
		t.Fatalf("no lines, yet a no-match problem: %+v", ch)
	}
}

func TestRemovedJailIsForgottenSilently(t *testing.T) {
	r := newRig(Config{Grace: -1})
	r.jail("sshd").Problems = []Problem{{Key: "k", Text: "broken"}}
	r.step(0)
	r.take()
	r.sample.Jails = nil
	r.step(time.Second)
	if ch := r.take(); len(ch) != 0 {
		t.Fatalf("changes %+v", ch)
	}
	if ok, jails := r.w.Status(); !ok || len(jails) != 0 {
		t.Fatalf("status %v %+v", ok, jails)
	}
}

func TestLastLinePerSource(t *testing.T) {
	r := newRig(Config{})
	r.sample.Sources = []SourceSample{{Name: "/var/log/auth.log"}}
	r.step(0)
	if !r.w.LastLine("/var/log/auth.log").IsZero() {
		t.Fatal("a source without lines has a last-line time")
	}
	r.sample.Sources[0].Lines = 3
	r.step(time.Minute)
	at := r.now
	r.step(time.Minute)
	if got := r.w.LastLine("/var/log/auth.log"); !got.Equal(at) {
		t.Fatalf("last line %v, want %v", got, at)
	}
}

func TestRunChecksEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		n := 0
		w := New(Config{Interval: 10 * time.Second}, Deps{Sample: func() Sample {
			mu.Lock()
			n++
			mu.Unlock()
			return Sample{}
		}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { w.Run(ctx); close(done) }()
		time.Sleep(35 * time.Second)
		synctest.Wait()
		cancel()
		<-done
		if n != 4 { // at 0, 10, 20, 30 s
			t.Fatalf("%d checks in 35 s", n)
		}
	})
}

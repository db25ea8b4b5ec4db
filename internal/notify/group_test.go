package notify_test

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/palisade-project/palisade/internal/notify"
)

// memSink records reports; fail makes it refuse them.
type memSink struct {
	mu   sync.Mutex
	reps []*notify.Report
	at   []time.Time
	fail bool
}

func (m *memSink) Send(_ context.Context, r *notify.Report) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return context.DeadlineExceeded
	}
	m.reps = append(m.reps, r)
	m.at = append(m.at, time.Now())
	return nil
}

func (m *memSink) Target() string { return "memory" }

func (m *memSink) got() ([]*notify.Report, []time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*notify.Report(nil), m.reps...), append([]time.Time(nil), m.at...)
}

func memNotifier(t *testing.T, sinks map[string]*memSink, routes ...notify.RouteConfig) *notify.Notifier {
	t.Helper()
	n, err := notify.New(routes, notify.Deps{Host: "host1", Location: time.UTC,
		NewSink: func(rc notify.RouteConfig, _ string) (notify.Sink, error) { return sinks[rc.Name], nil }})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func memRoute(name string) notify.RouteConfig {
	return notify.RouteConfig{Name: name, Type: "memory", Events: notify.DefaultEvents, GroupWait: time.Minute, MaxPerHour: 20}
}

func sumBans(reps []*notify.Report) int {
	n := 0
	for _, r := range reps {
		n += r.Counts.Bans
	}
	return n
}

func TestGroupWaitCollectsOneMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &memSink{}
		n := memNotifier(t, map[string]*memSink{"r": s}, memRoute("r"))
		start := time.Now()
		n.Publish(ban(1, "sshd", time.Now()))
		time.Sleep(20 * time.Second)
		n.Publish(ban(2, "sshd", time.Now()))
		time.Sleep(30 * time.Second)
		n.Publish(ban(3, "nginx", time.Now()))
		synctest.Wait()
		if reps, _ := s.got(); len(reps) != 0 {
			t.Fatalf("sent before group_wait: %d", len(reps))
		}
		time.Sleep(11 * time.Second)
		synctest.Wait()
		reps, at := s.got()
		if len(reps) != 1 || reps[0].Counts.Bans != 3 || at[0].Sub(start) != time.Minute {
			t.Fatalf("reports %d, at %v", len(reps), at)
		}
		if len(reps[0].Jails) != 2 || reps[0].Jails[0].Jail != "nginx" || reps[0].Jails[1].Bans != 2 {
			t.Fatalf("jails %+v", reps[0].Jails)
		}
		n.Close(context.Background())
	})
}

func TestStormIsCappedAndCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &memSink{}
		rc := memRoute("r")
		rc.MaxPerHour = 5
		n := memNotifier(t, map[string]*memSink{"r": s}, rc)
		// 10,000 bans over two hours, 25 every 18 s.
		for i := 0; i < 400; i++ {
			for k := 0; k < 25; k++ {
				n.Publish(ban(i*25+k, "sshd", time.Now()))
			}
			time.Sleep(18 * time.Second)
		}
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		reps, at := s.got()
		if got := sumBans(reps); got != 10000 {
			t.Fatalf("reports add up to %d bans, want 10000", got)
		}
		for i := range at {
			inHour := 0
			for j := range at {
				if !at[j].Before(at[i]) && at[j].Sub(at[i]) < time.Hour {
					inHour++
				}
			}
			if inHour > 5 {
				t.Fatalf("%d messages within an hour of %v (cap 5)", inHour, at[i])
			}
		}
		if len(reps) > 20 {
			t.Fatalf("%d messages for the storm", len(reps))
		}
		if st := n.Stats()[0]; st.Dropped != 0 || st.Pending != 0 {
			t.Fatalf("stats %+v", st)
		}
		n.Close(context.Background())
	})
}

func TestHealthSkipsGroupWaitAndCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &memSink{}
		rc := memRoute("r")
		rc.MaxPerHour = 1
		n := memNotifier(t, map[string]*memSink{"r": s}, rc)
		n.Publish(ban(1, "sshd", time.Now()))
		time.Sleep(2 * time.Minute) // the hourly cap is used up
		n.Publish(ban(2, "sshd", time.Now()))
		n.Publish(notify.Event{Kind: notify.KindProblem, Time: time.Now(), Jail: "sshd", Problem: "source /var/log/auth.log: missing"})
		n.Publish(notify.Event{Kind: notify.KindProblem, Time: time.Now(), Jail: "nginx", Problem: "firewall: write failed"})
		time.Sleep(2 * time.Second)
		synctest.Wait()
		reps, _ := s.got()
		if len(reps) != 2 || reps[1].Counts.Problems != 2 || reps[1].Counts.Bans != 0 {
			t.Fatalf("%d reports; last %+v", len(reps), reps[len(reps)-1].Counts)
		}
		if !strings.Contains(reps[1].Subject, "2 PROBLEMS") {
			t.Errorf("subject %q", reps[1].Subject)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if reps, _ = s.got(); len(reps) != 3 || reps[2].Counts.Bans != 1 {
			t.Fatalf("the capped ban did not follow an hour later: %d reports", len(reps))
		}
		n.Close(context.Background())
	})
}

func TestRoutingByJailAndEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sinks := map[string]*memSink{"all": {}, "ssh": {}, "esc": {}, "life": {}}
		all := memRoute("all")
		all.Events = notify.EventBan | notify.EventUnban | notify.EventHealth
		ssh := memRoute("ssh")
		ssh.Jails = []string{"sshd"}
		esc := memRoute("esc")
		esc.Events = notify.EventEscalation
		life := memRoute("life")
		life.Events, life.Jails = notify.EventLifecycle, []string{"sshd"}
		n := memNotifier(t, sinks, all, ssh, esc, life)
		now := time.Now()
		n.Publish(notify.Event{Kind: notify.KindStart, Time: now})
		n.Publish(ban(1, "sshd", now))
		n.Publish(ban(2, "nginx", now))
		e := ban(3, "sshd", now)
		e.Escalated, e.Offence, e.BanTime = true, 2, 2*time.Hour
		n.Publish(e)
		n.Publish(notify.Event{Kind: notify.KindUnban, Time: now, Jail: "nginx", Prefix: netip.MustParsePrefix("198.51.100.2/32"), Cause: "expired"})
		n.Publish(notify.Event{Kind: notify.KindProblem, Time: now, Jail: "nginx", Problem: "x"})
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		count := func(name string) notify.Counts {
			reps, _ := sinks[name].got()
			var c notify.Counts
			for _, r := range reps {
				c.Bans += r.Counts.Bans
				c.Unbans += r.Counts.Unbans
				c.Escalations += r.Counts.Escalations
				c.Problems += r.Counts.Problems
				c.Starts += r.Counts.Starts
			}
			return c
		}
		for name, want := range map[string]notify.Counts{
			"all":  {Bans: 3, Unbans: 1, Escalations: 1, Problems: 1},
			"ssh":  {Bans: 2, Escalations: 1},
			"esc":  {Bans: 1, Escalations: 1},
			"life": {Starts: 1},
		} {
			if got := count(name); got != want {
				t.Errorf("route %s: %+v, want %+v", name, got, want)
			}
		}
		n.Close(context.Background())
	})
}

func TestDailyDigest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &memSink{}
		rc := memRoute("r")
		rc.Events = notify.EventHealth // bans only in the digest
		rc.Digest = &notify.Digest{Hour: 7, Minute: 0}
		n := memNotifier(t, map[string]*memSink{"r": s}, rc)
		// synctest's clock starts at midnight UTC.
		for i := 0; i < 30; i++ {
			n.Publish(ban(i%3, "sshd", time.Now()))
			if i%10 == 0 {
				n.Publish(ban(100, "recidive", time.Now()))
			}
			time.Sleep(time.Minute)
		}
		synctest.Wait()
		if reps, _ := s.got(); len(reps) != 0 {
			t.Fatalf("%d messages before the digest", len(reps))
		}
		time.Sleep(7 * time.Hour)
		synctest.Wait()
		reps, at := s.got()
		if len(reps) != 1 || reps[0].Type != notify.ReportDigest {
			t.Fatalf("%d reports", len(reps))
		}
		d := reps[0]
		if at[0].UTC().Hour() != 7 || at[0].Minute() != 0 || d.Counts.Bans != 33 || len(d.Top) != 4 || d.Top[0].Bans != 10 || d.Top[3].IP != "198.51.100.100" {
			t.Fatalf("digest at %v: %+v top %+v", at[0], d.Counts, d.Top)
		}
		if len(d.Jails) != 2 || d.Jails[0].Jail != "recidive" || d.Jails[0].Bans != 3 {
			t.Fatalf("jails %+v", d.Jails)
		}
		if !strings.Contains(d.Text(), "Most banned addresses:") {
			t.Errorf("digest text:\n%s", d.Text())
		}
		// The next day starts from zero.
		time.Sleep(24 * time.Hour)
		synctest.Wait()
		if reps, _ = s.got(); len(reps) != 2 || reps[1].Counts.Bans != 0 {
			t.Fatalf("second digest: %d reports", len(reps))
		}
		n.Close(context.Background())
	})
}

func TestCloseSendsPendingOrCountsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &memSink{}
		n := memNotifier(t, map[string]*memSink{"r": s}, memRoute("r"))
		for i := 0; i < 10; i++ {
			n.Publish(ban(i, "sshd", time.Now()))
		}
		n.Close(context.Background()) // before group_wait: sent anyway
		if reps, _ := s.got(); sumBans(reps) != 10 {
			t.Fatalf("pending bans not sent at close: %d", sumBans(reps))
		}
		n.Publish(ban(11, "sshd", time.Now())) // after Close: ignored, no panic

		bad := &memSink{fail: true}
		rc := memRoute("r")
		rc.Retries = 3
		n = memNotifier(t, map[string]*memSink{"r": bad}, rc)
		for i := 0; i < 10; i++ {
			n.Publish(ban(i, "sshd", time.Now()))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n.Close(ctx)
		cancel()
		if st := n.Stats()[0]; st.Dropped != 10 || st.Failed != 1 {
			t.Fatalf("stats after a failing close: %+v", st)
		}
	})
}

func TestLinesOnlyWhenAskedEscapedAndCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		plain, withLines := &memSink{}, &memSink{}
		a, b := memRoute("plain"), memRoute("lines")
		b.Lines, b.MaxLines = true, 2
		n := memNotifier(t, map[string]*memSink{"plain": plain, "lines": withLines}, a, b)
		if !n.WantsLines("sshd") {
			t.Fatal("WantsLines")
		}
		ev := ban(1, "sshd", time.Now())
		ev.Lines = []string{
			"Failed password for \x1b[2J\u202eroot\n from 198.51.100.1",
			strings.Repeat("A", 5000),
			"third line is over the cap",
		}
		n.Publish(ev)
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		pr, _ := plain.got()
		lr, _ := withLines.got()
		if len(pr) != 1 || len(pr[0].Events[0].Lines) != 0 || strings.Contains(pr[0].Text(), "Failed password") {
			t.Fatalf("lines sent to a route that did not ask for them")
		}
		lines := lr[0].Events[0].Lines
		if len(lines) != 2 || lines[0] != `Failed password for \x1b[2J\u{202e}root\x0a from 198.51.100.1` || len(lines[1]) > notify.MaxLineLen+len("…") {
			t.Fatalf("lines %q", lines)
		}
		if !strings.Contains(lr[0].Text(), `| Failed password for \x1b[2J`) {
			t.Errorf("text:\n%s", lr[0].Text())
		}
		n.Close(context.Background())
	})
}

func TestClean(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"tab\tnew\nline\r", `tab\x09new\x0aline\x0d`},
		{"bad \xff utf8", "bad \ufffd utf8"},
		{"bidi \u202e and \u2066", `bidi \u{202e} and \u{2066}`},
		{"c1 \u0085", `c1 \u{0085}`},
		{"ünïcödé ok", "ünïcödé ok"},
	} {
		if got := notify.Clean(c.in, 100); got != c.want {
			t.Errorf("Clean(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := notify.Clean("aaaé", 4); got != "aaa…" {
		t.Errorf("a rune cut by the cap: %q", got)
	}
}

func TestParsers(t *testing.T) {
	if s, err := notify.ParseEvents("ban, health"); err != nil || s != notify.EventBan|notify.EventHealth {
		t.Errorf("ParseEvents: %v %v", s, err)
	}
	if s, err := notify.ParseEvents("none"); err != nil || s != 0 {
		t.Errorf("ParseEvents(none): %v %v", s, err)
	}
	if _, err := notify.ParseEvents("ban, bogus"); err == nil {
		t.Error("ParseEvents accepted bogus")
	}
	for _, c := range []struct {
		in   string
		want *notify.Digest
		ok   bool
	}{{"daily 07:00", &notify.Digest{Hour: 7}, true}, {"23:59", &notify.Digest{Hour: 23, Minute: 59}, true},
		{"", nil, true}, {"off", nil, true}, {"daily 7", nil, false}, {"daily 24:00", nil, false}, {"weekly 07:00", nil, false}} {
		d, err := notify.ParseDigest(c.in)
		if (err == nil) != c.ok || (d == nil) != (c.want == nil) || d != nil && *d != *c.want {
			t.Errorf("ParseDigest(%q) = %v, %v", c.in, d, err)
		}
	}
	for _, c := range []struct {
		server, tls string
		host        string
		port        int
		mode        string
		ok          bool
	}{
		{"mail.example.org:587", "", "mail.example.org", 587, notify.TLSStartTLS, true},
		{"mail.example.org", "", "mail.example.org", 587, notify.TLSStartTLS, true},
		{"mail.example.org:465", "", "mail.example.org", 465, notify.TLSImplicit, true},
		{"localhost", "", "localhost", 25, notify.TLSNone, true},
		{"[::1]:2525", "", "::1", 2525, notify.TLSNone, true},
		{"mail.example.org", "implicit", "mail.example.org", 465, notify.TLSImplicit, true},
		{"mail.example.org:99999", "", "", 0, "", false},
		{"mail.example.org", "sometimes", "", 0, "", false},
		{"user@mail.example.org", "", "", 0, "", false},
	} {
		h, p, m, err := notify.ParseServer(c.server, c.tls)
		if (err == nil) != c.ok || h != c.host || p != c.port || m != c.mode {
			t.Errorf("ParseServer(%q, %q) = %q %d %q %v", c.server, c.tls, h, p, m, err)
		}
	}
	if _, err := notify.ParseWebhookURL("ftp://example.org/x"); err == nil {
		t.Error("ftp URL accepted")
	}
	if _, err := notify.ParseWebhookURL("https://user:pw@example.org/x"); err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("URL with credentials: %v", err)
	}
}

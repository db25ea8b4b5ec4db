package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/notify"
	"github.com/palisade-project/palisade/internal/notify/notifytest"
)

func ban(i int, jail string, t time.Time) notify.Event {
	a := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
	if i > 255 {
		a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
	}
	return notify.Event{Kind: notify.KindBan, Time: t, Jail: jail, Prefix: netip.PrefixFrom(a, a.BitLen()),
		BanTime: time.Hour, Expires: t.Add(time.Hour), Offence: 1, Reason: "5 failures within 10m0s (maxretry 5); offence 1, banned for 1h0m0s"}
}

func smtpRoute(name string, s *notifytest.SMTPServer, tlsMode string) notify.RouteConfig {
	port, _ := strconv.Atoi(s.Port())
	return notify.RouteConfig{Name: name, Type: notify.TypeSMTP, Events: notify.DefaultEvents,
		GroupWait: 50 * time.Millisecond, Timeout: 5 * time.Second,
		SMTP: notify.SMTPConfig{Host: "127.0.0.1", Port: port, TLS: tlsMode, From: "palisade@example.org", To: []string{"admin@example.org"}}}
}

func newNotifier(t *testing.T, routes ...notify.RouteConfig) *notify.Notifier {
	t.Helper()
	n, err := notify.New(routes, notify.Deps{Host: "host1.example.org", Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	return n
}

// waitStats waits until cond holds for the route's counters.
func waitStats(t *testing.T, n *notify.Notifier, what string, cond func(notify.RouteStats) bool) notify.RouteStats {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := n.Stats()[0]
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: stats %+v", what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSMTPOneBanStartTLSAuth(t *testing.T) {
	cert := notifytest.NewCert(t)
	srv := notifytest.NewSMTPServer(t, notifytest.SMTPOptions{Cert: cert, User: "palisade", Password: "s3cret"})
	rc := smtpRoute("admin", srv, notify.TLSStartTLS)
	rc.SMTP.CAFile, rc.SMTP.User, rc.SMTP.Password = cert.CAFile, "palisade", "s3cret"
	n := newNotifier(t, rc)
	t0 := time.Date(2026, 11, 24, 20, 14, 43, 0, time.UTC)
	n.Publish(ban(7, "sshd", t0))
	m := srv.Wait(t, 1, 10*time.Second)[0]
	if !m.TLS || m.Auth != "palisade" || m.From != "palisade@example.org" || len(m.To) != 1 || m.To[0] != "admin@example.org" {
		t.Fatalf("envelope: tls=%v auth=%q from=%q to=%v", m.TLS, m.Auth, m.From, m.To)
	}
	subj := m.Msg.Header.Get("Subject")
	if subj != "[palisade] host1.example.org: banned 198.51.100.7 in sshd for 1h0m0s" {
		t.Errorf("subject %q", subj)
	}
	if m.Msg.Header.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("no Auto-Submitted header")
	}
	for _, want := range []string{"address:  198.51.100.7", "jail:     sshd", "host:     host1.example.org",
		"banned:   2026-11-24 20:14:43 UTC", "ban time: 1h0m0s (until 2026-11-24 21:14:43 UTC)", "offence:  1"} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("body lacks %q:\n%s", want, m.Body)
		}
	}
	waitStats(t, n, "sent", func(s notify.RouteStats) bool { return s.Sent == 1 })
	time.Sleep(100 * time.Millisecond) // group_wait twice over: still one message
	if got := len(srv.Mails()); got != 1 {
		t.Fatalf("%d mails for one ban", got)
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	cert := notifytest.NewCert(t)
	srv := notifytest.NewSMTPServer(t, notifytest.SMTPOptions{Cert: cert, Implicit: true})
	rc := smtpRoute("admin", srv, notify.TLSImplicit)
	rc.SMTP.CAFile = cert.CAFile
	rc.SMTP.From = "fail2ban@<fq-hostname>" // as fail2ban's sender option has it
	n := newNotifier(t, rc)
	n.Publish(ban(8, "sshd", time.Now()))
	if m := srv.Wait(t, 1, 10*time.Second)[0]; !m.TLS || !strings.Contains(m.Body, "198.51.100.8") || m.From != "fail2ban@host1.example.org" {
		t.Fatalf("tls=%v from=%q body:\n%s", m.TLS, m.From, m.Body)
	}
}

func TestSMTPRefusesUnverifiedCertificate(t *testing.T) {
	cert := notifytest.NewCert(t)
	srv := notifytest.NewSMTPServer(t, notifytest.SMTPOptions{Cert: cert})
	rc := smtpRoute("admin", srv, notify.TLSStartTLS) // no ca_file: the system roots do not know it
	rc.Retries = 0
	n := newNotifier(t, rc)
	res, err := n.Test(context.Background(), "admin")
	if err != nil {
		t.Fatal(err)
	}
	if res[0].OK || !strings.Contains(res[0].Error, "certificate") {
		t.Fatalf("test result %+v", res[0])
	}
	if len(srv.Mails()) != 0 {
		t.Fatal("mail sent over an unverified connection")
	}
}

var countRE = regexp.MustCompile(`: (\d+) bans`)

// bansIn returns how many bans a mail reports.
func bansIn(t *testing.T, m notifytest.Mail) int {
	subj := m.Msg.Header.Get("Subject")
	if strings.Contains(subj, ": banned ") {
		return 1
	}
	mm := countRE.FindStringSubmatch(subj)
	if mm == nil {
		t.Fatalf("subject %q names no count", subj)
	}
	n, _ := strconv.Atoi(mm[1])
	return n
}

func TestSMTPBurstOfThousand(t *testing.T) {
	srv := notifytest.NewSMTPServer(t, notifytest.SMTPOptions{})
	rc := smtpRoute("admin", srv, notify.TLSNone)
	rc.GroupWait = 200 * time.Millisecond
	n := newNotifier(t, rc)
	now := time.Now()
	for i := 0; i < 1000; i++ {
		n.Publish(ban(i, "sshd", now))
	}
	st := waitStats(t, n, "all sent", func(s notify.RouteStats) bool { return s.Pending == 0 && s.Sent > 0 && len(srv.Mails()) == int(s.Sent) })
	mails := srv.Mails()
	total := 0
	for _, m := range mails {
		total += bansIn(t, m)
	}
	if len(mails) > 3 || total != 1000 || st.Dropped != 0 {
		t.Fatalf("%d mails with %d bans (dropped %d), want at most a handful adding up to 1000", len(mails), total, st.Dropped)
	}
	if !strings.Contains(mails[0].Body, "… and ") {
		t.Errorf("a long batch should list the first bans and count the rest:\n%s", mails[0].Body)
	}
}

func TestHungSMTPDropsAndNeverBlocks(t *testing.T) {
	hung := notifytest.NewHung(t)
	port, _ := strconv.Atoi(hung.Port())
	rc := notify.RouteConfig{Name: "admin", Type: notify.TypeSMTP, Events: notify.DefaultEvents, GroupWait: 0,
		Timeout: 300 * time.Millisecond, Retries: 0, Queue: 64,
		SMTP: notify.SMTPConfig{Host: "127.0.0.1", Port: port, TLS: notify.TLSNone, From: "p@example.org", To: []string{"a@example.org"}}}
	n := newNotifier(t, rc)
	now := time.Now()
	// Publish must return at once however stuck the sink is: 5,000 events
	// through a 64-slot queue; whatever does not fit is dropped.
	for i := 0; i < 5000; i++ {
		n.Publish(ban(i, "sshd", now))
	}
	st := waitStats(t, n, "every event accounted for", func(s notify.RouteStats) bool {
		return s.Failed > 0 && s.Pending == 0 && s.Dropped == 5000
	})
	if st.Sent != 0 || st.LastError == "" || hung.Accepted() == 0 {
		t.Fatalf("stats %+v accepted %d", st, hung.Accepted())
	}
}

type hook struct {
	mu      sync.Mutex
	bodies  [][]byte
	headers []http.Header
	status  int
}

func newHook(t *testing.T) (*hook, *httptest.Server) {
	h := &hook{status: 200}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, b)
		h.headers = append(h.headers, r.Header.Clone())
		st := h.status
		h.mu.Unlock()
		w.WriteHeader(st)
		fmt.Fprintln(w, "\x1b[31mreceiver says no")
	}))
	t.Cleanup(srv.Close)
	return h, srv
}

func (h *hook) got() ([][]byte, []http.Header) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.bodies...), append([]http.Header(nil), h.headers...)
}

func hookRoute(url, format string) notify.RouteConfig {
	return notify.RouteConfig{Name: "chat", Type: notify.TypeWebhook, Events: notify.DefaultEvents, GroupWait: 200 * time.Millisecond,
		Timeout: 5 * time.Second, Webhook: notify.WebhookConfig{URL: url, Format: format}}
}

func TestWebhookJSONSignedBurst(t *testing.T) {
	h, srv := newHook(t)
	rc := hookRoute(srv.URL+"/hook/T000", notify.FormatJSON)
	rc.Webhook.Secret = []byte("hook-secret")
	rc.Webhook.Token = "tok"
	n := newNotifier(t, rc)
	now := time.Now()
	for i := 0; i < 1000; i++ {
		jail := "sshd"
		if i%4 == 0 {
			jail = "nginx-http-auth"
		}
		n.Publish(ban(i, jail, now))
	}
	waitStats(t, n, "sent", func(s notify.RouteStats) bool {
		bs, _ := h.got()
		return s.Pending == 0 && s.Sent > 0 && len(bs) == int(s.Sent)
	})
	bodies, headers := h.got()
	total, perJail := 0, map[string]int{}
	for i, b := range bodies {
		if sig := headers[i].Get(notify.DefaultSignatureHeader); sig != notify.Sign([]byte("hook-secret"), b) {
			t.Fatalf("signature %q does not verify", sig)
		}
		if headers[i].Get("Authorization") != "Bearer tok" || headers[i].Get("Content-Type") != "application/json" {
			t.Fatalf("headers %v", headers[i])
		}
		var rep notify.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Version != 1 || rep.Host != "host1.example.org" || rep.Route != "chat" || rep.Type != notify.ReportEvents {
			t.Fatalf("report %+v", rep)
		}
		if len(rep.Events)+rep.Omitted != rep.Total {
			t.Fatalf("events %d + omitted %d != total %d", len(rep.Events), rep.Omitted, rep.Total)
		}
		total += rep.Counts.Bans
		for _, j := range rep.Jails {
			perJail[j.Jail] += j.Bans
		}
	}
	if len(bodies) > 3 || total != 1000 || perJail["sshd"] != 750 || perJail["nginx-http-auth"] != 250 {
		t.Fatalf("%d posts, %d bans, per jail %v", len(bodies), total, perJail)
	}
}

func TestWebhookFormats(t *testing.T) {
	for _, format := range []string{notify.FormatSlack, notify.FormatNtfy} {
		t.Run(format, func(t *testing.T) {
			h, srv := newHook(t)
			rc := hookRoute(srv.URL, format)
			rc.GroupWait = 0
			rc.Events = notify.EventHealth
			n := newNotifier(t, rc)
			n.Publish(notify.Event{Kind: notify.KindProblem, Jail: "sshd", Problem: "source /var/log/auth.log: missing <b>&"})
			waitStats(t, n, "sent", func(s notify.RouteStats) bool { return s.Sent == 1 })
			bodies, headers := h.got()
			switch format {
			case notify.FormatSlack:
				var msg struct{ Text string }
				if err := json.Unmarshal(bodies[0], &msg); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(msg.Text, "PROBLEM in jail sshd") || !strings.Contains(msg.Text, "missing &lt;b&gt;&amp;") {
					t.Fatalf("slack text %q", msg.Text)
				}
			case notify.FormatNtfy:
				if headers[0].Get("Priority") != "high" || !strings.Contains(headers[0].Get("Title"), "PROBLEM in jail sshd") {
					t.Fatalf("ntfy headers %v", headers[0])
				}
				if !strings.Contains(string(bodies[0]), "found a problem in jail sshd at ") || !strings.Contains(string(bodies[0]), "  source /var/log/auth.log: missing <b>&") {
					t.Fatalf("ntfy body %q", bodies[0])
				}
			}
		})
	}
}

func TestWebhookErrorIsReportedCleanly(t *testing.T) {
	h, srv := newHook(t)
	h.status = 500
	n := newNotifier(t, hookRoute(srv.URL+"/secret-token-path", notify.FormatJSON))
	res, err := n.Test(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	r := res[0]
	if r.OK || !strings.Contains(r.Error, "HTTP 500") || strings.Contains(r.Error, "secret-token-path") || strings.Contains(r.Error, "\x1b") {
		t.Fatalf("result %+v", r)
	}
	if strings.Contains(r.Target, "secret-token-path") {
		t.Fatalf("target leaks the URL path: %q", r.Target)
	}
}

func TestTestReportsEachRoute(t *testing.T) {
	srv := notifytest.NewSMTPServer(t, notifytest.SMTPOptions{})
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadPort, _ := strconv.Atoi(strings.TrimPrefix(dead.Addr().String(), "127.0.0.1:"))
	dead.Close() // nothing listens there now
	good := smtpRoute("good", srv, notify.TLSNone)
	bad := smtpRoute("bad", srv, notify.TLSNone)
	bad.SMTP.Port = deadPort
	n := newNotifier(t, good, bad)
	res, err := n.Test(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || !res[0].OK || res[1].OK || res[1].Error == "" {
		t.Fatalf("results %+v", res)
	}
	m := srv.Wait(t, 1, 5*time.Second)[0]
	if !strings.Contains(m.Msg.Header.Get("Subject"), "test message") {
		t.Fatalf("subject %q", m.Msg.Header.Get("Subject"))
	}
	if _, err := n.Test(context.Background(), "nope"); err == nil || !strings.Contains(err.Error(), "bad, good") {
		t.Fatalf("unknown route: %v", err)
	}
}

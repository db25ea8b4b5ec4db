package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/metrics/metricstest"
)

func sample() Snapshot {
	return Snapshot{
		Version: "0.1.0", Healthy: false, ReloadOK: true,
		Jails: []Jail{
			{Name: "sshd", Lines: 120, Matches: 14, Failures: 12, Ignored: 2, Bans: 3, Unbans: 1, Banned: 2, Tracked: 5, Evictions: 1, AlreadyBanned: 9, Healthy: true,
				BacktrackSeconds: 0.25, BacktrackSkipped: 7},
			{Name: "nginx", Healthy: false, Problems: 1},
		},
		Sources: []Source{
			{Name: "/var/log/auth.log", Kind: "file", Lines: 120, Bytes: 9000, Rotations: 1, Up: true, LastLine: time.Unix(1700000000, 500000000)},
			{Name: "journal:sshd", Kind: "journal", Lines: 7, Errors: 2, Skipped: 1},
		},
		Backends: []Backend{{Name: "nftables", Ops: map[string]uint64{"setup": 1, "add": 3, "remove": 1}, Failures: map[string]uint64{"add": 1}, Elements: 2}},
		Routes:   []Route{{Name: "admin", Type: "smtp", Sent: 2, Failed: 1, Dropped: 5, Pending: 3}},
		Bans:     Bans{Active: 2, Refused: 4, ReconcileReAdded: 6},
	}
}

func scrape(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code, rec.Body.String()
}

func TestMetricsFromSnapshot(t *testing.T) {
	h := Handler(NewRegistry(sample), func() (bool, any) { return true, nil }, nil)
	code, text := scrape(t, h, "/metrics")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	metricstest.Check(t, text)
	for _, want := range []string{
		`palisade_build_info{version="0.1.0"} 1`,
		`palisade_healthy 0`,
		`palisade_jail_lines_total{jail="sshd"} 120`,
		`palisade_jail_matches_total{jail="sshd"} 14`,
		`palisade_jail_failures_total{jail="sshd"} 12`,
		`palisade_jail_bans_total{jail="sshd"} 3`,
		`palisade_jail_unbans_total{jail="sshd"} 1`,
		`palisade_jail_banned{jail="sshd"} 2`,
		`palisade_jail_failtable_entries{jail="sshd"} 5`,
		`palisade_jail_failtable_evictions_total{jail="sshd"} 1`,
		`palisade_jail_already_banned_total{jail="sshd"} 9`,
		`palisade_jail_healthy{jail="nginx"} 0`,
		`palisade_jail_regex_backtrack_seconds_total{jail="sshd"} 0.25`,
		`palisade_jail_regex_backtrack_skipped_total{jail="sshd"} 7`,
		`palisade_jail_health_problems_total{jail="nginx"} 1`,
		`palisade_source_read_bytes_total{kind="file",source="/var/log/auth.log"} 9000`,
		`palisade_source_last_line_timestamp_seconds{kind="file",source="/var/log/auth.log"} 1.7000000005e+09`,
		`palisade_source_up{kind="journal",source="journal:sshd"} 0`,
		`palisade_source_errors_total{kind="journal",source="journal:sshd"} 2`,
		`palisade_firewall_operations_total{backend="nftables",op="add"} 3`,
		`palisade_firewall_operation_failures_total{backend="nftables",op="add"} 1`,
		`palisade_firewall_elements{backend="nftables"} 2`,
		`palisade_firewall_reconcile_repairs_total{action="readded"} 6`,
		`palisade_bans_refused_total 4`,
		`palisade_notify_messages_sent_total{route="admin",type="smtp"} 2`,
		`palisade_notify_events_dropped_total{route="admin",type="smtp"} 5`,
		`process_resident_memory_bytes `,
		`go_goroutines `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(text, `palisade_source_read_bytes_total{kind="journal"`) {
		t.Error("file-only metric for a journal source")
	}
}

func TestHealthz(t *testing.T) {
	healthy := true
	h := Handler(NewRegistry(func() Snapshot { return Snapshot{} }), func() (bool, any) {
		return healthy, map[string]any{"healthy": healthy}
	}, nil)
	for _, ok := range []bool{true, false} {
		healthy = ok
		code, body := scrape(t, h, "/healthz")
		var got struct{ Healthy bool }
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 200, false: 503}[ok]; code != want || got.Healthy != ok {
			t.Errorf("healthy=%v: %d %s", ok, code, body)
		}
	}
	if code, _ := scrape(t, h, "/nope"); code != 404 {
		t.Errorf("unknown path: %d", code)
	}
}

func TestListenUnixAndTCP(t *testing.T) {
	h := Handler(NewRegistry(sample), func() (bool, any) { return true, map[string]bool{"healthy": true} }, nil)
	sock := filepath.Join(t.TempDir(), "run", "metrics.sock")
	for _, listen := range []string{sock, "127.0.0.1:0"} {
		s, err := Listen(Config{Listen: listen}, h)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()
		client := &http.Client{Timeout: 5 * time.Second}
		url := "http://" + s.Addr() + "/metrics"
		if (Config{Listen: listen}).IsUnix() {
			client.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			}}
			url = "http://palisade/metrics"
			if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 {
				t.Fatalf("socket mode: %v %v", fi.Mode(), err)
			}
			if _, err := Listen(Config{Listen: sock}, h); err == nil || !strings.Contains(err.Error(), "in use") {
				t.Fatalf("second listener on a live socket: %v", err)
			}
		}
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Contains(b, []byte(`palisade_jail_bans_total{jail="sshd"} 3`)) {
			t.Fatalf("%s: scrape:\n%s", listen, b)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatal("socket left behind")
	}
	// A stale socket (its daemon died) is replaced.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	s, err := Listen(Config{Listen: sock}, h)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	s.Close()
}

func TestParseListen(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"", "", true}, {"off", "", true}, {"127.0.0.1:9539", "127.0.0.1:9539", true}, {"[::1]:9539", "[::1]:9539", true},
		{":9539", ":9539", true}, {"localhost:9539", "localhost:9539", true}, {"/run/palisade//metrics.sock", "/run/palisade/metrics.sock", true},
		{"9539", "", false}, {"example.org:9539", "", false}, {"127.0.0.1:http-alt-bogus", "", false}, {"run/metrics.sock", "", false},
	} {
		got, err := ParseListen(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseListen(%q) = %q, %v", c.in, got, err)
		}
	}
}

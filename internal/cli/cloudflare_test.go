package cli

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/cloudflare"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/nft"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// cfDaemon answers the cloudflare verb with canned replies.
type cfDaemon struct {
	mu   sync.Mutex
	reqs []control.CloudflareArgs
}

func (f *cfDaemon) Handle(_ context.Context, req control.Request) (any, error) {
	if req.Verb != control.VerbCloudflare {
		return control.PingReply{}, nil
	}
	a := *req.Cloudflare
	f.mu.Lock()
	f.reqs = append(f.reqs, a)
	f.mu.Unlock()
	fetched := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	switch a.Op {
	case control.CloudflareSync:
		if strings.HasSuffix(a.Source, "/refused") {
			return nil, errors.New("cloudflare list refused: the IPv6 list is empty")
		}
		return cloudflare.SyncResult{Applied: true, Source: a.Source, ETag: "e1", IPv4: 2, IPv6: 1, Ports: "80,443",
			Diff: cloudflare.Diff{Added: nil, Removed: nil, Kept: 3}, Warnings: []string{}}, nil
	case control.CloudflareStatus:
		return cloudflare.Status{State: cloudflare.StateOn, Origin: cloudflare.OriginConfig, Enabled: true, Daemon: true,
			Ports: "80,443", BlockType: "drop", Source: "https://api.cloudflare.com/client/v4/ips", ETag: "e1", Fetched: &fetched,
			IPv4: []string{"192.0.2.0/25", "198.51.100.0/24"}, IPv6: []string{"2001:db8:1::/48"}, Allow: []string{},
			Warnings: []string{"the last sync failed"}}, nil
	case control.CloudflareOff:
		return control.CloudflareOffReply{Removed: true}, nil
	}
	return nil, errors.New("unexpected")
}

func startCFDaemon(t *testing.T) (*cfDaemon, string) {
	t.Helper()
	f := &cfDaemon{}
	return f, serveFake(t, f)
}

func TestCloudflareThroughDaemon(t *testing.T) {
	t.Setenv("SSH_CONNECTION", "")
	f, sock := startCFDaemon(t)
	dir := t.TempDir()
	list := filepath.Join(dir, "ips.txt")
	if err := os.WriteFile(list, []byte("192.0.2.0/25\n2001:db8:1::/48\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	t.Cleanup(func() { _ = os.Chdir(wd) })
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runClient("--socket", sock, "cloudflare", "sync", "--source", "ips.txt", "--ports", "https,80", "--dry-run")
	if code != 0 || !strings.Contains(out, "applied 2 IPv4 + 1 IPv6 ranges from "+list) {
		t.Fatalf("sync: %d %q %q", code, out, errs)
	}
	if got := f.reqs[0]; got.Source != list || got.Ports != "https,80" || !got.DryRun || got.Force {
		t.Errorf("request %+v (the file must be sent as an absolute path)", got)
	}
	code, out, _ = runClient("--socket", sock, "cloudflare", "status")
	for _, want := range []string{"Cloudflare lock: on since", "kept in sync by the daemon", "List:      2 IPv4 + 1 IPv6 ranges", "warning: the last sync failed"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status lacks %q (exit %d):\n%s", want, code, out)
		}
	}
	code, out, _ = runClient("--socket", sock, "cloudflare", "status", "--json")
	var st cloudflare.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.State != "on" || len(st.IPv4) != 2 {
		t.Errorf("status --json: %d %s", code, out)
	}
	code, out, _ = runClient("--socket", sock, "cloudflare", "real-ip", "apache")
	if code != 0 || !strings.Contains(out, "RemoteIPHeader CF-Connecting-IP\nRemoteIPTrustedProxy 192.0.2.0/25\n") ||
		!strings.Contains(out, "RemoteIPTrustedProxy 2001:db8:1::/48") {
		t.Errorf("real-ip apache: %d\n%s", code, out)
	}
	code, out, _ = runClient("--socket", sock, "cloudflare", "real-ip", "nginx")
	if code != 0 || !strings.Contains(out, "set_real_ip_from 198.51.100.0/24;\n") || !strings.HasSuffix(out, "real_ip_header CF-Connecting-IP;\n") {
		t.Errorf("real-ip nginx: %d\n%s", code, out)
	}
	code, out, _ = runClient("--socket", sock, "cloudflare", "off")
	if code != 0 || !strings.Contains(out, "removed") {
		t.Errorf("off: %d %q", code, out)
	}
	n := len(f.reqs)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"cloudflare", "sync", "--source", "https://example.org/refused"}, 1},
		{[]string{"cloudflare", "sync", "--ports", "all"}, 2},
		{[]string{"cloudflare", "sync", "--ports", "80,http-nope"}, 2},
		{[]string{"cloudflare", "sync", "--source", "ftp://example.org/ips"}, 2},
		{[]string{"cloudflare", "sync", "--source", "missing.txt"}, 2},
		{[]string{"cloudflare", "real-ip", "iis"}, 2},
		{[]string{"cloudflare", "real-ip"}, 2},
		{[]string{"cloudflare", "off", "now"}, 2},
	} {
		if code, _, errs := runClient(append([]string{"--socket", sock}, tc.args...)...); code != tc.code {
			t.Errorf("%v: exit %d, want %d (%s)", tc.args, code, tc.code, errs)
		}
	}
	if len(f.reqs) != n+1 {
		t.Errorf("bad input reached the daemon: %+v", f.reqs[n:])
	}
	// A lock that would cut the SSH session running the command is refused
	// (the session's port is locked and its client is not allowed).
	etc := t.TempDir()
	t.Setenv("SSH_CONNECTION", "198.51.100.7 50000 192.0.2.1 443")
	if code, _, errs := runClient("--socket", sock, "cloudflare", "sync", "--config-dir", etc); code != 1 || !strings.Contains(errs, "SSH session") {
		t.Errorf("sync from an SSH session on 443: %d %q", code, errs)
	}
	if code, _, _ := runClient("--socket", sock, "cloudflare", "sync", "--config-dir", etc, "--ports", "80"); code != 0 {
		t.Errorf("sync of other ports from the session: %d", code)
	}
	if err := os.WriteFile(filepath.Join(etc, "palisade.local"), []byte("[cloudflare]\nallow = 198.51.100.0/24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runClient("--socket", sock, "cloudflare", "sync", "--config-dir", etc); code != 0 {
		t.Errorf("sync with the session's client allowed: %d", code)
	}
	if len(f.reqs) != n+3 {
		t.Errorf("%d requests after the session checks, want %d", len(f.reqs), n+3)
	}
}

// Without a daemon, the commands change the kernel and the database
// themselves; off removes the lock and nothing else.
func TestCloudflareWithoutDaemon(t *testing.T) {
	t.Setenv("SSH_CONNECTION", "")
	ns := nstest.New(t)
	nstest.RequireProgram(t, "nft", "ip")
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "palisade.local"), []byte("[Definition]\ndbfile = "+filepath.Join(dir, "p.db")+
		"\n[cloudflare]\nblocktype = reject\nallow = 203.0.113.7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(dir, "ips.txt")
	if err := os.WriteFile(list, []byte("192.0.2.0/25\n2001:db8:1::/48"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte("192.0.2.0/25\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The rest of palisade's table: a jail with a ban, and another chain.
	b, err := nft.New(nft.Options{NetNSFd: ns.Fd()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if err := b.Setup(ctx, []firewall.JailSpec{{Name: "sshd", Scope: firewall.Scope{Ports: []firewall.PortRange{{From: 22, To: 22}}}}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(ctx, []firewall.Ban{{Jail: "sshd", Prefix: netipPrefix("198.51.100.9/32")}}); err != nil {
		t.Fatal(err)
	}
	nftIn := func(args ...string) string {
		r := nstest.Runner{NS: ns, Inner: sysexec.NewExec(10 * time.Second)}
		res, err := r.Run(ctx, sysexec.Cmd{Name: "nft", Args: args})
		if err != nil {
			t.Fatalf("nft %v: %v", args, err)
		}
		return string(res.Stdout)
	}
	nftIn("add", "chain", "inet", "palisade", "allow")
	before := nftIn("list", "ruleset")

	sock := filepath.Join(dir, "none.sock")
	run := func(args ...string) (int, string, string) {
		var code int
		var out, errs string
		if err := ns.Do(func() error {
			code, out, errs = runClient(append([]string{"--socket", sock}, args...)...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return code, out, errs
	}
	if code, out, errs := run("cloudflare", "sync", "--config-dir", etc, "--source", list); code != 0 || !strings.Contains(out, "applied 1 IPv4 + 1 IPv6") {
		t.Fatalf("sync: %d %q %q", code, out, errs)
	}
	rs := nftIn("list", "table", "inet", "palisade")
	for _, want := range []string{"chain cf_lock", "192.0.2.0/25", "203.0.113.7", "reject with tcp reset", "sshd_a4"} {
		if !strings.Contains(rs, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, rs)
		}
	}
	code, out, _ := run("cloudflare", "status", "--config-dir", etc, "--json")
	var st cloudflare.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 {
		t.Fatalf("status: %d %v %s", code, err, out)
	}
	if st.State != "on" || st.Daemon || !st.Kernel.Installed || !st.Kernel.InSync || st.Source != list || st.BlockType != "reject" {
		t.Errorf("status %+v", st)
	}
	if !strings.Contains(strings.Join(st.Warnings, "\n"), "no daemon is running") {
		t.Errorf("status warnings %v", st.Warnings)
	}
	// A refused list exits 1 and changes nothing.
	if code, _, errs := run("cloudflare", "sync", "--config-dir", etc, "--source", bad); code != 1 || !strings.Contains(errs, "IPv6 list is empty") {
		t.Errorf("bad list: %d %q", code, errs)
	}
	if after := nftIn("list", "table", "inet", "palisade"); after != rs {
		t.Errorf("a refused list changed the table:\n%s", after)
	}
	if code, out, _ := run("cloudflare", "real-ip", "nginx", "--config-dir", etc); code != 0 || !strings.Contains(out, "set_real_ip_from 192.0.2.0/25;") {
		t.Errorf("real-ip: %d %s", code, out)
	}
	if code, _, errs := run("cloudflare", "off", "--config-dir", etc); code != 0 {
		t.Fatalf("off: %d %s", code, errs)
	}
	if after := nftIn("list", "ruleset"); after != before {
		t.Errorf("off changed more than the lock:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if code, out, _ := run("cloudflare", "status", "--config-dir", etc); code != 0 || !strings.Contains(out, "Cloudflare lock: off since") {
		t.Errorf("status after off: %d\n%s", code, out)
	}
	// A bad configuration is bad input.
	if err := os.WriteFile(filepath.Join(etc, "palisade.local"), []byte("[cloudflare]\nports = all\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run("cloudflare", "status", "--config-dir", etc); code != 2 || !strings.Contains(errs, "palisade.local:2") {
		t.Errorf("bad config: %d %q", code, errs)
	}
}

func netipPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

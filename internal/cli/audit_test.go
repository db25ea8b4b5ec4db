package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/palisade-project/palisade/internal/audit/audittest"
)

// minimalRoot is a tree without sshd: empty socket tables and ruleset.
func minimalRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	audittest.WriteProc(t, root, []audittest.Sock{{Proto: "tcp", Addr: "0.0.0.0", Port: 8080, Comm: "python3", PID: 42}})
	if err := os.WriteFile(filepath.Join(root, "nft-ruleset.json"), (&audittest.NFT{}).Bytes(t), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestAuditUsage(t *testing.T) {
	root := minimalRoot(t)
	for _, args := range [][]string{
		{"audit", "--min-score", "101"},
		{"audit", "--min-score", "-1"},
		{"audit", "--min-score", "high"},
		{"audit", "extra"},
		{"audit", "--frobnicate"},
		{"audit", "--config-dir", filepath.Join(root, "etc/palisade.typo")},
	} {
		code, _, errOut := runClient(append([]string{"--root", root, "--socket", filepath.Join(root, "none.sock")}, args...)...)
		if code != ExitUsage || errOut == "" {
			t.Errorf("%q: exit %d, stderr %q; want 2", args, code, errOut)
		}
	}
	if code, _, errOut := runClient("--root", filepath.Join(root, "missing"), "audit"); code != ExitUsage || !strings.Contains(errOut, "--root") {
		t.Errorf("audit under a missing --root: exit %d, stderr %q; want 2", code, errOut)
	}
}

func TestAuditJSONSchema(t *testing.T) {
	root := minimalRoot(t)
	code, out, errOut := runClient("--root", root, "--socket", filepath.Join(root, "none.sock"), "audit", "--json")
	if code != ExitFailure || !strings.Contains(errOut, "daemon.running") {
		t.Fatalf("exit %d, stderr %q; want 1 naming the failed high check", code, errOut)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	for _, k := range []string{"schema", "root", "privileged", "score", "passed", "counts", "checks", "limits"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("top-level field %q missing", k)
		}
	}
	if doc["schema"] != float64(1) || doc["root"] != root || doc["passed"] != false {
		t.Errorf("schema/root/passed: %v %v %v", doc["schema"], doc["root"], doc["passed"])
	}
	checks, _ := doc["checks"].([]any)
	var ids []string
	for _, raw := range checks {
		c := raw.(map[string]any)
		for _, k := range []string{"id", "area", "severity", "status", "title", "message", "evidence"} {
			if _, ok := c[k]; !ok {
				t.Errorf("check %v: field %q missing", c["id"], k)
			}
		}
		id := c["id"].(string)
		ids = append(ids, id)
		if st := c["status"]; (st == "fail" || st == "warn") && c["fix"] == nil {
			t.Errorf("%s fails without a fix", id)
		}
		if st := c["status"]; (st == "pass" || st == "skip") && c["fix"] != nil {
			t.Errorf("%s: %s with a fix", id, st)
		}
	}
	for _, want := range []string{"ssh.sshd", "ports.ssh-default", "firewall.enabled", "jails.config", "cloudflare.lock", "notify.bans", "updates.unattended", "daemon.running"} {
		if !slices.Contains(ids, want) {
			t.Errorf("check %s missing from %q", want, ids)
		}
	}
	// docs/audit.md lists every check id.
	doc2, err := os.ReadFile("../../docs/audit.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if !strings.Contains(string(doc2), "`"+id+"`") {
			t.Errorf("docs/audit.md does not list %s", id)
		}
	}
}

func TestAuditCommand(t *testing.T) {
	l := audittest.Fresh(t)
	code, out, errOut := runClient("--root", l.Root.Dir, "--socket", l.DaemonSocket(), "audit")
	if code != ExitFailure || !strings.Contains(errOut, "ssh.password-auth") {
		t.Fatalf("fresh: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"palisade audit: score ", "FAILED", "\nSSH\n", "\nFirewall\n", "\nDaemon\n",
		"[FAIL] high     ssh.password-auth", "fix: palisade ssh harden --keys-only", "To fix, most important first:", "firewall.ssh-limit"} {
		if !strings.Contains(out, want) {
			t.Errorf("fresh text output lacks %q:\n%s", want, out)
		}
	}
	// Critical and high fixes come first.
	fixes := out[strings.Index(out, "To fix, most important first:"):]
	if strings.Index(fixes, "ssh.password-auth") > strings.Index(fixes, "ssh.default-port") {
		t.Errorf("fix order:\n%s", fixes)
	}

	l.Harden()
	code, out, errOut = runClient("--root", l.Root.Dir, "--socket", l.DaemonSocket(), "audit", "--min-score", "100")
	if code != ExitOK || !strings.Contains(out, "score 100/100") || strings.Contains(out, "To fix") {
		t.Fatalf("hardened: exit %d, stderr %q\n%s", code, errOut, out)
	}
	// A warning keeps the high gate open but not --min-score 100.
	os.Remove(l.Root.Path("/etc/systemd/system/multi-user.target.wants/palisade-firewall.service"))
	if code, _, _ := runClient("--root", l.Root.Dir, "--socket", l.DaemonSocket(), "audit"); code != ExitOK {
		t.Errorf("a warning failed the audit: exit %d", code)
	}
	code, out, errOut = runClient("--root", l.Root.Dir, "--socket", l.DaemonSocket(), "audit", "--json", "--min-score", "100")
	if code != ExitFailure || !strings.Contains(errOut, "below --min-score 100") {
		t.Errorf("--min-score 100 with a warning: exit %d, stderr %q", code, errOut)
	}
	var rep struct {
		Score  int
		Passed bool
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Score >= 100 || !rep.Passed {
		t.Errorf("json %+v %v", rep, err)
	}
}

package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palisade-project/palisade/internal/firewall/policyctl"
)

// A policy file with a few rules, disabled: no command below reaches the
// kernel, so the test needs no root.
const fwSample = "# mine\ndisable\ndefault deny incoming\nallow 22/tcp\nlimit 2222/tcp --conn 2\n"

func fwRoot(t *testing.T) (string, string) {
	t.Helper()
	root := t.TempDir()
	path := filepath.Join(root, "etc/palisade/firewall.rules")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(fwSample), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/services"), []byte("ssh 22/tcp\nhttp 80/tcp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, path
}

// Every malformed RULE, port, CIDR, rate or mask exits 2 with a message
// naming the bad word, and changes nothing.
func TestFirewallBadInput(t *testing.T) {
	root, path := fwRoot(t)
	tests := []struct {
		args  []string
		token string
	}{
		{[]string{"allow"}, "requires at least 1 arg"},
		{[]string{"allow", "99999/tcp"}, "99999"},
		{[]string{"allow", "0"}, `"0"`},
		{[]string{"allow", "22/icmp"}, "22/icmp"},
		{[]string{"allow", "nosuch"}, "nosuch"},
		{[]string{"allow", "7000:6000/tcp"}, "7000:6000/tcp"},
		{[]string{"allow", "22", "junk"}, "junk"},
		{[]string{"deny", "from", "203.0.113.300"}, "203.0.113.300"},
		{[]string{"deny", "from", "203.0.113.0/33"}, "203.0.113.0/33"},
		{[]string{"deny", "from", "2001:db8::/200"}, "2001:db8::/200"},
		{[]string{"deny", "from", "192.0.2.1", "to", "2001:db8::1"}, "2001:db8::1"},
		{[]string{"reject", "to", "any", "port", "http", "proto", "gre"}, "gre"},
		{[]string{"allow", "22/tcp", "--conn", "2"}, "--conn"},
		{[]string{"limit", "22/tcp", "--conn", "-3"}, "-3"},
		{[]string{"limit", "22/tcp", "--conn", "many"}, "many"},
		{[]string{"limit", "22/tcp", "--mask", "33"}, "33"},
		{[]string{"limit", "22/tcp", "--mask6", "129"}, "129"},
		{[]string{"limit", "22/tcp", "--rate", "5"}, `"5"`},
		{[]string{"limit", "22/tcp", "--rate", "5/0s"}, "5/0s"},
		{[]string{"limit", "22/tcp", "--rate", "x/1s"}, "x/1s"},
		{[]string{"limit", "22/tcp", "--rate", "1/1s", "--mode", "leaky"}, "leaky"},
		{[]string{"limit", "22/tcp", "--size", "0"}, `"0"`},
		{[]string{"limit", "22/tcp", "--burst", "3"}, "--burst"},
		{[]string{"default", "maybe"}, "maybe"},
		{[]string{"default", "deny", "outgoing"}, "outgoing"},
		{[]string{"delete", "9"}, `"9"`},
		{[]string{"delete", "0"}, `"0"`},
		{[]string{"delete", "allow", "80/tcp"}, "no such rule"},
		{[]string{"delete", "frobnicate"}, "frobnicate"},
		{[]string{"delete", "allow", "99999"}, "99999"},
		{[]string{"status", "loud"}, "loud"},
		{[]string{"import", "iptables"}, "iptables"},
		{[]string{"enable", "now"}, "unknown command"},
	}
	for _, tt := range tests {
		args := append([]string{"--root", root, "firewall"}, tt.args...)
		code, out, errOut := runHardenCLI(args...)
		if code != ExitUsage {
			t.Errorf("%v: exit %d, want 2\n%s%s", tt.args, code, out, errOut)
			continue
		}
		if !strings.Contains(errOut, tt.token) {
			t.Errorf("%v: message %q does not name %q", tt.args, errOut, tt.token)
		}
		data, _ := os.ReadFile(path)
		if string(data) != fwSample {
			t.Fatalf("%v changed the file:\n%s", tt.args, data)
		}
	}
	if _, err := os.Stat(filepath.Join(root, policyctl.StateDir, "state.json")); err == nil {
		t.Error("a refused command started a transaction")
	}
}

// A broken policy file is bad input too: the error names file and line.
func TestFirewallBrokenFile(t *testing.T) {
	root, path := fwRoot(t)
	if err := os.WriteFile(path, []byte("disable\nallow 22/tcp\nlimit 2222/tcp --rate fast\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runHardenCLI("--root", root, "firewall", "allow", "80/tcp")
	if code != ExitUsage || !strings.Contains(errOut, "firewall.rules:3:") || !strings.Contains(errOut, "fast") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

func TestFirewallEditsWhileDisabled(t *testing.T) {
	root, path := fwRoot(t)
	steps := []struct {
		args []string
		out  string
	}{
		{[]string{"allow", "http"}, "Rule 3 added"},
		{[]string{"allow", "80/tcp"}, "Skipping adding existing rule"},
		{[]string{"limit", "2222/tcp", "--rate", "1/1s"}, "Rule 2 updated"},
		{[]string{"deny", "from", "203.0.113.0/24", "comment", "scanners"}, "Rule 4 added"},
		{[]string{"delete", "allow", "http"}, "Rule 3 deleted"},
		{[]string{"delete", "1"}, "Rule 1 deleted: allow 22/tcp"},
		{[]string{"default", "reject"}, "Default incoming policy changed to 'reject'"},
	}
	for _, s := range steps {
		code, out, errOut := runHardenCLI(append([]string{"--root", root, "firewall"}, s.args...)...)
		if code != ExitOK || !strings.Contains(out, s.out) {
			t.Errorf("%v: exit %d: %s%s", s.args, code, out, errOut)
		}
	}
	data, _ := os.ReadFile(path)
	want := "# mine\ndisable\ndefault reject incoming\nlimit 2222/tcp --conn 2 --rate 1/1s\ndeny from 203.0.113.0/24 comment 'scanners'\n"
	if string(data) != want {
		t.Errorf("file:\n%s\nwant:\n%s", data, want)
	}
	code, out, _ := runHardenCLI("--root", root, "firewall", "status", "numbered")
	if code != ExitOK || !strings.Contains(out, "Status: inactive") || !strings.Contains(out, "[ 1] 2222/tcp") || !strings.Contains(out, "[ 2] Anywhere") {
		t.Errorf("status numbered:\n%s", out)
	}
	code, out, _ = runHardenCLI("--root", root, "firewall", "status", "--json")
	var st policyctl.Status
	if code != ExitOK || json.Unmarshal([]byte(out), &st) != nil || st.Enabled || len(st.Rules) != 2 || st.Rules[0].Limit.Rate != "1/1s" || st.Rules[1].From != "203.0.113.0/24" {
		t.Errorf("status --json: %d %s", code, out)
	}
	// Dry runs write nothing.
	before, _ := os.ReadFile(path)
	code, out, _ = runHardenCLI("--root", root, "firewall", "--dry-run", "allow", "443/tcp")
	after, _ := os.ReadFile(path)
	if code != ExitOK || !strings.Contains(out, "+allow 443/tcp") || string(after) != string(before) {
		t.Errorf("dry run: %d %s", code, out)
	}
}

package audit

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/policy"
	"github.com/palisade-project/palisade/internal/sysexec"
)

func TestParseProcNet(t *testing.T) {
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0019 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1235 1 0000000000000000 100 0 0 10 0
   2: 0100A8C0:0016 0200A8C0:D431 01 00000000:00000000 00:00000000 00000000     0        0 1236 1 0000000000000000 100 0 0 10 0
   3: 010200C0:01BB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1237 1 0000000000000000 100 0 0 10 0
garbage line
`
	tcp6 := `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2234 1
   1: 00000000000000000000000001000000:0277 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2235 1
   2: 0000000000000000FFFF00000100007F:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2236 1
   3: B80D0120000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2237 1
`
	udp := `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 3234 2 0000000000000000 0
  101: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3235 2 0000000000000000 0
  102: 0100A8C0:9C40 0800A8C0:0035 01 00000000:00000000 00:00000000 00000000     0        0 3236 2 0000000000000000 0
`
	type row struct {
		Proto string
		Addr  string
		Port  uint16
		Inode uint64
	}
	got := func(data, proto string) []row {
		var out []row
		for _, s := range ParseProcNet([]byte(data), proto) {
			out = append(out, row{s.Proto, s.Addr.String(), s.Port, s.Inode})
		}
		return out
	}
	if d := cmp.Diff([]row{{"tcp", "0.0.0.0", 22, 1234}, {"tcp", "127.0.0.1", 25, 1235}, {"tcp", "192.0.2.1", 443, 1237}}, got(tcp, "tcp")); d != "" {
		t.Errorf("tcp (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]row{{"tcp", "::", 22, 2234}, {"tcp", "::1", 631, 2235}, {"tcp", "127.0.0.1", 8080, 2236}, {"tcp", "2001:db8::1", 80, 2237}}, got(tcp6, "tcp")); d != "" {
		t.Errorf("tcp6 (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]row{{"udp", "127.0.0.53", 53, 3234}, {"udp", "0.0.0.0", 68, 3235}}, got(udp, "udp")); d != "" {
		t.Errorf("udp (-want +got):\n%s", d)
	}
	socks := ParseProcNet([]byte(tcp+tcp6), "tcp")
	var exposed []string
	for _, s := range Exposed(socks) {
		exposed = append(exposed, s.Endpoint())
	}
	if d := cmp.Diff([]string{"tcp 0.0.0.0:22", "tcp 192.0.2.1:443", "tcp [2001:db8::1]:80"}, exposed); d != "" {
		t.Errorf("exposed (one per port, no loopback) (-want +got):\n%s", d)
	}
}

func TestProcNetOwners(t *testing.T) {
	dir := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("proc/net/tcp", "sl\n 0: 00000000:0016 00000000:0000 0A 0:0 0:0 0 0 0 777 1\n 1: 00000000:0050 00000000:0000 0A 0:0 0:0 0 0 0 888 1\n")
	write("proc/612/comm", "sshd\n")
	write("proc/613/comm", "sshd\n")
	write("proc/self/comm", "ignored\n")
	for pid, link := range map[string]string{"612/fd/3": "socket:[777]", "613/fd/4": "socket:[777]", "612/fd/5": "/dev/null"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, "proc", pid)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(link, filepath.Join(dir, "proc", pid)); err != nil {
			t.Fatal(err)
		}
	}
	socks, owners, err := ProcNet{Root: dir}.Sockets()
	if err != nil || !owners {
		t.Fatalf("sockets: %v, owners %v", err, owners)
	}
	var got []string
	for _, s := range socks {
		got = append(got, s.String())
	}
	if d := cmp.Diff([]string{"tcp 0.0.0.0:22 (sshd, pid 612)", "tcp 0.0.0.0:80"}, got); d != "" {
		t.Errorf("owners (lowest pid wins; unknown stays empty) (-want +got):\n%s", d)
	}
	if _, _, err := (ProcNet{Root: t.TempDir()}).Sockets(); err == nil && os.Getenv("container") == "" {
		// An empty root has no proc copy: the live /proc is read instead,
		// which always has tcp.
		t.Log("live /proc read for a root without proc/net")
	}
}

// A ruleset as nft 1.0.6 prints it (nft -j list ruleset).
const sampleRuleset = `{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
{"table": {"family": "inet", "name": "palisade", "handle": 1}},
{"set": {"family": "inet", "name": "cf_v4", "table": "palisade", "type": "ipv4_addr", "handle": 6, "flags": ["interval"], "elem": [{"prefix": {"addr": "103.21.244.0", "len": 22}}, {"prefix": {"addr": "173.245.48.0", "len": 20}}, {"range": ["198.51.100.0", "198.51.100.127"]}]}},
{"set": {"family": "inet", "name": "cf_v6", "table": "palisade", "type": "ipv6_addr", "elem": [{"prefix": {"addr": "2400:cb00::", "len": 32}}]}},
{"set": {"family": "inet", "name": "cf_allow4", "table": "palisade", "type": "ipv4_addr", "elem": ["192.0.2.7"]}},
{"set": {"family": "inet", "name": "cf_ports", "table": "palisade", "type": "inet_service", "handle": 7, "flags": ["interval"], "elem": [80, 443, {"range": [8000, 8100]}]}},
{"set": {"family": "inet", "name": "pair", "table": "palisade", "type": ["ipv4_addr", "inet_service"], "elem": [{"concat": ["192.0.2.1", 22]}]}},
{"chain": {"family": "inet", "table": "palisade", "name": "cf_lock", "handle": 1, "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}},
{"chain": {"family": "inet", "table": "palisade", "name": "pol_input", "handle": 2, "type": "filter", "hook": "input", "prio": -10, "policy": "accept"}},
{"chain": {"family": "inet", "table": "palisade", "name": "allow", "handle": 3}},
{"chain": {"family": "inet", "table": "palisade", "name": "input", "handle": 4, "type": "filter", "hook": "input", "prio": -1, "policy": "accept"}},
{"chain": {"family": "inet", "table": "palisade", "name": "j_sshd", "handle": 5}},
{"rule": {"family": "inet", "table": "palisade", "chain": "cf_lock", "handle": 8, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iiftype"}}, "right": "loopback"}}, {"return": null}]}},
{"rule": {"family": "inet", "table": "palisade", "chain": "cf_lock", "handle": 9, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@cf_ports"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@cf_v4"}}, {"counter": {"packets": 12, "bytes": 720}}, {"drop": null}]}},
{"rule": {"family": "inet", "table": "palisade", "chain": "pol_input", "handle": 10, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "palisade", "chain": "pol_input", "handle": 12, "comment": "palisade:1 limit 22/tcp --conn 2", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "palisade", "chain": "pol_input", "handle": 13, "expr": [{"jump": {"target": "allow"}}]}},
{"rule": {"family": "inet", "table": "palisade", "chain": "pol_input", "handle": 14, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}},
{"rule": {"family": "inet", "table": "palisade", "chain": "allow", "handle": 15, "comment": "palisade:open:2222/tcp", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 2222}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "palisade", "chain": "allow", "handle": 16, "comment": "palisade:open:bogus", "expr": [{"accept": null}]}},
{"table": {"family": "ip", "name": "nat", "handle": 2}},
{"chain": {"family": "ip", "table": "nat", "name": "DOCKER", "handle": 1}},
{"rule": {"family": "ip", "table": "nat", "chain": "DOCKER", "handle": 2, "expr": [{"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "docker0"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}}, {"counter": {"packets": 0, "bytes": 0}}, {"dnat": {"addr": "172.17.0.2", "port": 80}}]}},
{"rule": {"family": "ip", "table": "nat", "chain": "DOCKER", "handle": 3, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": {"set": [5353, {"range": [6000, 6001]}]}}}, {"dnat": {"addr": "172.17.0.3"}}]}},
{"rule": {"family": "ip", "table": "nat", "chain": "DOCKER", "handle": 4, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "docker0"}}, {"return": null}]}},
{"table": {"family": "inet", "name": "filter", "handle": 3}},
{"chain": {"family": "inet", "table": "filter", "name": "input", "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}
]}`

func TestRuleset(t *testing.T) {
	rs, err := ParseRuleset([]byte(sampleRuleset))
	if err != nil {
		t.Fatal(err)
	}
	if ok, def := rs.PolicyInstalled(); !ok || def != "drop" {
		t.Errorf("policy installed %v, default %q; want true, drop", ok, def)
	}
	if d := cmp.Diff([]ProtoPort{{"tcp", 2222}}, rs.OpenPorts()); d != "" {
		t.Errorf("open ports (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"sshd"}, rs.JailChains()); d != "" {
		t.Errorf("jail chains (-want +got):\n%s", d)
	}
	lock := rs.CloudflareLock()
	want := firewall.LockState{Installed: true, Refused: 12, LockSpec: firewall.LockSpec{
		Ranges: []netip.Prefix{netip.MustParsePrefix("103.21.244.0/22"), netip.MustParsePrefix("173.245.48.0/20"), netip.MustParsePrefix("198.51.100.0/25"), netip.MustParsePrefix("2400:cb00::/32")},
		Allow:  []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32")},
		Ports:  []firewall.PortRange{{From: 80, To: 80}, {From: 443, To: 443}, {From: 8000, To: 8100}},
		Block:  firewall.Drop,
	}}
	if d := cmp.Diff(want, lock, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("cloudflare lock (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]Published{
		{Proto: "tcp", Port: 8080, To: "172.17.0.2:80", Where: "ip nat DOCKER"},
		{Proto: "udp", Port: 5353, To: "172.17.0.3", Where: "ip nat DOCKER"},
		{Proto: "udp", Port: 6000, To: "172.17.0.3", Where: "ip nat DOCKER"},
		{Proto: "udp", Port: 6001, To: "172.17.0.3", Where: "ip nat DOCKER"},
	}, rs.DockerPublished()); d != "" {
		t.Errorf("docker (-want +got):\n%s", d)
	}
	foreign := rs.ForeignInput()
	if len(foreign) != 1 || foreign[0].Table != "filter" {
		t.Errorf("foreign input chains: %+v", foreign)
	}
	if _, err := ParseRuleset([]byte("<html>")); err == nil {
		t.Error("HTML parsed as a ruleset")
	}
	empty, _ := ParseRuleset([]byte(`{"nftables": [{"metainfo": {}}]}`))
	if ok, _ := empty.PolicyInstalled(); ok || empty.CloudflareLock().Installed {
		t.Error("empty ruleset holds a policy or a lock")
	}
}

func TestRangePrefixes(t *testing.T) {
	tests := []struct {
		a, b string
		want []string
	}{
		{"192.0.2.0", "192.0.2.255", []string{"192.0.2.0/24"}},
		{"192.0.2.1", "192.0.2.1", []string{"192.0.2.1/32"}},
		{"192.0.2.1", "192.0.2.6", []string{"192.0.2.1/32", "192.0.2.2/31", "192.0.2.4/31", "192.0.2.6/32"}},
		{"2001:db8::", "2001:db8::ffff", []string{"2001:db8::/112"}},
		{"0.0.0.0", "255.255.255.255", []string{"0.0.0.0/0"}},
		{"192.0.2.9", "192.0.2.1", nil},
		{"192.0.2.1", "2001:db8::", nil},
	}
	for _, tc := range tests {
		var got []string
		for _, p := range rangePrefixes(netip.MustParseAddr(tc.a), netip.MustParseAddr(tc.b), 100) {
			got = append(got, p.String())
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s-%s (-want +got):\n%s", tc.a, tc.b, d)
		}
	}
	if n := len(rangePrefixes(netip.MustParseAddr("0.0.0.1"), netip.MustParseAddr("255.255.255.254"), 10)); n != 10 {
		t.Errorf("bounded split gave %d prefixes", n)
	}
}

func readPolicy(t *testing.T, text string) *FirewallState {
	t.Helper()
	p := filepath.Join(t.TempDir(), "firewall.rules")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	svc := firewall.Services{"ssh/tcp": 22, "http/tcp": 80, "https/tcp": 443, "domain/tcp": 53, "domain/udp": 53, "syslog/udp": 514}
	st, err := PolicyFile{Path: p, Names: policy.Names{Services: svc}}.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestPolicyReach(t *testing.T) {
	st := readPolicy(t, `# my server
enable
default deny incoming
default allow outgoing
allow 80,443/tcp comment 'web # not a comment'
limit ssh --conn 2 --rate 1/1s     # the guide
deny from 203.0.113.0/24
allow from 198.51.100.0/24 to any port 3306 proto tcp
deny 25
allow in on eth1 to any port 5432
reject 8000:8100/tcp
allow 8000:8100/tcp
allow domain
allow syslog
allow to 192.0.2.9 port 9000
`)
	if !st.Enabled || st.Default != "deny" || len(st.Rules) != 11 || len(st.Errors) != 0 || !strings.HasSuffix(st.EnabledWhere, ":2") || !strings.HasSuffix(st.DefaultWhere, ":3") {
		t.Fatalf("policy: %+v", st)
	}
	if r := st.Rules[1]; r.Action != ActLimit || r.Conn != 2 || r.Rate != "1/1s" || r.Proto != "tcp" || !strings.HasSuffix(r.Where, ":6") || r.Text != "limit ssh --conn 2 --rate 1/1s" {
		t.Errorf("limit rule: %+v", r)
	}
	if r := st.Rules[10]; !strings.HasSuffix(r.Where, ":15") || !r.Conditional {
		t.Errorf("last rule: %+v", r)
	}
	open := []ProtoPort{{"tcp", 2222}}
	tests := []struct {
		proto     string
		port      uint16
		reachable bool
		onPurpose bool
		rule      int
	}{
		{"tcp", 80, true, true, 1},
		{"tcp", 443, true, true, 1},
		{"udp", 443, false, false, 0},  // the rule is tcp only
		{"tcp", 22, true, true, 2},     // limit ssh
		{"tcp", 3306, true, true, 4},   // for some sources: on purpose
		{"tcp", 25, false, false, 5},   // deny 25 (tcp and udp)
		{"udp", 25, false, false, 5},   // deny 25 (tcp and udp)
		{"tcp", 5432, false, false, 0}, // on an interface: may not apply
		{"tcp", 8050, false, false, 7}, // reject comes first
		{"udp", 53, true, true, 9},     // a service with tcp and udp
		{"tcp", 53, true, true, 9},
		{"udp", 514, true, true, 10}, // udp-only service
		{"tcp", 514, false, false, 0},
		{"tcp", 9000, false, false, 0}, // a destination address: may not apply
		{"tcp", 2222, true, true, 0},   // opened in the allow chain
		{"tcp", 7000, false, false, 0},
	}
	for _, tc := range tests {
		v := st.Reach(tc.proto, tc.port, open)
		rule := 0
		if v.Rule != nil {
			rule = v.Rule.Number
		}
		if v.Reachable != tc.reachable || v.OnPurpose != tc.onPurpose || rule != tc.rule || v.Reason == "" {
			t.Errorf("%d/%s: %+v (rule %d), want reachable %v, on purpose %v, rule %d", tc.port, tc.proto, v, rule, tc.reachable, tc.onPurpose, tc.rule)
		}
	}
	if _, ok := st.Limited(22); !ok {
		t.Error("port 22 not limited")
	}
	if _, ok := st.Limited(80); ok {
		t.Error("port 80 limited")
	}

	allow := readPolicy(t, "enable\ndefault allow\nallow 22/tcp\n")
	if v := allow.Reach("tcp", 8080, nil); !v.Reachable || v.OnPurpose {
		t.Errorf("default allow: %+v", v)
	}
	off := readPolicy(t, "disable\nallow 22/tcp\n")
	if v := off.Reach("tcp", 8080, nil); !v.Reachable || v.OnPurpose || off.Enabled {
		t.Errorf("disabled policy: %+v", v)
	}
	none := readPolicy(t, "allow 22/tcp\n")
	if none.Enabled || none.Default != "deny" {
		t.Errorf("no enable line: %+v", none)
	}
	if st, err := (PolicyFile{Path: filepath.Join(t.TempDir(), "missing")}).Read(context.Background()); st != nil || err != nil {
		t.Errorf("missing file: %v, %v", st, err)
	}
	bad := readPolicy(t, "enable\nallow 'unterminated\nfrobnicate 1\nallow 99999/tcp\n")
	if len(bad.Errors) != 3 || !strings.Contains(bad.Errors[0], "firewall.rules:2:") || !strings.Contains(bad.Errors[1], "firewall.rules:3:") || !strings.Contains(bad.Errors[2], "firewall.rules:4:") || bad.Enabled {
		t.Errorf("errors: %q", bad.Errors)
	}
}

func TestUFWFiles(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"/etc/ufw/ufw.conf":     "# ufw.conf\nENABLED=yes\nLOGLEVEL=low\n",
		"/etc/default/ufw":      "IPV6=yes\nDEFAULT_INPUT_POLICY=\"DROP\"\nDEFAULT_OUTPUT_POLICY=\"ACCEPT\"\n",
		"/etc/ufw/user.rules":   "*filter\n### RULES ###\n\n### tuple ### limit tcp 22 0.0.0.0/0 any 0.0.0.0/0 in\n-A ufw-user-input -p tcp --dport 22 -j ufw-user-limit-accept\n\n### tuple ### allow tcp 80,443 0.0.0.0/0 any 0.0.0.0/0 in comment=web\n### tuple ### deny any any 0.0.0.0/0 any 203.0.113.0/24 in\n### tuple ### allow tcp 5432 0.0.0.0/0 any 0.0.0.0/0 in_eth1\n### END RULES ###\n",
		"/etc/ufw/user6.rules":  "### tuple ### allow_log udp 53 ::/0 any ::/0 in\n",
		"/etc/ufw/ignored.file": "### tuple ### allow tcp 1 0.0.0.0/0 any 0.0.0.0/0 in\n",
	}
	for p, s := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := UFWFiles{Root: root}.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Enabled || st.Default != "deny" || len(st.Rules) != 5 || !strings.HasSuffix(st.EnabledWhere, "ufw.conf") {
		t.Fatalf("ufw: %+v", st)
	}
	for _, tc := range []struct {
		proto     string
		port      uint16
		reachable bool
	}{{"tcp", 22, true}, {"tcp", 443, true}, {"tcp", 5432, false}, {"udp", 53, true}, {"tcp", 1, false}} {
		if v := st.Reach(tc.proto, tc.port, nil); v.Reachable != tc.reachable {
			t.Errorf("%d/%s: %+v", tc.port, tc.proto, v)
		}
	}
	if r, ok := st.Limited(22); !ok || !strings.HasPrefix(r.Where, "ufw rule 1 (") || !strings.Contains(r.Where, "user.rules") {
		t.Errorf("ufw limit: %+v %v", r, ok)
	}
	if st, err := (UFWFiles{Root: t.TempDir()}).Read(context.Background()); st != nil || err != nil {
		t.Errorf("no ufw: %v %v", st, err)
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0", "1.0.1", -1},
		{"1.0~rc1", "1.0", -1},
		{"1.0~~", "1.0~", -1},
		{"1.0", "1.0a", -1},
		{"1.0a", "1.0+", -1},
		{"1:0.1", "2.0", 1},
		{"0:2.0", "2.0", 0},
		{"1.0-1", "1.0-2", -1},
		{"1.0", "1.0-0", 0},
		{"3.0.11-1~deb12u1", "3.0.13-1~deb12u1", -1},
		{"2.36-9+deb12u4", "2.36-9+deb12u7", -1},
		{"2.36-9+deb12u10", "2.36-9+deb12u9", 1},
		{"1.2.3-1+b1", "1.2.3-1", 1},
		{"010", "10", 0},
		{"1.0.0", "1.0", 1},
		{"9.2p1-2+deb12u3", "9.2p1-2+deb12u2", 1},
	}
	for _, tc := range tests {
		got := CompareVersions(tc.a, tc.b)
		if sign(got) != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if sign(CompareVersions(tc.b, tc.a)) != -tc.want {
			t.Errorf("CompareVersions(%q, %q) not antisymmetric", tc.b, tc.a)
		}
	}
	// dpkg itself is the reference where it is installed.
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		return
	}
	versions := []string{"1.0", "1.0-1", "1.0~rc1", "1:1.0", "1.0+b1", "1.0a", "1.00", "1.0-1~bpo1", "1.0~~a"}
	for i, a := range versions {
		for _, b := range versions[i+1:] {
			want := 1
			switch {
			case exec.Command(dpkg, "--compare-versions", a, "lt", b).Run() == nil:
				want = -1
			case exec.Command(dpkg, "--compare-versions", a, "eq", b).Run() == nil:
				want = 0
			}
			if got := sign(CompareVersions(a, b)); got != want {
				t.Errorf("CompareVersions(%q, %q) = %d, dpkg says %d", a, b, got, want)
			}
		}
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func TestPendingSecurity(t *testing.T) {
	dir := t.TempDir()
	status := filepath.Join(dir, "status")
	if err := os.WriteFile(status, []byte(`Package: openssl
Status: install ok installed
Version: 3.0.11-1~deb12u1
Architecture: amd64
Description: x
 more

Package: libc6
Status: install ok installed
Version: 2.36-9+deb12u7
Architecture: amd64

Package: tzdata
Status: install ok installed
Version: 2024a-0+deb12u1
Architecture: all

Package: removed
Status: deinstall ok config-files
Version: 1.0
Architecture: amd64
`), 0o644); err != nil {
		t.Fatal(err)
	}
	pkgs, err := ReadDpkgStatus(status)
	if err != nil || len(pkgs) != 3 || !pkgs["openssl"].Installed() {
		t.Fatalf("dpkg status: %v %+v", err, pkgs)
	}
	lists := filepath.Join(dir, "lists")
	if err := os.MkdirAll(lists, 0o755); err != nil {
		t.Fatal(err)
	}
	idx := map[string]string{
		"deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages": "Package: openssl\nVersion: 3.0.13-1~deb12u1\nArchitecture: amd64\n\nPackage: openssl\nVersion: 3.0.14-1~deb12u1\nArchitecture: arm64\n\nPackage: libc6\nVersion: 2.36-9+deb12u4\nArchitecture: amd64\n\nPackage: removed\nVersion: 2.0\nArchitecture: amd64\n",
		"deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages":                   "Package: libc6\nVersion: 2.36-9+deb12u9\nArchitecture: amd64\n",
	}
	for n, s := range idx {
		if err := os.WriteFile(filepath.Join(lists, n), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("Package: tzdata\nVersion: 2024b-0+deb12u1\nArchitecture: all\n"))
	zw.Close()
	if err := os.WriteFile(filepath.Join(lists, "security.debian.org_debian-security_dists_bookworm-security_updates_binary-amd64_Packages.gz"), gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	found, err := SecurityIndexes(lists)
	if err != nil || len(found) != 2 {
		t.Fatalf("security indexes: %v %q", err, found)
	}
	pending, err := PendingSecurity(context.Background(), pkgs, found, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Pending{{"openssl", "3.0.11-1~deb12u1", "3.0.13-1~deb12u1"}, {"tzdata", "2024a-0+deb12u1", "2024b-0+deb12u1"}}
	if d := cmp.Diff(want, pending); d != "" {
		t.Errorf("pending (-want +got):\n%s", d)
	}

	// Debian's container images keep the indexes lz4-compressed
	// (Acquire::GzipIndexes); apt-helper reads them.
	lz4Index := filepath.Join(lists, "deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages.lz4")
	if err := os.Rename(filepath.Join(lists, "deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages"), lz4Index); err != nil {
		t.Fatal(err)
	}
	found, err = SecurityIndexes(lists)
	if err != nil || len(found) != 2 || found[0] != lz4Index {
		t.Fatalf("security indexes with lz4: %v %q", err, found)
	}
	if _, err := PendingSecurity(context.Background(), pkgs, found, nil); err == nil || !strings.Contains(err.Error(), "no reader for lz4") {
		t.Errorf("lz4 index without a reader: %v", err)
	}
	plain := []byte(idx["deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages"])
	var asked []string
	cat := func(_ context.Context, path string) ([]byte, error) { asked = append(asked, path); return plain, nil }
	pending, err = PendingSecurity(context.Background(), pkgs, found, cat)
	if d := cmp.Diff(want, pending); err != nil || d != "" || !slices.Equal(asked, []string{lz4Index}) {
		t.Errorf("lz4 index through cat %q: %v (-want +got):\n%s", asked, err, d)
	}
	helper := "/usr/lib/apt/apt-helper"
	if _, err := os.Stat(helper); err != nil {
		t.Logf("%s: %v: the real lz4 read is not tested", helper, err)
		return
	}
	// "Package: openssl\nVersion: 3.0.13-1~deb12u1\nArchitecture: amd64\n", lz4 -c.
	frame, err := base64.StdEncoding.DecodeString("BCJNGGRApz8AAIBQYWNrYWdlOiBvcGVuc3NsClZlcnNpb246IDMuMC4xMy0xfmRlYjEydTEKQXJjaGl0ZWN0dXJlOiBhbWQ2NAoAAAAAGfm+TQ==")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lz4Index, frame, 0o644); err != nil {
		t.Fatal(err)
	}
	pending, err = PendingSecurity(context.Background(), pkgs, found, AptHelperCat(sysexec.NewExec(10*time.Second)))
	if d := cmp.Diff(want, pending); err != nil || d != "" {
		t.Errorf("lz4 index through apt-helper: %v (-want +got):\n%s", err, d)
	}
}

// TestPendingSecurityAgreesWithApt compares the offline count with apt's
// own simulation on this host: every upgrade apt-get -s takes from a
// security suite is pending, and nothing pending is unknown to apt.
func TestPendingSecurityAgreesWithApt(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: apt-get -s dist-upgrade takes seconds")
	}
	aptGet, err := exec.LookPath("apt-get")
	if err != nil {
		t.Skip("apt-get is not installed: not a Debian-based host")
	}
	pkgs, err := ReadDpkgStatus("/var/lib/dpkg/status")
	if err != nil || len(pkgs) == 0 {
		t.Skipf("no dpkg database: %v", err)
	}
	out, err := exec.Command(aptGet, "-s", "-o", "Debug::NoLocking=1", "dist-upgrade").Output()
	if err != nil {
		t.Skipf("apt-get -s dist-upgrade: %v", err)
	}
	// "Inst NAME [OLD] (NEW ORIGIN:SUITE[, ORIGIN:SUITE] [ARCH])"
	upgrades, security := map[string]string{}, map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "Inst" || !strings.HasPrefix(f[2], "[") {
			continue
		}
		name, _, _ := strings.Cut(f[1], ":")
		upgrades[name] = strings.TrimPrefix(f[3], "(")
		if strings.Contains(line, "-security") {
			security[name] = true
		}
	}
	idx, err := SecurityIndexes("/var/lib/apt/lists")
	if err != nil || len(idx) == 0 {
		if len(security) > 0 {
			t.Fatalf("apt upgrades %d packages from a security suite, but no security index is found in /var/lib/apt/lists: %v", len(security), err)
		}
		t.Skipf("apt has no security index on this host: %v", err)
	}
	pending, err := PendingSecurity(context.Background(), pkgs, idx, AptHelperCat(sysexec.NewExec(30*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range pending {
		got[p.Name] = true
		if _, ok := upgrades[p.Name]; !ok {
			t.Errorf("%s %s -> %s pending, but apt-get -s dist-upgrade does not upgrade it", p.Name, p.Installed, p.Candidate)
		}
	}
	for name := range security {
		if !got[name] {
			t.Errorf("apt upgrades %s to %s from a security suite; not counted as pending", name, upgrades[name])
		}
	}
	t.Logf("%d pending security updates, %d from a security suite in apt's simulation, %d upgrades in all", len(pending), len(security), len(upgrades))
}

func TestScore(t *testing.T) {
	c := func(area string, sev Severity, st Status) Check { return Check{Area: area, Severity: sev, Status: st} }
	tests := []struct {
		name   string
		checks []Check
		score  int
		passed bool
	}{
		{"nothing scored", []Check{c("ssh", Advice, Info), c("ssh", High, Skip)}, 100, true},
		{"all pass", []Check{c("ssh", High, Pass), c("ports", Low, Pass)}, 100, true},
		{"areas count the same", []Check{c("ssh", High, Pass), c("ssh", High, Pass), c("ssh", High, Pass), c("ports", Low, Fail)}, 50, true},
		{"weights within an area", []Check{c("ssh", High, Pass), c("ssh", Medium, Fail)}, 66, true},
		{"warn is half", []Check{c("ssh", Medium, Warn)}, 50, true},
		{"high fail", []Check{c("ssh", High, Fail), c("ssh", Low, Pass)}, 14, false},
		{"critical fail", []Check{c("ssh", Critical, Fail)}, 0, false},
		{"high warn passes the gate", []Check{c("ssh", High, Warn)}, 50, true},
		{"info and skip not scored", []Check{c("ssh", High, Pass), c("ssh", High, Skip), c("ssh", Advice, Info), c("ssh", Advice, Fail)}, 100, true},
	}
	for _, tc := range tests {
		score, passed := Score(tc.checks)
		if score != tc.score || passed != tc.passed {
			t.Errorf("%s: score %d passed %v, want %d %v", tc.name, score, passed, tc.score, tc.passed)
		}
	}
}

func TestSSHConnection(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.7 50000 192.0.2.1 22":    "198.51.100.7",
		"2001:db8::7 50000 2001:db8::1 22":   "2001:db8::7",
		"::ffff:198.51.100.7 1 192.0.2.1 22": "198.51.100.7",
		"":                                   "invalid IP",
		"198.51.100.7":                       "invalid IP",
		"bogus 1 2 3":                        "invalid IP",
	} {
		a, _ := parseSSHConnection(in)
		if a.String() != want {
			t.Errorf("%q: %v, want %s", in, a, want)
		}
	}
}

func TestAuditorOrdersAreas(t *testing.T) {
	st := NewState(Sources{})
	rep := (&Auditor{Checkers: []Checker{fixed{AreaDaemon, Check{ID: "daemon.x", Status: Pass, Fix: "dropped"}}, fixed{AreaSSH, Check{ID: "ssh.y", Status: Fail, Severity: High, Fix: "kept"}}}}).Run(context.Background(), st)
	var ids []string
	for _, c := range rep.Checks {
		ids = append(ids, c.ID)
	}
	if !slices.Equal(ids, []string{"ssh.y", "daemon.x"}) || rep.Checks[1].Fix != "" || rep.Checks[0].Fix != "kept" || rep.Passed {
		t.Errorf("report: %+v", rep)
	}
	if c, ok := rep.Check("daemon.x"); !ok || c.Area != AreaDaemon || c.Evidence == nil {
		t.Errorf("check lookup: %+v %v", c, ok)
	}
}

type fixed struct {
	area string
	c    Check
}

func (f fixed) Area() string                          { return f.area }
func (f fixed) Check(context.Context, *State) []Check { return []Check{f.c} }

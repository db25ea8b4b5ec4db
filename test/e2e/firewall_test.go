package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/palisade-project/palisade/internal/firewall/nstest"
	"github.com/palisade-project/palisade/internal/store"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// fwState reads the firewall transaction under root.
func fwState(root string) map[string]any {
	data, err := os.ReadFile(filepath.Join(root, "var/lib/palisade/firewall/state.json"))
	if err != nil {
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	return m
}

// stopFirewallWatcher kills a firewall rollback watcher left running for root.
func stopFirewallWatcher(root string) {
	f, _ := fwState(root)["watcher_pid"].(float64)
	pid := int(f)
	if pid <= 0 {
		return
	}
	if cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil && strings.Contains(string(cmdline), root) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// session is an open SSH session from the client namespace running cat:
// a line written comes back while the session lives.
type session struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func (l *sshLab) openSession(t *testing.T) *session {
	t.Helper()
	args := append(append([]string{"netns", "exec", l.net.Client.Name, "ssh"}, sshOpts...),
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ServerAliveInterval=1", "-i", l.key, l.user+"@"+l.net.ServerAddr.String(), "cat")
	cmd := exec.Command("ip", args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &session{cmd: cmd, in: in, out: bufio.NewReader(out)}
	t.Cleanup(func() {
		in.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if err := s.echo("hello"); err != nil {
		t.Fatalf("session: %v", err)
	}
	return s
}

// echo sends a line and waits (bounded) for it to come back.
func (s *session) echo(line string) error {
	if _, err := fmt.Fprintln(s.in, line); err != nil {
		return fmt.Errorf("write to the session: %w", err)
	}
	got := make(chan string, 1)
	go func() {
		l, _ := s.out.ReadString('\n')
		got <- l
	}()
	select {
	case l := <-got:
		if strings.TrimSpace(l) != line {
			return fmt.Errorf("session answered %q, want %q (closed?)", l, line)
		}
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("no answer from the session within 10s")
	}
}

// An admin connected over SSH from another namespace stays connected and
// can open new sessions across "default deny" + "enable"; an unconfirmed
// change rolls back by itself.
func TestFirewallKeepsTheAdminIn(t *testing.T) {
	lab := newSSHLab(t)
	t.Cleanup(func() { stopFirewallWatcher(lab.root) })
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(lab.root, "var/lib/palisade/firewall/watcher.log"))
			t.Logf("firewall watcher.log:\n%s", log)
		}
	})
	nstest.Listen(t, lab.net.Server, "0.0.0.0:8080")
	sess := lab.openSession(t)
	// The commands run as from the admin's session (sudo keeps nothing but
	// the SSH_CONNECTION the test gives).
	env := []string{"SSH_CONNECTION=" + lab.net.ClientAddr.String() + " 40022 " + lab.net.ServerAddr.String() + " 22"}
	fw := func(args ...string) result {
		return runIn(lab.net.Server, 30*time.Second, env, binary, append([]string{"--root", lab.root, "firewall"}, args...)...)
	}
	if r := fw("default", "deny"); r.Code != 0 {
		t.Fatalf("default deny: exit %d: %s", r.Code, r.Out)
	}
	if err := lab.refused(8080); err == nil {
		t.Fatal("default deny while disabled changed the kernel")
	}
	r := fw("enable", "--confirm-within", "60s")
	if r.Code != 0 || !strings.Contains(r.Out, "Added to keep SSH reachable: allow 22/tcp") {
		t.Fatalf("enable: exit %d: %s", r.Code, r.Out)
	}
	if err := sess.echo("after enable"); err != nil {
		t.Fatalf("the admin session died: %v", err)
	}
	if err := lab.keyLogin(22); err != nil {
		t.Fatalf("new session after enable: %v", err)
	}
	if o, _ := nstest.Dial(lab.net.Client, lab.addr(8080), 500*time.Millisecond); o != nstest.TimedOut {
		t.Errorf("unlisted port 8080 under default deny: %s", o)
	}
	if r := fw("confirm"); r.Code != 0 {
		t.Fatalf("confirm: exit %d: %s", r.Code, r.Out)
	}
	// A change that would close SSH is refused and changes nothing.
	rules := filepath.Join(lab.root, "etc/palisade/firewall.rules")
	before, _ := os.ReadFile(rules)
	if r := fw("deny", "22/tcp"); r.Code != 1 || !strings.Contains(r.Out, "shut out SSH") {
		t.Errorf("deny 22/tcp: exit %d: %s", r.Code, r.Out)
	}
	if after, _ := os.ReadFile(rules); string(after) != string(before) {
		t.Error("a refused change wrote firewall.rules")
	}

	// Open 8080 (safe, in force at once), then close it again without
	// confirming: the rollback puts the file and the kernel back.
	if r := fw("allow", "8080/tcp"); r.Code != 0 || strings.Contains(r.Out, "confirm") {
		t.Fatalf("allow 8080/tcp: exit %d: %s", r.Code, r.Out)
	}
	eventually(t, 5*time.Second, "8080 open", func() error {
		if o, _ := nstest.Dial(lab.net.Client, lab.addr(8080), time.Second); o != nstest.Connected {
			return fmt.Errorf("%s", o)
		}
		return nil
	})
	confirmed, _ := os.ReadFile(rules)
	r = fw("deny", "8080/tcp", "--confirm-within", "3s")
	if r.Code != 0 || !strings.Contains(r.Out, "palisade firewall confirm") {
		t.Fatalf("deny 8080/tcp: exit %d: %s", r.Code, r.Out)
	}
	if o, _ := nstest.Dial(lab.net.Client, lab.addr(8080), 500*time.Millisecond); o != nstest.TimedOut {
		t.Errorf("8080 after deny: %s", o)
	}
	start := time.Now()
	eventually(t, 20*time.Second, "automatic rollback", func() error {
		if rb, _ := fwState(lab.root)["rolled_back"].(bool); !rb {
			return fmt.Errorf("not rolled back yet")
		}
		if o, _ := nstest.Dial(lab.net.Client, lab.addr(8080), time.Second); o != nstest.Connected {
			return fmt.Errorf("8080: %s", o)
		}
		return nil
	})
	t.Logf("rolled back %v after the change", time.Since(start).Round(100*time.Millisecond))
	if after, _ := os.ReadFile(rules); string(after) != string(confirmed) {
		t.Errorf("rollback did not restore firewall.rules byte for byte:\n%s\nwant:\n%s", after, confirmed)
	}
	if err := sess.echo("at the end"); err != nil {
		t.Errorf("the admin session died: %v", err)
	}
	if r := fw("confirm"); r.Code == 0 {
		t.Errorf("confirm after the rollback succeeded: %s", r.Out)
	}
}

// probe is one cell of a probe matrix.
type probe struct {
	from netip.Addr
	to   string
}

func matrix(t *testing.T, cli *nstest.NS, probes []probe) []string {
	t.Helper()
	out := make([]string, len(probes))
	for i, p := range probes {
		o, err := nstest.DialFrom(cli, p.from, p.to, 400*time.Millisecond)
		if err != nil {
			t.Fatalf("probe %v: %v", p, err)
		}
		out[i] = fmt.Sprintf("%s -> %s: %s", p.from, p.to, o)
	}
	return out
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// "import ufw" of a real ufw configuration gives the same allowed and
// refused outcomes as ufw itself, for a matrix of sources and ports.
func TestFirewallImportUFWMatchesUFW(t *testing.T) {
	palisadeBin(t)
	requirePrograms(t, "ufw", "iptables")
	srv, cli := nstest.New(t), nstest.New(t)
	nstest.Link(t, srv, cli,
		[]netip.Prefix{netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("203.0.113.1/24"), netip.MustParsePrefix("2001:db8::1/64")},
		[]netip.Prefix{netip.MustParsePrefix("198.51.100.2/24"), netip.MustParsePrefix("203.0.113.2/24"), netip.MustParsePrefix("2001:db8::2/64")})
	ports := []int{22, 80, 443, 2222, 3306, 8080, 9999}
	for _, p := range ports {
		nstest.Listen(t, srv, fmt.Sprintf(":%d", p))
	}
	ufw := nstest.PrivateUFW(t, srv)
	for _, args := range [][]string{
		{"default", "deny", "incoming"},
		{"allow", "22/tcp"},
		{"allow", "80,443/tcp"},
		{"limit", "2222/tcp"},
		{"allow", "from", "198.51.100.0/24", "to", "any", "port", "3306", "proto", "tcp"},
		{"insert", "1", "deny", "from", "203.0.113.0/24"},
		{"reject", "8080/tcp"},
		{"allow", "from", "2001:db8::/32", "to", "any", "port", "9999", "proto", "tcp"},
	} {
		if res, err := ufw.Run(context.Background(), sysexec.Cmd{Name: "ufw", Args: args}); err != nil {
			t.Fatalf("ufw %v: %v %s", args, err, res.Stdout)
		}
	}
	var probes []probe
	for _, from := range []string{"198.51.100.2", "203.0.113.2", "2001:db8::2"} {
		a := netip.MustParseAddr(from)
		to := "198.51.100.1"
		switch {
		case a.Is6():
			to = "2001:db8::1"
		case from == "203.0.113.2":
			to = "203.0.113.1"
		}
		for _, p := range ports {
			probes = append(probes, probe{a, net.JoinHostPort(to, strconv.Itoa(p))})
		}
	}
	withUFW := matrix(t, cli, probes)

	// Palisade under a --root holding a copy of ufw's files.
	root := t.TempDir()
	etc := filepath.Join("/etc/netns", srv.Name)
	copyUFW := func() {
		for _, f := range []string{"ufw/user.rules", "ufw/user6.rules", "ufw/ufw.conf", "default/ufw"} {
			copyFile(t, filepath.Join(etc, f), filepath.Join(root, "etc", f))
		}
	}
	copyUFW()
	t.Cleanup(func() { stopFirewallWatcher(root) })
	fw := func(args ...string) result {
		return runIn(srv, 30*time.Second, nil, binary, append([]string{"--root", root, "firewall"}, args...)...)
	}
	if r := fw("enable"); r.Code != 1 || !strings.Contains(r.Out, "palisade firewall import ufw") || !strings.Contains(r.Out, "ufw disable") {
		t.Errorf("enable next to an active ufw: exit %d: %s", r.Code, r.Out)
	}
	r := fw("import", "ufw", "--dry-run")
	if r.Code != 0 || !strings.Contains(r.Out, "+limit 2222/tcp") || !strings.Contains(r.Out, "dry run") {
		t.Errorf("import --dry-run: exit %d: %s", r.Code, r.Out)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/palisade/firewall.rules")); err == nil {
		t.Error("import --dry-run wrote firewall.rules")
	}
	if r := fw("import", "ufw"); r.Code != 0 {
		t.Fatalf("import: exit %d: %s", r.Code, r.Out)
	}
	if res, err := ufw.Run(context.Background(), sysexec.Cmd{Name: "ufw", Args: []string{"disable"}}); err != nil {
		t.Fatalf("ufw disable: %v %s", err, res.Stdout)
	}
	copyUFW()
	if r := fw("enable", "--confirm-within", "60s"); r.Code != 0 {
		t.Fatalf("enable after ufw disable: exit %d: %s", r.Code, r.Out)
	}
	withPalisade := matrix(t, cli, probes)
	if r := fw("confirm"); r.Code != 0 {
		t.Errorf("confirm: exit %d: %s", r.Code, r.Out)
	}
	t.Logf("probe matrix (ufw | palisade):")
	for i := range probes {
		t.Logf("  %-40s | %s", withUFW[i], strings.TrimPrefix(withPalisade[i], probes[i].from.String()+" -> "+probes[i].to+": "))
		if withUFW[i] != withPalisade[i] {
			t.Errorf("differs: ufw %q, palisade %q", withUFW[i], withPalisade[i])
		}
	}
	// The matrix is not trivial: some connect, some are dropped, some refused.
	all := strings.Join(withUFW, "\n")
	for _, o := range []nstest.Outcome{nstest.Connected, nstest.TimedOut, nstest.Refused} {
		if !strings.Contains(all, string(o)) {
			t.Errorf("no %s in the matrix", o)
		}
	}
}

// tableSummary is what matters of table inet palisade: each chain's number
// of rules and each set's elements (without their timers).
func tableSummary(ns *nstest.NS) (string, error) {
	r := runIn(ns, 10*time.Second, nil, "nft", "-j", "list", "table", "inet", "palisade")
	if r.Code != 0 {
		return "", fmt.Errorf("nft list: %s", r.Out)
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(r.Out), &doc); err != nil {
		return "", err
	}
	counts := map[string]int{}
	var sets []string
	for _, item := range doc.Nftables {
		if raw, ok := item["rule"]; ok {
			var rule struct {
				Chain string `json:"chain"`
			}
			_ = json.Unmarshal(raw, &rule)
			counts[rule.Chain]++
		}
		if raw, ok := item["chain"]; ok {
			var ch struct {
				Name string `json:"name"`
			}
			_ = json.Unmarshal(raw, &ch)
			counts[ch.Name] += 0
		}
		if raw, ok := item["set"]; ok {
			var s struct {
				Name string            `json:"name"`
				Elem []json.RawMessage `json:"elem"`
			}
			_ = json.Unmarshal(raw, &s)
			var elems []string
			for _, e := range s.Elem {
				var timed struct {
					Elem struct {
						Val json.RawMessage `json:"val"`
					} `json:"elem"`
				}
				if json.Unmarshal(e, &timed) == nil && timed.Elem.Val != nil {
					e = timed.Elem.Val
				}
				elems = append(elems, string(e))
			}
			if strings.HasPrefix(s.Name, "sshd_") {
				sets = append(sets, fmt.Sprintf("%s=%v", s.Name, elems))
			} else {
				sets = append(sets, s.Name)
			}
		}
	}
	var chains []string
	for c, n := range counts {
		chains = append(chains, fmt.Sprintf("%s:%d", c, n))
	}
	sortStrings(chains)
	sortStrings(sets)
	return strings.Join(chains, " ") + " | " + strings.Join(sets, " "), nil
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// The daemon puts the policy, the jail rules and every ban back after
// "nft flush ruleset", "nft delete table inet palisade" and "nft flush
// table inet palisade" behind its back, within 5 seconds.
// PALISADE_FLUSH_BANS=100000 adds that many stored bans (for
// docs/PERFORMANCE.md; the set dumps then take seconds themselves).
func TestFirewallSurvivesFlush(t *testing.T) {
	palisadeBin(t)
	requirePrograms(t, "nft")
	p := newPair(t)
	root := t.TempDir()
	for name, text := range map[string]string{
		"etc/palisade/jail.local":     "[sshd]\nenabled = true\nport = 22\nlogpath = /var/log/auth.log\nbackend = polling\n",
		"etc/palisade/palisade.local": "[Definition]\nlogtarget = /var/log/palisade.log\n[firewall]\nbackend = nftables\n",
		"etc/palisade/firewall.rules": "enable\ndefault deny incoming\nallow 22/tcp\nlimit 2222/tcp --conn 2 --rate 3/1s\n",
		"var/log/auth.log":            "",
	} {
		full := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(root, "run/palisade.sock")
	db := filepath.Join(root, "var/lib/palisade/palisade.db")
	extra, _ := strconv.Atoi(os.Getenv("PALISADE_FLUSH_BANS"))
	if extra > 0 {
		seedBans(t, db, extra)
	}
	startIn(t, p.Server, binary, "--root", root, "daemon", "--config-dir", filepath.Join(root, "etc/palisade"),
		"--socket", sock, "--db", db)
	cli := func(args ...string) result {
		return runIn(nil, 10*time.Second, nil, binary, append(args, "--socket", sock)...)
	}
	eventually(t, 20*time.Second, "daemon answering", func() error {
		if r := cli("status", "--json"); r.Code != 0 {
			return fmt.Errorf("status: %s", r.Out)
		}
		return nil
	})
	for _, ip := range []string{"203.0.113.5", "203.0.113.6", "198.51.100.9", "2001:db8::bad"} {
		if r := cli("ban", "sshd", ip); r.Code != 0 {
			t.Fatalf("ban %s: %s", ip, r.Out)
		}
	}
	nstest.Listen(t, p.Server, "0.0.0.0:9999")
	var baseline string
	summary := func() (string, error) {
		if extra > 0 {
			return bigSummary(p.Server)
		}
		return tableSummary(p.Server)
	}
	eventually(t, 10*time.Second, "policy and bans installed", func() error {
		s, err := summary()
		if err != nil {
			return err
		}
		if !strings.Contains(s, "pol_input") || !strings.Contains(s, "2001:db8::bad") || !strings.Contains(s, "203.0.113.6") && extra == 0 {
			return fmt.Errorf("not yet: %s", s)
		}
		baseline = s
		return nil
	})
	t.Logf("table: %s", baseline)
	for _, disruption := range [][]string{
		{"flush", "ruleset"},
		{"delete", "table", "inet", "palisade"},
		{"flush", "table", "inet", "palisade"},
	} {
		if r := runIn(p.Server, 10*time.Second, nil, "nft", disruption...); r.Code != 0 {
			t.Fatalf("nft %v: %s", disruption, r.Out)
		}
		start := time.Now()
		eventually(t, 20*time.Second, "restored after nft "+strings.Join(disruption, " "), func() error {
			s, err := summary()
			if err != nil {
				return err
			}
			if s != baseline {
				return fmt.Errorf("table now: %s", s)
			}
			return nil
		})
		took := time.Since(start)
		t.Logf("nft %s: policy, jail rules and bans back after %v", strings.Join(disruption, " "), took.Round(time.Millisecond))
		if took > 5*time.Second {
			t.Errorf("nft %s: restored after %v, more than 5 s", strings.Join(disruption, " "), took)
		}
		if o, _ := nstest.Dial(p.Client, net.JoinHostPort(p.ServerAddr.String(), "9999"), 500*time.Millisecond); o != nstest.TimedOut {
			t.Errorf("after nft %s: unlisted port %s (default deny not back)", strings.Join(disruption, " "), o)
		}
	}
	log, _ := os.ReadFile(filepath.Join(root, "var/log/palisade.log"))
	if !strings.Contains(string(log), "changed behind its back") {
		t.Errorf("no restore logged:\n%s", log)
	}
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, "behind its back") || strings.Contains(l, "bans restored") {
			t.Logf("daemon: %s", l)
		}
	}
}

// seedBans stores n day-long sshd bans (10.x.y.z) in the database at path.
func seedBans(t *testing.T, path string, n int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	bans := make([]store.Ban, n)
	for i := range bans {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		bans[i] = store.Ban{Jail: "sshd", Prefix: netip.PrefixFrom(a, 32), Start: now, Expires: now.Add(24 * time.Hour)}
	}
	if err := st.AddBans(bans); err != nil {
		t.Fatal(err)
	}
}

// bigSummary is tableSummary for big ban sets: chains and rule counts over
// netlink, the sshd sets by their number of elements.
func bigSummary(ns *nstest.NS) (string, error) {
	c, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	if err != nil {
		return "", err
	}
	tbl := &nftables.Table{Name: "palisade", Family: nftables.TableFamilyINet}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return "", err
	}
	var parts []string
	for _, ch := range chains {
		if ch.Table.Name == "palisade" {
			parts = append(parts, ch.Name)
		}
	}
	sortStrings(parts)
	for _, name := range []string{"sshd_a4", "sshd_a6"} {
		els, err := c.GetSetElements(&nftables.Set{Table: tbl, Name: name})
		if err != nil {
			return "", err
		}
		parts = append(parts, fmt.Sprintf("%s=%d", name, len(els)))
		if name == "sshd_a6" && len(els) == 1 {
			parts = append(parts, "2001:db8::bad")
		}
	}
	return strings.Join(parts, " "), nil
}

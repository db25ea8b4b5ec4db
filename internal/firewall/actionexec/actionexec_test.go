package actionexec

import (
	"bufio"
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
	"github.com/palisade-project/palisade/internal/sysexec"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		line    string
		want    []string
		wantErr string
	}{
		{line: "ip route add unreachable 192.0.2.1", want: []string{"ip", "route", "add", "unreachable", "192.0.2.1"}},
		{line: `  a   'b c'  "d e" f\ g  `, want: []string{"a", "b c", "d e", "f g"}},
		{line: `echo 'it''s' "say \"hi\" \\ \$x"`, want: []string{"echo", "its", `say "hi" \ $x`}},
		{line: `curl 'https://example.org/?a=1&b=$x|y'`, want: []string{"curl", "https://example.org/?a=1&b=$x|y"}},
		{line: `a ""`, want: []string{"a", ""}},
		{line: `x "a\nb"`, want: []string{"x", `a\nb`}},
		{line: "a | b", wantErr: `'|'`},
		{line: "a > /tmp/x", wantErr: `'>'`},
		{line: "a 2>&1", wantErr: `'>'`},
		{line: "a; b", wantErr: `';'`},
		{line: "a && b", wantErr: `'&'`},
		{line: "a `id`", wantErr: "'`'"},
		{line: "a $(id)", wantErr: `'$'`},
		{line: `a "$HOME"`, wantErr: "inside double quotes"},
		{line: "a *", wantErr: `'*'`},
		{line: "{ a; }", wantErr: `'{'`},
		{line: "a 'open", wantErr: "unterminated ' quote"},
		{line: `a \`, wantErr: "trailing backslash"},
		{line: "# comment", wantErr: "comment"},
	}
	for _, tt := range tests {
		c, err := split(tt.line)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("split(%q) error = %v, want containing %q", tt.line, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("split(%q): %v", tt.line, err)
			continue
		}
		var got []string
		for _, w := range c {
			var sb strings.Builder
			for _, p := range w {
				sb.WriteString(p.lit)
			}
			got = append(got, sb.String())
		}
		if strings.Join(got, "\x01") != strings.Join(tt.want, "\x01") {
			t.Errorf("split(%q) = %q, want %q", tt.line, got, tt.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	base := func(ban string) map[string]string {
		return map[string]string{"actionban": ban, "name": "sshd", "port": "ssh", "chain": "INPUT", "loop": "<loop>"}
	}
	tests := []struct {
		opts    map[string]string
		wantErr string
	}{
		{base("mail -s banned <ip> <matches>"), "tag <matches> carries attacker-controlled text"},
		{base("notify <ipjailmatches>"), "<ipjailmatches> carries attacker-controlled"},
		{base("notify <F-USER>"), "<F-USER> carries attacker-controlled"},
		{base("notify <F-SOMETHING>"), "<F-SOMETHING> carries attacker-controlled"},
		{base("notify <fid>"), "<fid>"},
		{base("notify <ip-host>"), "<ip-host>"},
		{base("x <nosuch>"), "unknown tag <nosuch>"},
		{base("x <loop>"), "refers to itself"},
		{base("x <failures>"), "not available"},
		{base("iptables -I <chain> -s <ip> -j DROP | logger"), `"iptables -I INPUT -s ip -j DROP | logger": shell syntax '|'`},
		{map[string]string{"actionstart": "true"}, "actionban: empty"},
		{map[string]string{"actionban": "true", "actionstart": "log <ip>"}, "<ip> is only known in actionban"},
	}
	for _, tt := range tests {
		_, err := Compile("test", tt.opts)
		var ce *Error
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &ce) {
			t.Errorf("Compile(%q) error = %v, want *Error containing %q", tt.opts["actionban"], err, tt.wantErr)
		}
	}
}

func TestArgv(t *testing.T) {
	opts := map[string]string{
		"actionban":                "<fw> -I f2b-<name> 1 -s <ip> -j <blocktype>\n  logger -t palisade 'banned <ip> for <bantime>s (<family>) rev=<ip-rev>'",
		"actionunban":              "<fw> -D f2b-<name> -s <ip> -j <blocktype>",
		"fw":                       "iptables <lockingopt>",
		"fw?family=inet6":          "ip6tables <lockingopt>",
		"lockingopt":               "-w",
		"name":                     "sshd",
		"blocktype":                "REJECT --reject-with icmp-port-unreachable",
		"blocktype?family=inet6":   "REJECT --reject-with icmp6-port-unreachable",
		"actionstart":              "",
		"actionstart?family=inet6": "",
	}
	a, err := Compile("iptables-like", opts)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		v    Values
		want []string
	}{
		{Values{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Family: "inet4", Now: now, Expires: now.Add(600 * time.Second)}, []string{
			"iptables -w -I f2b-sshd 1 -s 192.0.2.1 -j REJECT --reject-with icmp-port-unreachable",
			"logger -t palisade banned 192.0.2.1 for 600s (inet4) rev=1.2.0.192",
		}},
		{Values{Prefix: netip.MustParsePrefix("2001:db8::/32"), Family: "inet6", Now: now}, []string{
			"ip6tables -w -I f2b-sshd 1 -s 2001:db8::/32 -j REJECT --reject-with icmp6-port-unreachable",
			"logger -t palisade banned 2001:db8::/32 for -1s (inet6) rev=0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2",
		}},
	}
	for _, tt := range tests {
		cmds, err := a.Argv("actionban", tt.v)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range cmds {
			got = append(got, strings.Join(c, " "))
		}
		if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("Argv:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
		// The quoted logger message stays one argument whatever is substituted.
		if len(cmds[1]) != 4 {
			t.Errorf("logger argv has %d words: %q", len(cmds[1]), cmds[1])
		}
	}
}

func TestBackendWithFake(t *testing.T) {
	a, err := Compile("route", map[string]string{
		"actionstart": "touch /run/started-<family>", "actionstop": "rm -f /run/started-<family>",
		"actionban": "ip route add <blocktype> <ip>", "actionunban": "ip route del <blocktype> <ip>", "blocktype": "unreachable",
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &sysexec.Fake{}
	f.On("", sysexec.Result{}, nil)
	f.On("ip route del unreachable 203.0.113.1", sysexec.Result{ExitCode: 2}, &sysexec.ExitError{Cmd: "ip", ExitCode: 2})
	b := NewBackend(a, f, nil)
	ctx := context.Background()
	if b.Name() != "exec:route" {
		t.Errorf("Name = %q", b.Name())
	}
	if err := b.Setup(ctx, nil); err != nil {
		t.Fatal(err)
	}
	bans := []firewall.Ban{{Jail: "j", Prefix: netip.MustParsePrefix("192.0.2.1/32")}, {Jail: "j", Prefix: netip.MustParsePrefix("2001:db8::/48")}}
	if err := b.Add(ctx, bans); err != nil {
		t.Fatal(err)
	}
	err = b.Remove(ctx, append(bans, firewall.Ban{Jail: "j", Prefix: netip.MustParsePrefix("203.0.113.1/32")}))
	if err == nil || !strings.Contains(err.Error(), "actionunban") {
		t.Errorf("Remove with a failing unban: %v", err)
	}
	if _, err := b.List(ctx); !errors.Is(err, firewall.ErrNotListable) {
		t.Errorf("List: %v", err)
	}
	if err := b.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range f.Calls() {
		got = append(got, c.String())
	}
	want := []string{
		"touch /run/started-inet4",
		"ip route add unreachable 192.0.2.1",
		"touch /run/started-inet6",
		"ip route add unreachable 2001:db8::/48",
		"ip route del unreachable 192.0.2.1",
		"ip route del unreachable 2001:db8::/48",
		"ip route del unreachable 203.0.113.1",
		"rm -f /run/started-inet4",
		"rm -f /run/started-inet6",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// readAction is a minimal reader for a fail2ban action file's [Definition]
// and [Init] keys (continuation lines supported), enough to run the
// installed route.conf in the kernel test; the real reader is internal/config/ini.
func readAction(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("kernel test: %v", err)
	}
	defer f.Close()
	opts := map[string]string{}
	section, last := "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		trim := strings.TrimSpace(line)
		switch {
		case trim == "" || strings.HasPrefix(trim, "#") || strings.HasPrefix(trim, ";"):
			continue
		case strings.HasPrefix(trim, "["):
			section, last = strings.Trim(trim, "[]"), ""
		case (line[0] == ' ' || line[0] == '\t') && last != "":
			opts[last] += "\n" + trim
		case section == "Definition" || section == "Init":
			k, v, ok := strings.Cut(trim, "=")
			if ok {
				last = strings.TrimSpace(k)
				opts[last] = strings.TrimSpace(v)
			}
		}
	}
	return opts
}

// TestKernelRouteAction runs fail2ban's installed route.conf (read at run
// time) in a fresh namespace: bans become unreachable routes.
func TestKernelRouteAction(t *testing.T) {
	nstest.RequireProgram(t, "ip")
	ns := nstest.New(t)
	a, err := Compile("route", readAction(t, "/etc/fail2ban/action.d/route.conf"))
	if err != nil {
		t.Fatal(err)
	}
	run := nstest.Runner{NS: ns, Inner: sysexec.NewExec(10 * time.Second)}
	b := NewBackend(a, run, nil)
	ctx := context.Background()
	routes := func() string {
		res, err := run.Run(ctx, sysexec.Cmd{Name: "ip", Args: []string{"-4", "route", "show", "type", "unreachable"}})
		if err != nil {
			t.Fatal(err)
		}
		res6, err := run.Run(ctx, sysexec.Cmd{Name: "ip", Args: []string{"-6", "route", "show", "type", "unreachable"}})
		if err != nil {
			t.Fatal(err)
		}
		return string(res.Stdout) + string(res6.Stdout)
	}
	if err := b.Setup(ctx, nil); err != nil {
		t.Fatal(err)
	}
	bans := []firewall.Ban{
		{Prefix: netip.MustParsePrefix("192.0.2.7/32")},
		{Prefix: netip.MustParsePrefix("198.51.100.0/24")},
		{Prefix: netip.MustParsePrefix("2001:db8::/48")},
	}
	if err := b.Add(ctx, bans); err != nil {
		t.Fatal(err)
	}
	got := routes()
	for _, want := range []string{"unreachable 192.0.2.7", "unreachable 198.51.100.0/24", "unreachable 2001:db8::/48"} {
		if !strings.Contains(got, want) {
			t.Errorf("routes lack %q:\n%s", want, got)
		}
	}
	if err := b.Remove(ctx, bans); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(routes()); got != "" {
		t.Errorf("routes left after unban:\n%s", got)
	}
	if err := b.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestInstalledActions compiles every installed fail2ban action: those
// using shell syntax or attacker-controlled tags must fail with a clear
// error, never compile into something that runs differently.
func TestInstalledActions(t *testing.T) {
	entries, err := os.ReadDir("/etc/fail2ban/action.d")
	if err != nil {
		t.Skipf("fail2ban actions not installed: %v", err)
	}
	compiled := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".conf") {
			continue
		}
		opts := readAction(t, "/etc/fail2ban/action.d/"+e.Name())
		opts["name"], opts["port"], opts["protocol"] = "sshd", "22", "tcp"
		_, err := Compile(strings.TrimSuffix(e.Name(), ".conf"), opts)
		if err == nil {
			compiled++
			t.Logf("compiles: %s", e.Name())
			continue
		}
		var ce *Error
		if !errors.As(err, &ce) || ce.Option == "" {
			t.Errorf("%s: error without option context: %v", e.Name(), err)
		}
	}
	if compiled == 0 {
		t.Error("no installed action compiled (route.conf at least should)")
	}
	t.Logf("%d of %d installed actions compile without a shell", compiled, len(entries))
}

func TestMapBanAction(t *testing.T) {
	tests := []struct {
		name     string
		args     map[string]string
		kind     string
		allPorts bool
		ok       bool
	}{
		{"nftables", nil, KindNftables, false, true},
		{"nftables-multiport", nil, KindNftables, false, true},
		{"nftables-allports", nil, KindNftables, true, true},
		{"nftables", map[string]string{"type": "allports"}, KindNftables, true, true},
		{"iptables", nil, KindIpset, false, true},
		{"iptables-multiport", nil, KindIpset, false, true},
		{"iptables-allports", nil, KindIpset, true, true},
		{"iptables-ipset", nil, KindIpset, false, true},
		{"iptables-ipset-proto6", nil, KindIpset, false, true},
		{"iptables-ipset-proto6-allports", nil, KindIpset, true, true},
		{"ufw", nil, KindUFW, false, true},
		{"route", nil, "", false, false},
		{"shorewall", nil, "", false, false},
	}
	for _, tt := range tests {
		kind, all, ok := MapBanAction(tt.name, tt.args)
		if kind != tt.kind || all != tt.allPorts || ok != tt.ok {
			t.Errorf("MapBanAction(%q, %v) = %q, %v, %v; want %q, %v, %v", tt.name, tt.args, kind, all, ok, tt.kind, tt.allPorts, tt.ok)
		}
	}
	for in, want := range map[string]firewall.Block{"REJECT --reject-with icmp-port-unreachable": firewall.Reject, "reject": firewall.Reject, "DROP": firewall.Drop, "drop": firewall.Drop, "": firewall.Reject} {
		if got := BlockFromOption(in); got != want {
			t.Errorf("BlockFromOption(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzSplit(f *testing.F) {
	for _, s := range []string{"a b", `'x' "y"`, "a|b", `a\ b`, "\x00ip\x00", `"\$"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := split(s)
		if err != nil {
			return
		}
		for _, w := range c {
			for _, p := range w {
				if p.tag == "" && strings.ContainsAny(p.lit, "\x00") {
					t.Fatalf("tag mark leaked into a literal: %q", s)
				}
			}
		}
	})
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{"ip route add <blocktype> <ip>", "x <name> '<ip>' \"<family>\"", "a <matches>", "<x>", "a\n b <ip-rev>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Compile("fuzz", map[string]string{"actionban": s, "blocktype": "unreachable", "name": "sshd", "x": "<name>"})
		if err != nil {
			return
		}
		v := Values{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Family: "inet4", Now: time.Unix(0, 0)}
		cmds, err := a.Argv("actionban", v)
		if err != nil {
			t.Fatalf("compiled %q but Argv failed: %v", s, err)
		}
		for _, c := range cmds {
			if len(c) == 0 {
				t.Fatalf("empty command from %q", s)
			}
			for _, w := range c {
				if strings.ContainsRune(w, tagMark) {
					t.Fatalf("tag mark in argv from %q: %q", s, c)
				}
			}
		}
	})
}

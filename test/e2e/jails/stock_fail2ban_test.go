package jails

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall/nstest"
)

// stockLine is one realistic log line of a service (as Debian's packages
// write it), with the attacker's address.
type stockLine struct {
	jail, file string
	line       func(now time.Time, ip string) string
}

func syslogTime(now time.Time) string { return now.Format("Jan _2 15:04:05") }

var stockServices = []stockLine{
	{"sshd", "auth.log", func(now time.Time, ip string) string {
		return fmt.Sprintf("%s web1 sshd[4242]: Failed password for root from %s port 50022 ssh2", syslogTime(now), ip)
	}},
	{"nginx-http-auth", "nginx-error.log", func(now time.Time, ip string) string {
		return fmt.Sprintf(`%s [error] 812#812: *17 user "admin": password mismatch, client: %s, server: example.com, request: "GET /admin/ HTTP/1.1", host: "example.com"`,
			now.Format("2006/01/02 15:04:05"), ip)
	}},
	{"postfix", "mail.log", func(now time.Time, ip string) string {
		return fmt.Sprintf("%s mail postfix/smtpd[2211]: NOQUEUE: reject: RCPT from unknown[%s]: 554 5.7.1 <spam@example.com>: Relay access denied; from=<a@example.org> to=<spam@example.com> proto=ESMTP helo=<x.example.org>",
			syslogTime(now), ip)
	}},
	{"dovecot", "mail.log", func(now time.Time, ip string) string {
		return fmt.Sprintf("%s mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<bob>, method=PLAIN, rip=%s, lip=192.0.2.1, TLS, session=<AbCdEf01>",
			syslogTime(now), ip)
	}},
	{"proftpd", "proftpd.log", func(now time.Time, ip string) string {
		return fmt.Sprintf("%s ftp proftpd[3131]: ftp.example.com (%s[%s]) - USER bob (Login failed): Incorrect password.", syslogTime(now), ip, ip)
	}},
}

// TestStockFail2banTree runs `palisade daemon --config-dir` on a copy of
// Debian's stock /etc/fail2ban with a jail.local enabling sshd,
// nginx-http-auth, postfix, dovecot, proftpd and recidive on temporary
// logs, and fail2ban.local sending the log to a file, in a namespace with
// real nftables. Realistic lines make each jail ban its attacker; status
// shows fail2ban's counters; and the stock recidive jail, reading
// palisade's own log, bans the address banned by two jails.
func TestStockFail2banTree(t *testing.T) {
	palisade(t)
	nstest.RequireProgram(t, "ip", "nft", "cp")
	if _, err := os.Stat("/etc/fail2ban/jail.conf"); err != nil {
		t.Skip("Debian's fail2ban package is not installed (no /etc/fail2ban/jail.conf); .ci/run installs it")
	}
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc")
	if out, err := exec.Command("cp", "-a", "/etc/fail2ban", etc).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc/fail2ban: %v %s", err, out)
	}
	logs := filepath.Join(dir, "log")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	palisadeLog := filepath.Join(logs, "fail2ban.log")
	var jl strings.Builder
	fmt.Fprintf(&jl, "[DEFAULT]\nbanaction = nftables-multiport\nbanaction_allports = nftables-allports\nmaxretry = 3\nfindtime = 10m\nbantime = 1h\n\n")
	seen := map[string]bool{}
	for _, s := range stockServices {
		p := filepath.Join(logs, s.file)
		if !seen[p] {
			seen[p] = true
			if err := os.WriteFile(p, nil, 0o640); err != nil {
				t.Fatal(err)
			}
		}
		fmt.Fprintf(&jl, "[%s]\nenabled = true\nbackend = auto\nlogpath = %s\n\n", s.jail, p)
	}
	fmt.Fprintf(&jl, "[recidive]\nenabled = true\nbackend = auto\nlogpath = %s\nmaxretry = 2\n", palisadeLog)

	d := newDaemon(t, nstest.New(t), dir, map[string]string{
		"jail.local":     jl.String(),
		"fail2ban.local": "[Definition]\nlogtarget = " + palisadeLog + "\nloglevel = INFO\n",
		"palisade.local": "[firewall]\nbackend = nftables\n",
	})
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("SHOWLOG") != "" {
			b, _ := os.ReadFile(palisadeLog)
			t.Logf("palisade's log (the log target):\n%s", tail(b, 60))
		}
	})
	d.start()

	// Each jail's attacker (203.0.113.1x); 198.51.100.66 attacks sshd and
	// dovecot: two bans, which recidive counts.
	const repeat = "198.51.100.66"
	now := time.Now()
	write := func(file string, lines ...string) {
		f, err := os.OpenFile(filepath.Join(logs, file), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	attackers := map[string][]string{}
	for i, s := range stockServices {
		ip := fmt.Sprintf("203.0.113.%d", 10+i)
		lines := []string{}
		for range 3 {
			lines = append(lines, s.line(now, ip))
		}
		attackers[s.jail] = []string{ip}
		if s.jail == "sshd" || s.jail == "dovecot" {
			for range 3 {
				lines = append(lines, s.line(now, repeat))
			}
			attackers[s.jail] = append(attackers[s.jail], repeat)
		}
		write(s.file, lines...)
	}
	for _, s := range stockServices {
		want := attackers[s.jail]
		if len(want) == 2 && want[1] < want[0] {
			want[0], want[1] = want[1], want[0]
		}
		d.waitBanned(s.jail, want...)
	}
	d.waitBanned("recidive", repeat)

	// fail2ban's counters: banned addresses are not "currently failed".
	var st struct {
		Jails []struct {
			Name            string `json:"name"`
			CurrentlyFailed int    `json:"currently_failed"`
			TotalFailed     uint64 `json:"total_failed"`
			CurrentlyBanned int    `json:"currently_banned"`
			TotalBanned     uint64 `json:"total_banned"`
		} `json:"jails"`
	}
	d.json(&st, "status")
	for _, j := range st.Jails {
		if j.Name == "recidive" {
			continue
		}
		wantBans := len(attackers[j.Name])
		if j.CurrentlyFailed != 0 || j.TotalFailed != uint64(3*wantBans) || j.CurrentlyBanned != wantBans || j.TotalBanned != uint64(wantBans) {
			t.Errorf("status %s: %+v, want 0 currently failed, %d failed, %d banned", j.Name, j, 3*wantBans, wantBans)
		}
	}
	// The kernel holds every ban, recidive's in its own set.
	inv := nftInventory(t, d.ns)
	for jail, ips := range attackers {
		for _, ip := range ips {
			if !strings.Contains(strings.Join(inv.holding(ip), " "), jail) {
				t.Errorf("nftables does not hold %s for %s: %v", ip, jail, inv.holding(ip))
			}
		}
	}
	if !strings.Contains(strings.Join(inv.holding(repeat), " "), "recidive") {
		t.Errorf("nftables does not hold recidive's ban of %s: %v", repeat, inv.holding(repeat))
	}
	// palisade's log carries fail2ban's ban lines, recidive's own among them.
	text, err := os.ReadFile(palisadeLog)
	if err != nil {
		t.Fatal(err)
	}
	ban := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} fail2ban\.actions {8}\[\d+\]: NOTICE  \[([a-z-]+)\] Ban (\S+)$`)
	got := map[string]int{}
	for _, m := range ban.FindAllStringSubmatch(string(text), -1) {
		got[m[1]]++
	}
	if got["recidive"] != 1 || got["sshd"] != 2 || got["dovecot"] != 2 || got["proftpd"] != 1 {
		t.Errorf("ban lines per jail %v:\n%s", got, text)
	}
}

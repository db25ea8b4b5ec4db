// Package authlog generates realistic, deterministic auth.log lines for
// benchmarks and tests: classic syslog lines ("Nov 24 19:40:51 host
// prog[pid]: msg") from sshd (about 11% failures: invalid users, failed
// passwords, preauth disconnects, too many attempts...; successes and
// session lines), CRON, systemd, sudo, the kernel firewall and postfix,
// about 102 bytes per line. Attackers come from the documentation ranges
// (IPv4 and IPv6) and a few realistic networks; a few addresses do most of
// the work.
package authlog

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"
)

// Gen writes a deterministic auth.log; everything derives from the seed.
// It is not safe for concurrent use.
type Gen struct {
	r       *rand.Rand
	t       time.Time
	step    time.Duration
	host    string
	buf     []byte
	attack  []string // attacker pool, heavy hitters first
	clients []string // addresses of legitimate users
	pid     int
	session int

	// profiles other than mixed (see NewProfile)
	next  func() (prog, msg string)
	conns []conn
	conn  int
}

// New returns a generator whose first line is at t0 (syslog time stamps
// carry no year or zone), for the given host name.
func New(seed uint64, t0 time.Time, host string) *Gen {
	g := &Gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), t: t0, host: host,
		step: 86 * time.Millisecond, pid: 1000 + int(seed%1000), session: 1}
	// 2000 attackers: documentation ranges, plus realistic networks.
	for i := 0; i < 2000; i++ {
		g.attack = append(g.attack, g.attackerAddr())
	}
	for i := 0; i < 20; i++ {
		g.clients = append(g.clients, fmt.Sprintf("192.0.2.%d", 200+i))
	}
	return g
}

func (g *Gen) attackerAddr() string {
	switch n := g.r.IntN(100); {
	case n < 30:
		return fmt.Sprintf("203.0.113.%d", 1+g.r.IntN(254))
	case n < 55:
		return fmt.Sprintf("198.51.100.%d", 1+g.r.IntN(254))
	case n < 70:
		return fmt.Sprintf("192.0.2.%d", 1+g.r.IntN(190))
	case n < 85:
		var a [16]byte
		copy(a[:], netip.MustParseAddr("2001:db8::").AsSlice())
		for i := 4; i < 16; i++ {
			if i < 8 || g.r.IntN(3) == 0 {
				a[i] = byte(g.r.IntN(256))
			}
		}
		return netip.AddrFrom16(a).String()
	default:
		// the kind of networks real scans come from
		nets := [][2]int{{218, 92}, {61, 177}, {45, 148}, {185, 156}, {194, 169}, {141, 98}, {92, 118}, {183, 81}}
		p := nets[g.r.IntN(len(nets))]
		return fmt.Sprintf("%d.%d.%d.%d", p[0], p[1], g.r.IntN(256), 1+g.r.IntN(254))
	}
}

// attacker picks from the pool with a skew: a few addresses do most work.
func (g *Gen) attacker() string {
	i := int(float64(len(g.attack)) * g.r.Float64() * g.r.Float64() * g.r.Float64())
	return g.attack[i]
}

var users = []string{"root", "admin", "ubuntu", "test", "user", "oracle", "postgres", "git", "ftpuser",
	"pi", "guest", "support", "debian", "centos", "ec2-user", "hadoop", "mysql", "deploy", "jenkins", "minecraft"}

func (g *Gen) user() string { return users[g.r.IntN(len(users))] }
func (g *Gen) port() int    { return 1024 + g.r.IntN(64511) }

// Line returns the next line, with its newline; the slice is valid until
// the next call.
func (g *Gen) Line() []byte {
	g.t = g.t.Add(time.Duration(g.r.Int64N(int64(2 * g.step))))
	var prog, msg string
	if g.next != nil {
		prog, msg = g.next()
	} else {
		prog, msg = g.event()
	}
	if len(msg) > 0 && msg[0] == 0 {
		// "\x00PROG\x00MSG": another program's line within a connection
		prog, msg, _ = strings.Cut(msg[1:], "\x00")
	}
	var b []byte
	switch prog {
	case "\x00nginx":
		b = g.t.AppendFormat(g.buf[:0], "2006/01/02 15:04:05 ")
	case "\x00apache":
		b = g.t.AppendFormat(append(g.buf[:0], '['), "Mon Jan 02 15:04:05.000000 2006] ")
	default:
		b = g.t.AppendFormat(g.buf[:0], time.Stamp)
		b = append(b, ' ')
		b = append(b, g.host...)
		b = append(b, ' ')
		b = append(b, prog...)
		b = append(b, ": "...)
	}
	b = append(b, msg...)
	b = append(b, '\n')
	g.buf = b
	return b
}

func (g *Gen) sshd() string {
	if g.r.IntN(4) == 0 {
		g.pid = 1000 + g.r.IntN(4_000_000)
	}
	return fmt.Sprintf("sshd[%d]", g.pid)
}

// event picks one message; weights are per mille.
func (g *Gen) event() (string, string) {
	n := g.r.IntN(1000)
	switch {
	// sshd failures: 110
	case n < 30:
		return g.sshd(), fmt.Sprintf("Invalid user %s from %s port %d", g.user(), g.attacker(), g.port())
	case n < 55:
		return g.sshd(), fmt.Sprintf("Failed password for invalid user %s from %s port %d ssh2", g.user(), g.attacker(), g.port())
	case n < 75:
		return g.sshd(), fmt.Sprintf("Failed password for root from %s port %d ssh2", g.attacker(), g.port())
	case n < 85:
		return g.sshd(), fmt.Sprintf("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s  user=root", g.attacker())
	case n < 91:
		return g.sshd(), fmt.Sprintf("error: maximum authentication attempts exceeded for root from %s port %d ssh2 [preauth]", g.attacker(), g.port())
	case n < 97:
		return g.sshd(), fmt.Sprintf("Connection closed by invalid user %s %s port %d [preauth]", g.user(), g.attacker(), g.port())
	case n < 101:
		return g.sshd(), fmt.Sprintf("Disconnected from authenticating user root %s port %d [preauth]", g.attacker(), g.port())
	case n < 104:
		return g.sshd(), fmt.Sprintf("Unable to negotiate with %s port %d: no matching host key type found. Their offer: ssh-rsa,ssh-dss [preauth]", g.attacker(), g.port())
	case n < 107:
		return g.sshd(), fmt.Sprintf("User root from %s not allowed because not listed in AllowUsers", g.attacker())
	case n < 110:
		return g.sshd(), fmt.Sprintf("Received disconnect from %s port %d:11: Bye Bye [preauth]", g.attacker(), g.port())
	// other sshd: 230
	case n < 190:
		return g.sshd(), fmt.Sprintf("Connection closed by %s port %d [preauth]", g.attacker(), g.port())
	case n < 215:
		return g.sshd(), fmt.Sprintf("Received disconnect from %s port %d:11: Normal Shutdown [preauth]", g.attacker(), g.port())
	case n < 245:
		c := g.clients[g.r.IntN(len(g.clients))]
		return g.sshd(), fmt.Sprintf("Accepted publickey for deploy from %s port %d ssh2: ED25519 SHA256:%s", c, g.port(), g.fingerprint())
	case n < 270:
		return g.sshd(), "pam_unix(sshd:session): session opened for user deploy(uid=1000) by deploy(uid=0)"
	case n < 295:
		return g.sshd(), "pam_unix(sshd:session): session closed for user deploy"
	case n < 315:
		c := g.clients[g.r.IntN(len(g.clients))]
		return g.sshd(), fmt.Sprintf("Disconnected from user deploy %s port %d", c, g.port())
	case n < 330:
		return g.sshd(), "error: kex_exchange_identification: Connection closed by remote host"
	case n < 340:
		return g.sshd(), fmt.Sprintf("banner exchange: Connection from %s port %d: invalid format", g.attacker(), g.port())
	// CRON: 250
	case n < 430:
		pid := 10000 + g.r.IntN(900000)
		if g.r.IntN(2) == 0 {
			return fmt.Sprintf("CRON[%d]", pid), "pam_unix(cron:session): session opened for user root(uid=0) by root(uid=0)"
		}
		return fmt.Sprintf("CRON[%d]", pid), "pam_unix(cron:session): session closed for user root"
	case n < 590:
		return fmt.Sprintf("CRON[%d]", 10000+g.r.IntN(900000)), "(root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)"
	// systemd: 160
	case n < 650:
		g.session++
		return "systemd-logind[612]", fmt.Sprintf("New session %d of user deploy.", g.session)
	case n < 700:
		return "systemd-logind[612]", fmt.Sprintf("Session %d logged out. Waiting for processes to exit.", g.session)
	case n < 750:
		return "systemd[1]", fmt.Sprintf("session-%d.scope: Deactivated successfully.", g.session)
	// sudo: 40
	case n < 770:
		return "sudo", "  deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/bin/systemctl reload nginx"
	case n < 790:
		return "sudo", "pam_unix(sudo:session): session opened for user root(uid=0) by deploy(uid=1000)"
	// kernel firewall: 40
	case n < 830:
		return "kernel", fmt.Sprintf("[%d.%06d] [UFW BLOCK] IN=eth0 OUT= SRC=%s DST=192.0.2.1 PROTO=TCP SPT=%d DPT=%d SYN",
			100000+g.r.IntN(900000), g.r.IntN(1000000), g.attacker(), g.port(), []int{23, 3389, 5900, 8080, 445}[g.r.IntN(5)])
	// postfix: 170
	case n < 880:
		return fmt.Sprintf("postfix/smtpd[%d]", 2000+g.r.IntN(30000)), fmt.Sprintf("connect from unknown[%s]", g.attacker())
	case n < 930:
		return fmt.Sprintf("postfix/smtpd[%d]", 2000+g.r.IntN(30000)), fmt.Sprintf("disconnect from unknown[%s] ehlo=1 auth=0/1 quit=1 commands=2/3", g.attacker())
	case n < 960:
		return fmt.Sprintf("postfix/smtpd[%d]", 2000+g.r.IntN(30000)), fmt.Sprintf("warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", g.attacker())
	case n < 980:
		return fmt.Sprintf("postfix/smtpd[%d]", 2000+g.r.IntN(30000)), fmt.Sprintf("lost connection after AUTH from unknown[%s]", g.attacker())
	default:
		return fmt.Sprintf("postfix/anvil[%d]", 2000+g.r.IntN(30000)), "statistics: max connection rate 3/60s for (smtp:192.0.2.77) at Nov 24 07:12:03"
	}
}

func (g *Gen) fingerprint() string {
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var fp [43]byte
	for i := range fp {
		fp[i] = b64[g.r.IntN(64)]
	}
	return string(fp[:])
}

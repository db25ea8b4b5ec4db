package authlog

import (
	"fmt"
	"strings"
	"time"
)

// Profiles are the kinds of log NewProfile writes:
//
//   - mixed: the auth.log of New (a third sshd, 11% sshd failures).
//   - attack: an internet server's auth.log under SSH attack: over 90%
//     sshd lines, every message kind OpenSSH 7.4 to 9.9 writes for
//     scanners, brute force and real users (sshd and sshd-session
//     program names, pam_unix, kex and banner errors, preauth
//     disconnects, MaxStartups, penalties), IPv4 and IPv6, with the lines
//     of one connection sharing its pid and interleaved with others.
//   - mail: the mail.log of a Postfix + Dovecot server: real deliveries
//     in and out (Postfix 3 and Postfix 2 disconnect lines), logins,
//     and SASL brute force, rejected relays, postscreen, dovecot failures.
//   - web: nginx and Apache error logs of a site being probed and brute
//     forced on basic auth, with normal errors in between.
var Profiles = []string{"mixed", "attack", "mail", "web"}

// NewProfile returns a generator for a profile (see Profiles).
func NewProfile(profile string, seed uint64, t0 time.Time, host string) (*Gen, error) {
	g := New(seed, t0, host)
	switch profile {
	case "mixed":
	case "attack":
		g.next = g.attackLine
		g.step = 20 * time.Millisecond
	case "mail":
		g.next = g.mailLine
		g.step = 60 * time.Millisecond
	case "web":
		g.next = g.webLine
		g.step = 30 * time.Millisecond
	default:
		return nil, fmt.Errorf("unknown profile %q (want one of %s)", profile, strings.Join(Profiles, ", "))
	}
	return g, nil
}

// conn is one connection whose lines are written in order, interleaved
// with other connections.
type conn struct {
	prog  string
	lines []string
}

// emit picks the next line of a random open connection, opening new ones
// with open so that about `width` connections run at once.
func (g *Gen) emit(width int, open func() conn) (string, string) {
	for len(g.conns) < width {
		c := open()
		if len(c.lines) > 0 {
			g.conns = append(g.conns, c)
		}
	}
	i := g.r.IntN(len(g.conns))
	c := &g.conns[i]
	l := c.lines[0]
	c.lines = c.lines[1:]
	prog := c.prog
	if len(c.lines) == 0 {
		g.conns[i] = g.conns[len(g.conns)-1]
		g.conns = g.conns[:len(g.conns)-1]
	}
	return prog, l
}

func (g *Gen) newPID() int {
	g.pid += 1 + g.r.IntN(40)
	if g.pid > 4_000_000 {
		g.pid = 1000
	}
	return g.pid
}

// pick returns one of xs.
func pick[T any](g *Gen, xs ...T) T { return xs[g.r.IntN(len(xs))] }

var badUsers = []string{"admin", "test", "user", "oracle", "postgres", "git", "ftpuser", "pi", "guest", "support",
	"ubuntu", "debian", "centos", "ec2-user", "hadoop", "mysql", "deploy1", "jenkins", "minecraft", "steam",
	"tomcat", "nagios", "zabbix", "odoo", "sol", "validator", "es", "elastic", "kafka", "dev", "1234", "Admin"}

func (g *Gen) kexOffer() string {
	return pick(g, "diffie-hellman-group14-sha1,diffie-hellman-group-exchange-sha1,diffie-hellman-group1-sha1",
		"diffie-hellman-group1-sha1", "curve25519-sha256,ecdh-sha2-nistp256,diffie-hellman-group14-sha1")
}

// attackLine is one line of the attack profile.
func (g *Gen) attackLine() (string, string) {
	switch n := g.r.IntN(1000); {
	case n < 20:
		pid := 10000 + g.r.IntN(900000)
		return fmt.Sprintf("CRON[%d]", pid), pick(g, "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
			"pam_unix(cron:session): session closed for user root")
	case n < 30:
		return "systemd-logind[612]", fmt.Sprintf("New session %d of user deploy.", 100+g.r.IntN(9000))
	case n < 40:
		return "kernel", fmt.Sprintf("[%d.%06d] [UFW BLOCK] IN=eth0 OUT= SRC=%s DST=192.0.2.1 PROTO=TCP SPT=%d DPT=%d SYN",
			100000+g.r.IntN(900000), g.r.IntN(1000000), g.attacker(), g.port(), pick(g, 23, 3389, 5900, 8080, 445))
	case n < 52:
		// messages of the listener itself
		a := g.attacker()
		return fmt.Sprintf("sshd[%d]", 612), pick(g,
			fmt.Sprintf("drop connection #%d from [%s]:%d on [192.0.2.1]:22 past MaxStartups", g.r.IntN(10), a, g.port()),
			"error: beginning MaxStartups throttling",
			"exited MaxStartups throttling after 00:00:31, 17 connections dropped",
			fmt.Sprintf("srclimit_penalise: ipv4: new %s/32 deferred penalty of 10 seconds for penalty: failed authentication", a),
			fmt.Sprintf("srclimit_penalise: ipv4: new %s/32 active penalty of 30 seconds for penalty: connections without attempting authentication", a))
	}
	return g.emit(6, g.sshConn)
}

// sshConn writes the lines of one SSH connection.
func (g *Gen) sshConn() conn {
	pid := g.newPID()
	// OpenSSH 9.8+ logs a connection's own lines as sshd-session
	era := g.r.IntN(3) // 0: 7.4-7.9, 1: 8.x-9.7, 2: 9.8+
	prog := fmt.Sprintf("sshd[%d]", pid)
	if era == 2 {
		prog = fmt.Sprintf("sshd-session[%d]", pid)
	}
	a := g.attacker()
	p := g.port()
	c := conn{prog: prog}
	add := func(s string, args ...any) { c.lines = append(c.lines, fmt.Sprintf(s, args...)) }
	if g.r.IntN(4) == 0 {
		add("Connection from %s port %d on 192.0.2.1 port 22 rdomain \"\"", a, p)
	}
	closeAs := func(who string) {
		switch g.r.IntN(5) {
		case 0:
			add("Connection closed by %s%s port %d [preauth]", who, a, p)
		case 1:
			add("Connection reset by %s%s port %d [preauth]", who, a, p)
		case 2:
			add("Received disconnect from %s port %d:11: Bye Bye [preauth]", a, p)
			add("Disconnected from %s%s port %d [preauth]", who, a, p)
		case 3:
			add("Received disconnect from %s port %d:11: Client disconnecting normally [preauth]", a, p)
			add("Disconnected from %s%s port %d [preauth]", who, a, p)
		default:
			add("Received disconnect from %s port %d:11:  [preauth]", a, p)
			add("Disconnected from %s%s port %d [preauth]", who, a, p)
		}
	}
	switch k := g.r.IntN(100); {
	case k < 30: // invalid user, password guesses
		u := pick(g, badUsers...)
		add("Invalid user %s from %s port %d", u, a, p)
		if era == 0 {
			add("input_userauth_request: invalid user %s [preauth]", u)
		}
		tries := 1 + g.r.IntN(3)
		for i := 0; i < tries; i++ {
			add("%s", "pam_unix(sshd:auth): check pass; user unknown")
			add("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s", a)
			add("Failed password for invalid user %s from %s port %d ssh2", u, a, p)
		}
		if tries == 3 && g.r.IntN(2) == 0 {
			add("error: maximum authentication attempts exceeded for invalid user %s from %s port %d ssh2 [preauth]", u, a, p)
			add("Disconnecting invalid user %s %s port %d: Too many authentication failures [preauth]", u, a, p)
			add("PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s", a)
		} else {
			closeAs("invalid user " + u + " ")
		}
	case k < 50: // root (or a real user name) brute force
		u := pick(g, "root", "root", "root", "deploy")
		tries := 1 + g.r.IntN(6)
		for i := 0; i < tries; i++ {
			if i == 0 || g.r.IntN(3) == 0 {
				add("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s  user=%s", a, u)
			}
			add("Failed password for %s from %s port %d ssh2", u, a, p)
		}
		if tries == 6 {
			add("error: maximum authentication attempts exceeded for %s from %s port %d ssh2 [preauth]", u, a, p)
			add("Disconnecting authenticating user %s %s port %d: Too many authentication failures [preauth]", u, a, p)
			add("PAM 5 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s  user=%s", a, u)
			add("%s", "PAM service(sshd) ignoring max retries; 6 > 3")
		} else {
			closeAs("authenticating user " + u + " ")
		}
	case k < 56: // public key scans
		add("Failed publickey for root from %s port %d ssh2: RSA SHA256:%s", a, p, g.fingerprint())
		closeAs("authenticating user root ")
	case k < 60:
		add("Failed none for invalid user %s from %s port %d ssh2", pick(g, badUsers...), a, p)
		closeAs("")
	case k < 72: // scanners that never authenticate
		switch era {
		case 0:
			add(pick(g, "Did not receive identification string from %s port %d",
				"Bad protocol version identification 'GET / HTTP/1.1' from %s port %d"), a, p)
		default:
			add("%s", pick(g, "error: kex_exchange_identification: Connection closed by remote host",
				"error: kex_exchange_identification: read: Connection reset by peer",
				"error: kex_exchange_identification: client sent invalid protocol identifier \"GET / HTTP/1.1\"",
				"error: kex_exchange_identification: banner line contains invalid characters"))
			add(pick(g, "banner exchange: Connection from %s port %d: invalid format",
				"Connection closed by %s port %d",
				"banner exchange: Connection from %s port %d: could not read protocol version"), a, p)
		}
	case k < 80: // closed before authentication
		closeAs("")
	case k < 85:
		add("Unable to negotiate with %s port %d: no matching key exchange method found. Their offer: %s [preauth]", a, p, g.kexOffer())
	case k < 88:
		add("Unable to negotiate with %s port %d: no matching host key type found. Their offer: ssh-rsa,ssh-dss [preauth]", a, p)
	case k < 90:
		add("ssh_dispatch_run_fatal: Connection from %s port %d: message authentication code incorrect [preauth]", a, p)
	case k < 91:
		add("fatal: Timeout before authentication for %s port %d", a, p)
	case k < 92:
		add("error: Received disconnect from %s port %d:3: com.jcraft.jsch.JSchException: Auth fail [preauth]", a, p)
		add("Disconnected from %s port %d [preauth]", a, p)
	case k < 93:
		add("User root from %s not allowed because not listed in AllowUsers", a)
		add("Failed password for invalid user root from %s port %d ssh2", a, p)
		closeAs("invalid user root ")
	default: // a real login
		cl := g.clients[g.r.IntN(len(g.clients))]
		how := pick(g, "publickey", "publickey", "password")
		if how == "publickey" {
			add("Accepted publickey for deploy from %s port %d ssh2: ED25519 SHA256:%s", cl, p, g.fingerprint())
		} else {
			add("Accepted password for deploy from %s port %d ssh2", cl, p)
		}
		add("%s", "pam_unix(sshd:session): session opened for user deploy(uid=1000) by deploy(uid=0)")
		if g.r.IntN(2) == 0 {
			add("Starting session: shell on pts/0 for deploy from %s port %d id 0", cl, p)
		}
		add("Received disconnect from %s port %d:11: disconnected by user", cl, p)
		add("Disconnected from user deploy %s port %d", cl, p)
		add("%s", "pam_unix(sshd:session): session closed for user deploy")
		// a connection from the same client is later closed by it
		for i := range c.lines {
			c.lines[i] = strings.ReplaceAll(c.lines[i], a, cl)
		}
	}
	return c
}

var mailDomains = []string{"example.com", "example.net", "example.org"}

func (g *Gen) queueID() string {
	const hex = "0123456789ABCDEF"
	var b [10]byte
	for i := range b {
		b[i] = hex[g.r.IntN(16)]
	}
	return string(b[:])
}

// peer is a legitimate mail server: a verified name and its address
// (192.0.2.220-239, where no attacker is).
func (g *Gen) peer() (string, string) {
	i := g.r.IntN(20)
	return fmt.Sprintf("mail%d.%s", i, mailDomains[i%3]), fmt.Sprintf("192.0.2.%d", 220+i)
}

// mailLine is one line of the mail profile.
func (g *Gen) mailLine() (string, string) {
	if g.r.IntN(50) == 0 {
		return fmt.Sprintf("postfix/anvil[%d]", 900), fmt.Sprintf("statistics: max connection rate 3/60s for (smtp:%s) at Nov 24 07:12:03", g.attacker())
	}
	return g.emit(5, g.mailConn)
}

func (g *Gen) mailConn() conn {
	pid := g.newPID()
	smtpd := fmt.Sprintf("postfix/smtpd[%d]", pid)
	c := conn{prog: smtpd}
	add := func(s string, args ...any) { c.lines = append(c.lines, fmt.Sprintf(s, args...)) }
	a := g.attacker()
	switch k := g.r.IntN(100); {
	case k < 30: // inbound delivery from a real server
		name, ip := g.peer()
		id := g.queueID()
		add("connect from %s[%s]", name, ip)
		add("Anonymous TLS connection established from %s[%s]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)", name, ip)
		add("%s: client=%s[%s]", id, name, ip)
		// other programs' lines share the connection's place in the log
		add("\x00postfix/cleanup[%d]\x00%s: message-id=<%s@%s>", pid+1, id, strings.ToLower(id), mailDomains[g.r.IntN(3)])
		add("\x00postfix/qmgr[%d]\x00%s: from=<%s@%s>, size=%d, nrcpt=1 (queue active)", 700, id, pick(g, "alice", "news", "billing"), mailDomains[g.r.IntN(3)], 2000+g.r.IntN(90000))
		if g.r.IntN(3) == 0 {
			add("disconnect from %s[%s]", name, ip) // Postfix 2.x: no command counts
		} else {
			add("disconnect from %s[%s] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7", name, ip)
		}
		add("\x00postfix/local[%d]\x00%s: to=<bob@example.org>, relay=local, delay=0.21, delays=0.1/0.01/0/0.1, dsn=2.0.0, status=sent (delivered to mailbox)", pid+2, id)
		add("\x00postfix/qmgr[%d]\x00%s: removed", 700, id)
	case k < 40: // outbound delivery
		id := g.queueID()
		add("\x00postfix/pickup[%d]\x00%s: uid=1000 from=<bob>", 650, id)
		add("\x00postfix/qmgr[%d]\x00%s: from=<bob@example.org>, size=1234, nrcpt=1 (queue active)", 700, id)
		add("\x00postfix/smtp[%d]\x00%s: to=<carol@example.net>, relay=mail3.example.net[198.51.100.203]:25, delay=1.2, delays=0.01/0.01/0.4/0.8, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 1A2B3C4D5E)", pid+1, id)
		add("\x00postfix/qmgr[%d]\x00%s: removed", 700, id)
	case k < 52: // a user reads mail
		cl := g.clients[g.r.IntN(len(g.clients))]
		svc := pick(g, "imap", "pop3")
		add("\x00dovecot\x00%s-login: Login: user=<bob>, method=PLAIN, rip=%s, lip=192.0.2.1, mpid=%d, TLS, session=<%s>", svc, cl, pid, g.fingerprint()[:16])
		add("\x00dovecot\x00%s(bob)<%d><%s>: Logged out in=%d out=%d", svc, pid, g.fingerprint()[:16], 100+g.r.IntN(900), 1000+g.r.IntN(90000))
	case k < 54: // submission with authentication
		cl := g.clients[g.r.IntN(len(g.clients))]
		add("connect from unknown[%s]", cl)
		add("%s: client=unknown[%s], sasl_method=PLAIN, sasl_username=bob", g.queueID(), cl)
		add("disconnect from unknown[%s] ehlo=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=6", cl)
	case k < 74: // SASL brute force
		add("connect from unknown[%s]", a)
		tries := 1 + g.r.IntN(3)
		for i := 0; i < tries; i++ {
			add("warning: unknown[%s]: SASL %s authentication failed: %s", a, pick(g, "LOGIN", "PLAIN"), pick(g, "UGFzc3dvcmQ6", "authentication failure", ""))
		}
		switch g.r.IntN(3) {
		case 0:
			add("lost connection after AUTH from unknown[%s]", a)
			add("disconnect from unknown[%s] ehlo=1 auth=0/%d commands=1/%d", a, tries, tries+1)
		case 1:
			add("too many errors after AUTH from unknown[%s]", a)
			add("disconnect from unknown[%s] ehlo=1 auth=0/%d rset=1 commands=2/%d", a, tries, tries+2)
		default:
			add("disconnect from unknown[%s] ehlo=1 auth=0/%d quit=1 commands=2/%d", a, tries, tries+2)
		}
	case k < 82: // relay attempts and rejected clients
		add("connect from unknown[%s]", a)
		switch g.r.IntN(4) {
		case 3:
			add("NOQUEUE: reject: RCPT from unknown[%s]: 554 5.7.1 Service unavailable; Client host [%s] blocked using zen.example.org; from=<x@example.com> to=<bob@example.org> proto=ESMTP helo=<x>", a, a)
		case 0:
			add("NOQUEUE: reject: RCPT from unknown[%s]: 554 5.7.1 <spam@example.net>: Relay access denied; from=<x@example.com> to=<spam@example.net> proto=ESMTP helo=<WIN-%d>", a, g.r.IntN(9999))
		case 1:
			add("NOQUEUE: reject: RCPT from unknown[%s]: 450 4.7.1 Client host rejected: cannot find your hostname, [%s]; from=<a@example.com> to=<bob@example.org> proto=ESMTP helo=<example.com>", a, a)
		default:
			add("NOQUEUE: reject: RCPT from unknown[%s]: 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in local recipient table; from=<> to=<nobody@example.org> proto=ESMTP helo=<x>", a)
		}
		add("disconnect from unknown[%s] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4", a)
	case k < 86: // postscreen
		c.prog = fmt.Sprintf("postfix/postscreen[%d]", pid)
		p := g.port()
		add("CONNECT from [%s]:%d to [192.0.2.1]:25", a, p)
		switch g.r.IntN(3) {
		case 0:
			add("PREGREET 11 after 0.15 from [%s]:%d: EHLO ylmf-pc\\r\\n", a, p)
			add("DISCONNECT [%s]:%d", a, p)
		case 1:
			add("DNSBL rank 3 for [%s]:%d", a, p)
			add("NOQUEUE: reject: RCPT from [%s]:%d: 550 5.7.1 Service unavailable; client [%s] blocked using zen.example.org; from=<x@example.com>, to=<bob@example.org>, proto=ESMTP, helo=<x>", a, p, a)
			add("DISCONNECT [%s]:%d", a, p)
		default:
			add("HANGUP after 0.8 from [%s]:%d in tests before SMTP handshake", a, p)
			add("DISCONNECT [%s]:%d", a, p)
		}
	case k < 90: // scanners
		add("connect from unknown[%s]", a)
		add(pick(g, "lost connection after CONNECT from unknown[%s]", "lost connection after EHLO from unknown[%s]",
			"improper command pipelining after CONNECT from unknown[%s]: GET / HTTP/1.1\\r\\nHost: x\\r\\n"), a)
		add("disconnect from unknown[%s] commands=0/0", a)
	default: // IMAP/POP3 brute force
		u := pick(g, "admin", "info", "test", "bob", "sales")
		svc := pick(g, "imap", "pop3")
		switch g.r.IntN(3) {
		case 0:
			add("\x00dovecot\x00auth-worker(%d): pam(%s,%s,<%s>): pam_authenticate() failed: Authentication failure (password mismatch?)", 800, u, a, g.fingerprint()[:16])
		case 1:
			add("\x00dovecot\x00auth: passwd-file(%s,%s,<%s>): unknown user", u, a, g.fingerprint()[:16])
		default:
			add("\x00dovecot\x00auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=%s rhost=%s", u, a)
		}
		add("\x00dovecot\x00%s-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<%s>, method=PLAIN, rip=%s, lip=192.0.2.1, TLS, session=<%s>", svc, u, a, g.fingerprint()[:16])
		if g.r.IntN(3) == 0 {
			add("\x00dovecot\x00%s-login: Aborted login (no auth attempts in 0 secs): user=<>, rip=%s, lip=192.0.2.1, session=<%s>", svc, a, g.fingerprint()[:16])
		}
	}
	return c
}

var probes = []string{"/wp-login.php", "/xmlrpc.php", "/.env", "/phpmyadmin/index.php", "/admin/config.php", "/.git/config",
	"/cgi-bin/luci", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", "/boaform/admin/formLogin", "/HNAP1"}

// webLine is one line of the web profile (nginx and Apache error logs).
func (g *Gen) webLine() (string, string) {
	a := g.attacker()
	if g.r.IntN(100) < 12 {
		a = g.clients[g.r.IntN(len(g.clients))]
	}
	g.conn++
	if g.r.IntN(2) == 0 {
		// nginx: "2026/11/24 00:00:01 [error] 1234#1234: *56 ..."
		tail := fmt.Sprintf(", client: %s, server: example.org, request: \"GET %s HTTP/1.1\", host: \"example.org\"", a, "%s")
		var msg, level string
		switch k := g.r.IntN(100); {
		case k < 30:
			level, msg = "error", fmt.Sprintf("user \"%s\" was not found in \"/etc/nginx/.htpasswd\""+tail, pick(g, badUsers...), "/admin/")
		case k < 50:
			level, msg = "error", fmt.Sprintf("user \"admin\": password mismatch"+tail, "/admin/")
		case k < 55:
			level, msg = "error", fmt.Sprintf("no user/password was provided for basic authentication"+tail, "/admin/")
		case k < 80:
			p := pick(g, probes...)
			level, msg = "error", fmt.Sprintf("open() \"/var/www/html%s\" failed (2: No such file or directory)"+tail, p, p)
		case k < 88:
			level, msg = "error", fmt.Sprintf("limiting requests, excess: %d.%03d by zone \"one\""+tail, g.r.IntN(20), g.r.IntN(1000), "/login")
		case k < 94:
			level, msg = "info", fmt.Sprintf("client closed connection while waiting for request, client: %s, server: 0.0.0.0:443", a)
		default:
			level, msg = "warn", fmt.Sprintf("an upstream response is buffered to a temporary file /var/cache/nginx/proxy_temp/1/00/%010d while reading upstream"+tail, g.r.IntN(1e9), "/api/export")
		}
		return "\x00nginx", fmt.Sprintf("[%s] 1234#1234: *%d %s", level, g.conn, msg)
	}
	// Apache 2.4: "[Tue Nov 24 00:00:01.123456 2026] [module:level] [pid N:tid M] [client A:P] AHnnnnn: ..."
	cl := fmt.Sprintf("[client %s:%d]", a, g.port())
	var mod, msg string
	switch k := g.r.IntN(100); {
	case k < 30:
		mod, msg = "auth_basic:error", fmt.Sprintf("AH01618: user %s not found: /admin", pick(g, badUsers...))
	case k < 50:
		mod, msg = "auth_basic:error", "AH01617: user admin: authentication failure for \"/admin\": Password Mismatch"
	case k < 75:
		mod, msg = "core:info", fmt.Sprintf("AH00128: File does not exist: /var/www/html%s", pick(g, probes...))
	case k < 82:
		mod, msg = "authz_core:error", "AH01630: client denied by server configuration: /var/www/private"
	case k < 88:
		mod, msg = "core:error", "AH00126: Invalid URI in request GET /../../../../etc/passwd HTTP/1.1"
	default:
		mod, msg = "php:warn", "PHP Warning:  Undefined array key \"page\" in /var/www/html/index.php on line 12"
	}
	return "\x00apache", fmt.Sprintf("[%s] [pid %d:tid %d] %s %s", mod, 2000+g.r.IntN(100), 140000000000000+g.r.IntN(1e9), cl, msg)
}

package filters_test

import (
	"strings"
	"testing"
)

// Addresses used by the hostile lines: real is the client that sshd,
// Apache... actually talked to; fake is what a client smuggled into a
// field it controls (user name, URL, header, HELO, mail address).
const (
	real4 = "203.0.113.5"
	real6 = "2001:db8::5"
	fake1 = "198.51.100.7"
	fake2 = "198.51.100.78"
	fake6 = "2001:db8:bad::7"
)

// hostileCase is one connection: lines fed in order to a fresh filter.
type hostileCase struct {
	name  string
	v     variant
	lines []string
	// want is the address the last line must report ("" = no failure on
	// any line is required, the filter may simply not match; noFailure =
	// no line may produce a failure at all).
	want string
}

// noFailure as a hostileCase's want: no failure at all.
const noFailure = "-"

func sshd(mode string) variant {
	return variant{name: "sshd", opts: map[string]string{"mode": mode}}
}

func modeOf(name, mode string) variant {
	return variant{name: name, opts: map[string]string{"mode": mode}}
}

// syslog prefixes a message with a syslog header.
func syslog(prog, msg string) string { return "Nov 24 19:40:51 srv " + prog + ": " + msg }

func hostileCases() []hostileCase {
	ssh := func(msg string) string { return syslog("sshd[4242]", msg) }
	var cs []hostileCase
	add := func(name string, v variant, want string, lines ...string) {
		cs = append(cs, hostileCase{name: name, v: v, lines: lines, want: want})
	}
	for _, mode := range []string{"normal", "ddos", "extra", "aggressive"} {
		v := sshd(mode)
		add("failed password, user names a fake source", v, real4,
			ssh("Failed password for invalid user root from "+fake1+" port 22 ssh2 from "+real4+" port 50022 ssh2"))
		add("failed password, user with on", v, real4,
			ssh("Failed password for invalid user x "+fake2+" on from "+real4+" port 50022 ssh2"))
		add("failed password, user forges key info", v, real4,
			ssh("Failed password for invalid user a from "+fake1+" port 1 ssh2: RSA SHA256:x from "+real4+" port 50022 ssh2"))
		add("failed publickey, user forges key info", v, real4,
			ssh("Failed publickey for invalid user a from "+fake1+" port 1 ssh2: RSA x from "+real4+" port 50022 ssh2: RSA SHA256:abc"))
		add("failed hostbased, client user holds a source", v, "",
			ssh(`Failed hostbased for bob from `+real4+` port 50022 ssh2: RSA SHA256:abc, client user "x from `+fake1+` port 1 ssh2", client host "h"`))
		add("failed password, IPv6 fake in user", v, real6,
			ssh("Failed password for invalid user x from "+fake6+" port 22 ssh2 from "+real6+" port 50022 ssh2"))
		add("invalid user names a fake source", v, real4,
			ssh("Invalid user admin from "+fake1+" port 22 from "+real4+" port 50022"))
		add("invalid user with on", v, real4,
			ssh("Invalid user x "+fake2+" on from "+real4+" port 50022"))
		add("illegal user, fake at the end of the user", v, real4,
			ssh("Illegal user y from "+fake1+" from "+real4))
		add("not allowed, user repeats the message", v, real4,
			ssh("User root from "+fake1+" not allowed because not listed in AllowUsers from "+real4+" not allowed because not listed in AllowUsers"))
		add("maximum attempts, user names a fake source", v, real4,
			ssh("error: maximum authentication attempts exceeded for root from "+fake1+" port 22 ssh2 from "+real4+" port 50022 ssh2 [preauth]"))
		add("PAM authentication failure, user names a fake source", v, real4,
			ssh("error: PAM: Authentication failure for x from "+fake1+" from "+real4))
		add("PAM ruser holds rhost", v, "",
			ssh("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=rhost="+fake1+" rhost="+real4+"  user=root"))
		add("auth fail disconnect message names a fake source", v, real4,
			ssh("Received disconnect from "+real4+" port 50022:3: x from "+fake1+": Auth fail [preauth]"))
		add("change of user names a fake source", v, real4,
			ssh("Invalid user x from "+real4+" port 50022"),
			ssh("Disconnecting invalid user x "+real4+" port 50022: Change of username or service not allowed: (x,ssh-connection) -> ("+fake1+",ssh-connection) [preauth]"))
		add("too many failures after a fake in the user", v, real4,
			ssh("Connection from "+real4+" port 50022 on 192.0.2.1 port 22"),
			ssh("Failed password for invalid user x from "+fake1+" port 1 ssh2 from "+real4+" port 50022 ssh2"),
			ssh("Disconnecting: Too many authentication failures for x from "+fake1+" [preauth]"))
	}
	for _, mode := range []string{"ddos", "aggressive"} {
		v := sshd(mode)
		add("closed by authenticating user with fake", v, real4,
			ssh("Connection closed by authenticating user root "+fake1+" port 22 "+real4+" port 50022 [preauth]"))
		add("closed by invalid user with on", v, real4,
			ssh("Connection closed by invalid user x "+fake2+" on "+real4+" port 50022 [preauth]"))
		add("reset by invalid user with preauth in user", v, real4,
			ssh("Connection reset by invalid user x "+fake1+" port 1 [preauth] "+real4+" port 50022 [preauth]"))
		add("bad protocol version with fake in ident", v, real4,
			ssh("Bad protocol version identification 'x' from "+fake1+" port 1' from "+real4+" port 50022"))
		add("PAM ruser holds rhost, then preauth close", v, real4,
			ssh("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=rhost="+fake1+" rhost="+real4+"  user=root"),
			ssh("Connection closed by "+real4+" port 50022 [preauth]"))
	}
	for _, mode := range []string{"extra", "aggressive"} {
		v := sshd(mode)
		add("disconnected from authenticating user with fake", v, real4,
			ssh("Disconnected from authenticating user x "+fake1+" port 22 [preauth] "+real4+" port 50022 [preauth]"))
		add("unable to negotiate, offer names a fake", v, real4,
			ssh("Unable to negotiate with "+real4+" port 50022: no matching cipher found. Their offer: from "+fake1+" port 22 [preauth]"))
	}

	ftp := func(msg string) string { return syslog("proftpd[77]", msg) }
	add("proftpd user repeats the session field", variant{name: "proftpd"}, real4,
		ftp("srv ("+real4+"["+real4+"]): USER x (evil["+fake1+"]): no such user found from "+fake1+" ["+fake1+"] to 192.0.2.1:21"))
	add("proftpd reverse name with brackets", variant{name: "proftpd"}, "",
		ftp("srv (evil["+fake1+"]x["+real4+"]): USER x: no such user found from "+real4+" ["+real4+"] to 192.0.2.1:21"))

	add("vsftpd user closes the bracket", variant{name: "vsftpd"}, real4,
		`Fri Jan 19 12:20:33 2007 [pid 27202] [x] FAIL LOGIN: Client "`+fake1+`"] FAIL LOGIN: Client "`+real4+`"`)
	add("vsftpd PAM ruser holds rhost", variant{name: "vsftpd"}, real4,
		syslog("vsftpd", "pam_unix(vsftpd:auth): authentication failure; logname= uid=0 euid=0 tty=ftp ruser=rhost="+fake1+" rhost="+real4))

	apache := func(msg string) string {
		return "[Tue Nov 24 19:40:51.123456 2026] [auth_basic:error] [pid 1:tid 2] [client " + real4 + ":50022] AH01618: " + msg
	}
	for _, mode := range []string{"normal", "aggressive"} {
		v := modeOf("apache-auth", mode)
		add("apache user names a client", v, real4, apache("user [client "+fake1+"] not found: /"))
		add("apache URL names a client", v, real4, apache("user bob: authentication failure for \"/[client "+fake1+"]\": Password Mismatch"))
		add("apache referer names a client", v, real4, apache("client denied by server configuration: /x, referer: http://h/[client "+fake1+"]"))
		add("apache file name names a client", v, "",
			"[Sat Jun 01 02:17:42 2013] [error] [client "+real4+"] File does not exist: /srv/[client "+fake1+"] user root not found")
	}

	nginx := func(rest string) string { return "2026/11/24 19:40:51 [error] 2865#0: *66647 user " + rest }
	for _, mode := range []string{"normal", "auth", "aggressive"} {
		v := modeOf("nginx-http-auth", mode)
		add("nginx user forges the message", v, "",
			nginx(`"x": password mismatch, client: `+fake1+`, server: s, request: "GET / HTTP/1.1", host: "h": was not found in "/etc/nginx/.htpasswd", client: `+real4+`, server: s, request: "GET / HTTP/1.1", host: "h"`))
		add("nginx referer forges a client", v, "",
			nginx(`"admin": password mismatch, client: `+real4+`, server: s, request: "GET / HTTP/1.1", host: "h", referrer: "x": password mismatch, client: `+fake1+`, server: s, request: "GET / HTTP/1.1", host: "h"`))
		add("nginx host header forges a client", v, "",
			nginx(`"admin": password mismatch, client: `+real4+`, server: s, request: "GET / HTTP/1.1", host: "h": password mismatch, client: `+fake1+`, server: s, request: "GET / HTTP/1.1", host: "h"`))
		add("nginx URL names a client", v, real4,
			nginx(`"admin": password mismatch, client: `+real4+`, server: s, request: "GET /a,client:`+fake1+` HTTP/1.1", host: "h"`))
	}

	add("lighttpd URL and user name an IP", variant{name: "lighttpd-auth"}, real4,
		"2026-11-24 19:40:51: (mod_auth.c.525) password doesn't match for /x,IP:"+fake1+" username: y, IP: "+fake1+", IP: "+real4)

	pf := func(msg string) string { return syslog("postfix/smtpd[99]", msg) }
	for _, mode := range []string{"more", "normal", "aggressive", "extra"} {
		v := modeOf("postfix", mode)
		add("postfix HELO, sender and recipient name addresses", v, real4,
			pf("NOQUEUE: reject: RCPT from unknown["+real4+"]: 554 5.7.1 <x@["+fake1+"]>: Relay access denied; from=<a@["+fake1+"]> to=<b@["+fake1+"]> proto=ESMTP helo=<["+fake1+"]>"))
		add("postfix client name with brackets", v, "",
			pf("NOQUEUE: reject: RCPT from evil["+fake1+"]["+real4+"]: 554 5.7.1 <x@y>: Relay access denied; from=<a@b> to=<c@d> proto=ESMTP helo=<h>"))
	}
	for _, mode := range []string{"auth", "extra", "aggressive"} {
		add("postfix SASL data names an address", modeOf("postfix", mode), real4,
			pf("warning: unknown["+real4+"]: SASL LOGIN authentication failed: x unknown["+fake1+"]:"))
	}
	for _, mode := range []string{"ddos", "aggressive"} {
		add("postfix pregreet names an address", modeOf("postfix", mode), real4,
			syslog("postfix/postscreen[9]", "PREGREET 14 after 0.08 from ["+real4+"]:59415: EHLO from ["+fake1+"]:25\\r\\n"))
	}

	add("qmail RBL text names an address", variant{name: "qmail"}, real4,
		syslog("qmail", "1157520813.485077 rblsmtpd: "+real4+" pid 19597 sbl.example: 451 http://bl.example/?ip="+fake1))

	add("courier user repeats ip=", variant{name: "courier-auth"}, real4,
		syslog("imapd", "LOGIN FAILED, user=x, ip=["+fake1+"], ip=["+real4+"]"))
	add("courier user repeats ip= and port", variant{name: "courier-auth"}, real4,
		syslog("imapd", "LOGIN FAILED, user=x, ip=["+fake1+"], port=[1], ip=["+real4+"], port=[2]"))

	dc := func(msg string) string { return syslog("dovecot", msg) }
	for _, mode := range []string{"normal", "aggressive"} {
		v := modeOf("dovecot", mode)
		add("dovecot user repeats rip=", v, real4,
			dc("imap-login: Aborted login (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip="+fake1+", lip=192.0.2.1>, method=PLAIN, rip="+real4+", lip=192.0.2.1, TLS, session=<abc>"))
		add("dovecot passdb user holds an address", v, "",
			dc("auth: sql(x,"+fake1+"): unknown user,"+real4+",<abc>): unknown user"))
		add("dovecot pam user holds an address", v, "",
			dc("auth-worker(1): pam(x,"+fake1+"),"+real4+"): pam_authenticate() failed: Permission denied"))
		add("dovecot PAM ruser holds rhost", v, real4,
			syslog("auth", "pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=rhost="+fake1+" rhost="+real4))
	}

	rec := func(msg string) string { return "2026-11-24 19:50:01,123 palisade.ban [1234]: NOTICE  " + msg }
	add("recidive counts palisade bans", variant{name: "recidive"}, real4, rec("[sshd] Ban "+real4))
	// Dovecot with auth_verbose_passwords = plain writes the password after
	// the address: it must not supply another one.
	dcv := func(msg string) string { return syslog("dovecot", msg) }
	for _, mode := range []string{"normal", "aggressive"} {
		v := modeOf("dovecot", mode)
		add("dovecot password repeats the message with a fake address", v, "",
			dcv("auth: passwd-file(bob,"+real4+",<Sx1>): Password mismatch (given password: a),"+fake1+"): Password mismatch (b)"))
		add("dovecot unknown user, password repeats the message", v, "",
			dcv("auth: passwd-file(bob,"+real4+",<Sx1>): unknown user (given password: x),"+fake1+",<y>): unknown user (z)"))
		add("dovecot plain password without spaces", v, real4,
			dcv("auth: passwd-file(bob,"+real4+",<Sx1>): Password mismatch (given password: hunter2)"))
		add("dovecot password repeats the message up to a password", v, "",
			dcv("auth: passwd-file(bob,"+real4+",<Sx1>): Password mismatch (given password: a),"+fake1+",<b>): Password mismatch (given password: x)"))
		add("dovecot user repeats the login fields", v, real4,
			dc("imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip="+fake1+", lip=192.0.2.1, TLS, session=<a>, method=PLAIN, rip="+real4+", lip=192.0.2.1, TLS, session=<abc>"))
		add("dovecot sha1 of the password", v, real4,
			dcv("auth: passwd-file(bob,"+real4+",<Sx1>): unknown user (SHA1 of given password: f638ff)"))
		add("dovecot user name holds a fake address", v, "",
			dcv("auth: passwd-file(x,"+fake1+",<a>): unknown user,"+real4+",<Sx1>): unknown user"))
	}
	// Where the service writes an address, a host name is never taken.
	for _, mode := range []string{"normal", "aggressive"} {
		add("sshd failed password from a host name", sshd(mode), noFailure,
			ssh("Failed password for root from evil.example port 22 ssh2"))
		add("sshd invalid user from a host name", sshd(mode), noFailure,
			ssh("Invalid user x from evil.example port 22"))
	}
	add("postfix client with a host name in brackets", modeOf("postfix", "aggressive"), noFailure,
		syslog("postfix/smtpd[1]", "warning: unknown[evil.example]: SASL LOGIN authentication failed: x"))
	add("nginx client host name", variant{name: "nginx-http-auth"}, noFailure,
		`2026/11/24 19:40:51 [error] 1#1: *1 user "a": password mismatch, client: evil.example, server: s, request: "GET / HTTP/1.1", host: "h"`)
	add("recidive ignores unbans", variant{name: "recidive"}, "", rec("[sshd] Unban "+fake1))
	add("recidive ignores its own bans", variant{name: "recidive"}, "", rec("[recidive] Ban "+fake1))
	add("recidive jail name with an address", variant{name: "recidive"}, "", rec("[sshd] Ban "+fake1+" [x] Ban "+real4+" x"))
	return cs
}

// TestHostileFields feeds lines where a field the client controls carries
// another address. No failure may ever name that address; where the line
// is a genuine failure, the real address must still be found.
func TestHostileFields(t *testing.T) {
	loc := zurich(t)
	fakes := []string{fake1, fake2, fake6}
	covered := map[string]bool{}
	for _, tc := range hostileCases() {
		covered[tc.v.name] = true
		t.Run(tc.v.String()+"/"+tc.name, func(t *testing.T) {
			f, err := load(t, tc.v, loc)
			if err != nil {
				t.Fatal(err)
			}
			var last []string
			for i, line := range tc.lines {
				res := process(f, tc.v, line)
				last = last[:0]
				for _, fl := range res.Failures {
					for _, fk := range fakes {
						if sameHost(fl.ID, fk) || strings.Contains(fl.ID, fk) {
							t.Errorf("line %d %q: failure names the smuggled address %s", i+1, line, fl.ID)
						}
					}
					last = append(last, fl.ID)
					if tc.want == noFailure {
						t.Errorf("line %d %q: failure %s, want none", i+1, line, fl.ID)
					}
				}
			}
			if tc.want == "" || tc.want == noFailure {
				return
			}
			found := false
			for _, id := range last {
				if sameHost(id, tc.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("last line %q: failures %v, want one for %s", tc.lines[len(tc.lines)-1], last, tc.want)
			}
		})
	}
	for _, n := range []string{"sshd", "proftpd", "vsftpd", "apache-auth", "nginx-http-auth", "lighttpd-auth",
		"postfix", "qmail", "courier-auth", "dovecot", "recidive"} {
		if !covered[n] {
			t.Errorf("no hostile line for built-in filter %s", n)
		}
	}
}

package filters_test

import (
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/filters"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/datetime"
	"github.com/palisade-project/palisade/internal/filter"
)

// TestDovecotAnchoredEitherWay: the built-in dovecot's rules are anchored
// after the address on Dovecot's own fields, so a user name (client text)
// written before the address that repeats Dovecot's fields with another
// address cannot supply it, whether the user field is taken as long as
// possible (as the rules are written) or as short as possible. With a
// loose tail ("(?:, .*)?$", "<[^>]*>") the short reading takes the
// forged address: only the engine's preference for the long one kept it
// out, and a rule must not depend on that.
func TestDovecotAnchoredEitherWay(t *testing.T) {
	loc := zurich(t)
	dc := func(msg string) string { return syslog("dovecot", msg) }
	login := func(user string) string {
		return dc("imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<" + user + ">, method=PLAIN, rip=" + real4 + ", lip=192.0.2.1, TLS, session=<Sx1/a+b>")
	}
	aggr := func(user string) string {
		return dc("imap-login: Disconnected (no auth attempts in 3 secs): user=<" + user + ">, rip=" + real4 + ", lip=192.0.2.1, TLS handshaking: SSL_accept() failed: error:0A00010B:SSL routines::wrong version number")
	}
	cases := []struct {
		name  string
		modes []string
		line  string
		want  string // "" = no failure at all
	}{
		{"login user repeats the fields up to the end", []string{"normal", "aggressive"},
			login("x>, method=PLAIN, rip=" + fake1 + ", lip=192.0.2.1, TLS: "), real4},
		{"login user opens a session id Dovecot's > closes", []string{"normal", "aggressive"},
			login("x>, method=PLAIN, rip=" + fake1 + ", session=<a"), real4},
		{"login user with an IPv6 forgery", []string{"normal", "aggressive"},
			login("x>, method=PLAIN, rip=" + fake6 + ", lip=::1, secured, TLS"), real4},
		{"aggressive: user repeats the fields", []string{"aggressive"},
			aggr("x>, rip=" + fake1 + ", lip=192.0.2.1, TLS: "), real4},
		// A user name with a comma (impossible with Dovecot's default
		// auth_username_chars) is not counted at all.
		{"pam user opens a session id", []string{"normal", "aggressive"},
			dc("auth-worker(1): pam(x," + fake1 + ",<," + real4 + ",<Sx1>): pam_authenticate() failed: Permission denied"), ""},
		{"passdb user opens a session id", []string{"normal", "aggressive"},
			dc("auth: passwd-file(x," + fake1 + ",<," + real4 + ",<Sx1>): unknown user"), ""},
		// auth_verbose_passwords = plain: the password follows the address.
		{"passdb password repeats the message", []string{"normal", "aggressive"},
			dc("auth: passwd-file(bob," + real4 + ",<Sx1>): Password mismatch (given password: a)," + fake1 + ",<b>): Password mismatch"), ""},
		{"passdb password repeats the message and a password", []string{"normal", "aggressive"},
			dc("auth: passwd-file(bob," + real4 + ",<Sx1>): Password mismatch (given password: a)," + fake1 + ",<b>): Password mismatch (given password: x)"), ""},
		{"passdb unknown user, password repeats the message", []string{"normal", "aggressive"},
			dc("auth: ldap(bob," + real4 + ",<Sx1>): unknown user (given password: a)," + fake1 + "): unknown user (given password: y)"), ""},
		{"passdb plain password without spaces", []string{"normal", "aggressive"},
			dc("auth: passwd-file(bob," + real4 + ",<Sx1>): Password mismatch (given password: hunter2)"), real4},
		// What follows rip= is Dovecot's grammar or nothing matches.
		{"unknown field after rip", []string{"normal", "aggressive"},
			dc("imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip=" + real4 + ", lip=192.0.2.1, x=<rip=" + fake1 + ">"), ""},
		// Dovecot's own lines still match, fields in their order.
		{"every field Dovecot writes", []string{"normal", "aggressive"},
			dc("pop3-login: Aborted login (auth failed, 3 attempts in 12 secs): user=<bob>, method=PLAIN, rip=" + real4 + ", lip=192.0.2.1, mpid=4242, TLS: SSL_read() failed: error:0A000126:SSL routines::unexpected eof while reading, TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits), session=<q454Xu/vMwBZApgg>"), real4},
		{"no field after rip", []string{"normal", "aggressive"},
			dc("imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<bob>, method=PLAIN, rip=" + real4), real4},
	}
	for _, tc := range cases {
		for _, mode := range tc.modes {
			v := modeOf("dovecot", mode)
			for _, lazy := range []bool{false, true} {
				f := loadDovecot(t, v, lazy, loc)
				var got []string
				for _, fl := range process(f, v, tc.line).Failures {
					got = append(got, fl.ID)
				}
				ok := len(got) == 0
				if tc.want != "" {
					ok = len(got) == 1 && sameHost(got[0], tc.want)
				}
				if !ok {
					t.Errorf("%s [mode=%s, shortest user %v]: failures %v, want %q\n%s", tc.name, mode, lazy, got, tc.want, tc.line)
				}
			}
		}
	}
}

// loadDovecot is load for the built-in dovecot; with lazy, its user
// fields match as little as they can.
func loadDovecot(t *testing.T, v variant, lazy bool, loc *time.Location) *filter.Filter {
	t.Helper()
	def, err := config.LoadFilter(config.FilterSpec{Name: v.name, Options: optionList(v)}, nil, filters.FS())
	if err != nil {
		t.Fatal(err)
	}
	if lazy {
		n := 0
		for i, re := range def.FailRegex {
			r := strings.NewReplacer("<F-USER>.*</F-USER>", "<F-USER>.*?</F-USER>", "<F-USER>[^,]*</F-USER>", "<F-USER>[^,]*?</F-USER>", "user=<.*>", "user=<.*?>").Replace(re)
			if r != re {
				n++
			}
			def.FailRegex[i] = r
		}
		if n < 3 {
			t.Fatalf("only %d user fields made lazy: the rules changed, update the test", n)
		}
	}
	d, err := datetime.New(def.DatePattern, loc)
	if err != nil {
		t.Fatal(err)
	}
	f, err := filter.New(def, filter.Options{Location: loc, Now: testNow, Clock: testNow, RequireRE2: true, Dates: dates{d}})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

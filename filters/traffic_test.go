package filters_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/palisade-project/palisade/bench/authlog"
)

// legit reports whether addr belongs to the generator's legitimate users
// and mail servers (192.0.2.200-239), who never attack.
func legit(id string) bool {
	a, err := netip.ParseAddr(id)
	if err != nil {
		return false
	}
	return netip.MustParsePrefix("192.0.2.192/26").Contains(a) && a.As4()[3] >= 200
}

// TestLegitimateTraffic runs the mail and attack profiles (real deliveries,
// Postfix 2 and 3 disconnects, logins, sessions, next to attacks) through
// every mode of the filters for those services: no failure may name a
// legitimate sender or user, and the attacks must still be found.
func TestLegitimateTraffic(t *testing.T) {
	loc := zurich(t)
	for _, tc := range []struct {
		profile string
		v       variant
	}{
		{"mail", variant{name: "postfix"}},
		{"mail", modeOf("postfix", "normal")},
		{"mail", modeOf("postfix", "auth")},
		{"mail", modeOf("postfix", "rbl")},
		{"mail", modeOf("postfix", "ddos")},
		{"mail", modeOf("postfix", "errors")},
		{"mail", modeOf("postfix", "extra")},
		{"mail", modeOf("postfix", "aggressive")},
		{"mail", modeOf("dovecot", "normal")},
		{"mail", modeOf("dovecot", "aggressive")},
		{"attack", sshd("normal")},
		{"attack", sshd("ddos")},
		{"attack", sshd("extra")},
		{"attack", sshd("aggressive")},
	} {
		t.Run(tc.profile+"/"+tc.v.String(), func(t *testing.T) {
			start := time.Date(2005, 8, 14, 8, 0, 0, 0, loc)
			g, err := authlog.NewProfile(tc.profile, 5, start, "srv")
			if err != nil {
				t.Fatal(err)
			}
			f, err := load(t, tc.v, loc)
			if err != nil {
				t.Fatal(err)
			}
			fails := 0
			for i := 0; i < 20000; i++ {
				l := g.Line()
				line := string(l[:len(l)-1])
				for _, fl := range process(f, tc.v, line).Failures {
					fails++
					if legit(fl.ID) {
						t.Fatalf("line %d %q: failure for the legitimate %s", i+1, line, fl.ID)
					}
				}
			}
			if fails == 0 {
				t.Error("no failure found in an attacked log")
			}
		})
	}
}

// TestPostfixDisconnect: a disconnect is a failure (ddos, aggressive) only
// when it carries command counts with AUTH tried and never successful.
func TestPostfixDisconnect(t *testing.T) {
	loc := zurich(t)
	pf := func(msg string) string { return syslog("postfix/smtpd[3141]", msg) }
	cases := []struct {
		line string
		want string // failure address, "" for none
	}{
		{pf("disconnect from mail1.example.net[192.0.2.221]"), ""},
		{pf("disconnect from unknown[" + real4 + "]"), ""},
		{pf("disconnect from mail1.example.net[192.0.2.221] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7"), ""},
		{pf("disconnect from unknown[" + real4 + "] ehlo=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=6"), ""},
		{pf("disconnect from unknown[" + real4 + "] ehlo=1 auth=0/1 quit=1 commands=2/3"), real4},
		{pf("disconnect from unknown[" + real4 + "] auth=0/3 commands=0/3"), real4},
		{pf("disconnect from unknown[" + real6 + "] ehlo=1 auth=0/2 rset=1 commands=2/4"), real6},
		{pf("disconnect from unknown[" + real4 + "] ehlo=1 auth=0/0 commands=1"), ""},
	}
	for _, mode := range []string{"ddos", "aggressive"} {
		v := modeOf("postfix", mode)
		for _, c := range cases {
			f, err := load(t, v, loc)
			if err != nil {
				t.Fatal(err)
			}
			res := process(f, v, c.line)
			got := ""
			if len(res.Failures) > 0 {
				got = res.Failures[0].ID
			}
			if !sameHost(got, c.want) && !(got == "" && c.want == "") {
				t.Errorf("%s: %q: failure %q, want %q", v, c.line, got, c.want)
			}
		}
	}
}

package filters_test

import "testing"

// TestRecidivePalisadeLines checks recidive on palisade's own ban line in
// the forms it reaches a log: palisade's log file, syslog, and the journal
// source (no date).
func TestRecidivePalisadeLines(t *testing.T) {
	loc := zurich(t)
	for _, tc := range []struct {
		v    variant
		line string
		want string // "" = no failure
	}{
		{variant{name: "recidive"}, "2026-11-24 19:50:01,123 palisade.ban [1234]: NOTICE  [sshd] Ban 192.0.2.1", "192.0.2.1"},
		{variant{name: "recidive"}, "2026-11-24 19:50:01,123 palisade.ban [1234]: NOTICE  [sshd] Ban 2001:db8::1", "2001:db8::1"},
		{variant{name: "recidive"}, "2026-11-24 19:50:01,123 palisade.ban [1234]: NOTICE  [sshd] Unban 192.0.2.1", ""},
		{variant{name: "recidive"}, "2026-11-24 19:50:01,123 palisade.ban [1234]: NOTICE  [recidive] Ban 192.0.2.1", ""},
		{variant{name: "recidive"}, "2026-11-24 19:50:01,123 palisade.ban [1234]: NOTICE  [postfix-sasl] Ban 198.51.100.9", "198.51.100.9"},
		{variant{name: "recidive"}, "2026-11-24 19:50:01,123 palisade.ban [1234]: NOTICE  [sshd] Restore Ban 192.0.2.1", ""},
		{variant{name: "recidive"}, "Nov 24 19:50:01 web1 palisade[1234]: palisade.ban [1234]: NOTICE  [sshd] Ban 192.0.2.2", "192.0.2.2"},
		{variant{name: "recidive"}, "Nov 24 19:50:01 web1 palisade[1234]: NOTICE  [sshd] Ban 192.0.2.3", "192.0.2.3"},
		{variant{name: "recidive", opts: map[string]string{"_jailname": "repeat"}}, "2026-11-24 19:50:01,123 palisade.ban [1234]: NOTICE  [repeat] Ban 192.0.2.1", ""},
		{variant{name: "recidive", opts: map[string]string{"_jailname": "repeat"}}, "2026-11-24 19:50:01,123 palisade.ban [1234]: NOTICE  [recidive] Ban 192.0.2.1", "192.0.2.1"},
		{variant{name: "recidive", opts: map[string]string{"logtype": "journal"}}, "web1 palisade[1234]: NOTICE  [sshd] Ban 192.0.2.4", "192.0.2.4"},
	} {
		f, err := load(t, tc.v, loc)
		if err != nil {
			t.Fatalf("%v: %v", tc.v, err)
		}
		res := process(f, tc.v, tc.line)
		switch {
		case tc.want == "" && len(res.Failures) != 0:
			t.Errorf("%v %q: failure %s, want none", tc.v, tc.line, res.Failures[0].ID)
		case tc.want != "" && (len(res.Failures) != 1 || !sameHost(res.Failures[0].ID, tc.want)):
			t.Errorf("%v %q: failures %+v, want one for %s", tc.v, tc.line, res.Failures, tc.want)
		}
	}
}

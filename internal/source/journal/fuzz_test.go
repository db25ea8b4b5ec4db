package journal

import (
	"strings"
	"testing"
)

func FuzzDecodeEntry(f *testing.F) {
	for _, s := range []string{
		`{"MESSAGE":"m","__CURSOR":"c","__REALTIME_TIMESTAMP":"1","SYSLOG_IDENTIFIER":"kernel"}`,
		`{"MESSAGE":[1,2,255],"_PID":["1","2"]}`,
		`{"MESSAGE":[[104,105],"x",null]}`,
		`{"MESSAGE":null}`, `[]`, `{"MESSAGE":[]}`, `{"_SOURCE_MONOTONIC_TIMESTAMP":"-5","_COMM":"kernel"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := DecodeEntry([]byte(s))
		if err != nil {
			return
		}
		text := e.Format()
		if strings.Contains(text, "\n") {
			t.Fatalf("formatted line %q holds a newline", text)
		}
	})
}

func FuzzParseMatch(f *testing.F) {
	for _, s := range []string{"_SYSTEMD_UNIT=sshd.service + _COMM=sshd", "A=1\nB='x y'\n", `X="a\"b" + /usr/bin/x`, "-x", `A=\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := ParseMatch(s)
		if err != nil {
			return
		}
		for _, w := range words {
			if strings.HasPrefix(w, "-") {
				t.Fatalf("word %q would be read as an option", w)
			}
			if w != "+" && !strings.HasPrefix(w, "/") && !strings.Contains(w, "=") {
				t.Fatalf("word %q is neither FIELD=VALUE, a path nor +", w)
			}
		}
	})
}

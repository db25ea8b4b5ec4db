package source

import (
	"context"
	"strings"
	"testing"
)

func FuzzDecodeJournalEntry(f *testing.F) {
	for _, s := range []string{
		`{"MESSAGE":"m","__CURSOR":"c","__REALTIME_TIMESTAMP":"1","SYSLOG_IDENTIFIER":"kernel"}`,
		`{"MESSAGE":[1,2,255],"_PID":["1","2"]}`,
		`{"MESSAGE":[[104,105],"x",null]}`,
		`{"MESSAGE":null}`, `[]`, `{"MESSAGE":[]}`, `{"_SOURCE_MONOTONIC_TIMESTAMP":"-5","_COMM":"kernel"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := DecodeJournalEntry([]byte(s))
		if err != nil {
			return
		}
		text := e.Format()
		if strings.Contains(text, "\n") {
			t.Fatalf("formatted line %q holds a newline", text)
		}
	})
}

func FuzzParseJournalMatch(f *testing.F) {
	for _, s := range []string{"_SYSTEMD_UNIT=sshd.service + _COMM=sshd", "A=1\nB='x y'\n", `X="a\"b" + /usr/bin/x`, "-x", `A=\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := ParseJournalMatch(s)
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

func FuzzReaderSource(f *testing.F) {
	for _, s := range []string{"a\nb", "a\r\n\n", strings.Repeat("x", 300) + "\ny", "\xff\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		const maxLen = 64
		src := NewReaderSource("f", strings.NewReader(s), maxLen)
		c := &collector{}
		if err := src.Run(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(s, "\n")
		if parts[len(parts)-1] == "" {
			parts = parts[:len(parts)-1]
		}
		got := c.texts()
		if len(got) != len(parts) {
			t.Fatalf("%d lines, want %d", len(got), len(parts))
		}
		for i, p := range parts {
			if len(p) > maxLen {
				p = p[:maxLen]
			}
			p = strings.TrimSuffix(p, "\r")
			if got[i] != p {
				t.Fatalf("line %d = %q, want %q", i, got[i], p)
			}
		}
	})
}

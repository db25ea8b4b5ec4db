package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func write(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCompare(t *testing.T) {
	pal := write(t, "p.json", `{"line":1,"host":"203.0.113.5","time":"2026-11-24T19:40:51","user":"a"}
{"line":2,"host":"2001:db8::5","time":"2026-11-24T19:40:52"}
{"line":3,"host":"203.0.113.9","time":null}
Lines: 3
`)
	f2b := write(t, "f.rows", `
Running tests
['203.0.113.5',	1795549251.0,	{'user': 'a'}],
['2001:DB8::5',	1795549252.0,	{}],
['198.51.100.7',	1795549253.0,	{}],
`)
	a, err := readPalisade(pal, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	b, err := readFail2ban(f2b)
	if err != nil {
		t.Fatal(err)
	}
	if total(a) != 3 || total(b) != 3 {
		t.Fatalf("read %d and %d failures, want 3 and 3", total(a), total(b))
	}
	onlyA, onlyB := diff(a, b), diff(b, a)
	if len(onlyA) != 1 || onlyA[key{"203.0.113.9", minTime}] != 1 {
		t.Errorf("only palisade = %v, want the failure without time", onlyA)
	}
	if len(onlyB) != 1 || onlyB[key{"198.51.100.7", 1795549253}] != 1 {
		t.Errorf("only fail2ban = %v, want 198.51.100.7", onlyB)
	}
}

func TestBadInput(t *testing.T) {
	if _, err := readPalisade(write(t, "p.json", "{not json\n"), time.UTC); err == nil {
		t.Error("broken JSON accepted")
	}
	if _, err := readFail2ban(write(t, "f.rows", "['1.2.3.4',\tsoon,\t{}],\n")); err == nil {
		t.Error("broken time accepted")
	}
}

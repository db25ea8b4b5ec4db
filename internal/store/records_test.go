package store

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRecordsPersistPerSpace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "palisade.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Records("cloudflare"); err != nil || len(got) != 0 {
		t.Fatalf("fresh space: %v, %v", got, err)
	}
	if _, ok, err := s.Record("cloudflare", "state"); ok || err != nil {
		t.Fatalf("fresh record: ok=%v err=%v", ok, err)
	}
	if err := s.PutRecords("cloudflare", map[string][]byte{"state": []byte(`{"mode":"on"}`), "old": []byte("x")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRecords("edge", map[string][]byte{"sshd 192.0.2.1/32": []byte("id1")}, nil); err != nil {
		t.Fatal(err)
	}
	// One transaction: delete, then put (a key both deleted and put is kept).
	if err := s.PutRecords("cloudflare", map[string][]byte{"state": []byte(`{"mode":"off"}`)}, []string{"old", "missing"}); err != nil {
		t.Fatal(err)
	}
	// Bans are untouched by records, and records survive a reopen.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if moved, _ := s.MovedAside(); moved != "" {
		t.Fatalf("database with records was treated as corrupt (moved to %s)", moved)
	}
	got, err := s.Records("cloudflare")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string][]byte{"state": []byte(`{"mode":"off"}`)}, got); d != "" {
		t.Errorf("cloudflare space (-want +got):\n%s", d)
	}
	v, ok, err := s.Record("edge", "sshd 192.0.2.1/32")
	if err != nil || !ok || string(v) != "id1" {
		t.Errorf("edge record: %q ok=%v err=%v", v, ok, err)
	}
	if bans, bad, err := s.Bans(); err != nil || bad != 0 || len(bans) != 0 {
		t.Errorf("bans after records: %v bad=%d err=%v", bans, bad, err)
	}
}

func TestRecordsRefuseBadNames(t *testing.T) {
	s, _ := openTemp(t, Options{NoSync: true})
	for _, tc := range []struct {
		name  string
		space string
		put   map[string][]byte
	}{
		{"empty space", "", map[string][]byte{"k": nil}},
		{"long space", string(make([]byte, 65)), map[string][]byte{"k": nil}},
		{"empty key", "x", map[string][]byte{"": []byte("v")}},
	} {
		if err := s.PutRecords(tc.space, tc.put, nil); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if _, err := s.Records(""); err == nil {
		t.Error("Records of an empty space name: accepted")
	}
}

package fleet

import (
	"log/slog"
	"maps"
	"net/netip"
	"sync"
	"testing"
)

// recStore is a Store in memory that counts its transactions.
type recStore struct {
	mu  sync.Mutex
	m   map[string][]byte
	txs int
}

func (s *recStore) Records(string) (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m), nil
}

func (s *recStore) PutRecords(_ string, put map[string][]byte, del []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.txs++
	for _, k := range del {
		delete(s.m, k)
	}
	maps.Copy(s.m, put)
	return nil
}

// TestSaverKeepsTheLastChange: changes queued while no write runs are
// merged (the later change of a key wins, a delete included) into one
// transaction, and stopping writes what is left.
func TestSaverKeepsTheLastChange(t *testing.T) {
	ent := func(d string) entry { return entry{Detail: d} }
	key := func(o string) okey { return okey{o, netip.MustParsePrefix("192.0.2.1/32")} }
	put := func(o, d string) saved { return saved{key(o), ent(d)} }
	st := &recStore{m: encodeEntries(map[okey]entry{key("old"): ent("1"), key("gone"): ent("1")})}
	st.m["unreadable"] = []byte("x")
	s := newSaver(st, SpaceRemote, slog.New(slog.DiscardHandler))
	s.add([]saved{put("a", "1"), put("b", "1")}, []okey{key("gone")}, []string{"unreadable"})
	s.add([]saved{put("a", "2")}, []okey{key("b")}, nil)
	s.add([]saved{put("gone", "back")}, nil, nil)
	s.add(nil, nil, nil)
	done := make(chan struct{})
	close(done)
	s.run(done) // one wake-up queued and done: at most two flushes, the second empty
	want := map[string]string{key("old").String(): "1", key("a").String(): "2", key("gone").String(): "back"}
	got, _ := st.Records("")
	if d := details(t, got); !maps.Equal(d, want) {
		t.Errorf("stored %q, want %q", d, want)
	}
	if st.txs != 1 {
		t.Errorf("%d transactions, want 1", st.txs)
	}
	// Later changes are written by the next run, none are lost.
	s.add(nil, []okey{key("old")}, nil)
	s.run(done)
	if got, _ := st.Records(""); len(got) != 2 || got[key("old").String()] != nil {
		t.Errorf("after delete: %q", details(t, got))
	}
}

// details reads back the Detail of each stored entry.
func details(t *testing.T, recs map[string][]byte) map[string]string {
	out := map[string]string{}
	for k, v := range recs {
		e, err := decodeEntry(v)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		out[k] = e.Detail
	}
	return out
}

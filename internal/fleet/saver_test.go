package fleet

import (
	"encoding/json"
	"log/slog"
	"maps"
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
	st := &recStore{m: encodeEntries(map[string]entry{"old": ent("1"), "gone": ent("1")})}
	s := newSaver(st, SpaceRemote, slog.New(slog.DiscardHandler))
	s.add(map[string]entry{"a": ent("1"), "b": ent("1")}, []string{"gone"})
	s.add(map[string]entry{"a": ent("2")}, []string{"b"})
	s.add(map[string]entry{"gone": ent("back")}, nil)
	s.add(nil, nil)
	done := make(chan struct{})
	close(done)
	s.run(done) // one wake-up queued and done: at most two flushes, the second empty
	want := map[string]string{"old": "1", "a": "2", "gone": "back"}
	got, _ := st.Records("")
	if d := details(t, got); !maps.Equal(d, want) {
		t.Errorf("stored %q, want %q", d, want)
	}
	if st.txs != 1 {
		t.Errorf("%d transactions, want 1", st.txs)
	}
	// Later changes are written by the next run, none are lost.
	s.add(nil, []string{"old"})
	s.run(done)
	if got, _ := st.Records(""); len(got) != 2 || got["old"] != nil {
		t.Errorf("after delete: %q", details(t, got))
	}
}

// details reads back the Detail of each stored entry.
func details(t *testing.T, recs map[string][]byte) map[string]string {
	out := map[string]string{}
	for k, v := range recs {
		var e entry
		if err := json.Unmarshal(v, &e); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		out[k] = e.Detail
	}
	return out
}

package fleet

import (
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
	st := &recStore{m: map[string][]byte{"old": []byte("1"), "gone": []byte("1")}}
	s := newSaver(st, SpaceRemote, slog.New(slog.DiscardHandler))
	s.add(map[string][]byte{"a": []byte("1"), "b": []byte("1")}, []string{"gone"})
	s.add(map[string][]byte{"a": []byte("2")}, []string{"b"})
	s.add(map[string][]byte{"gone": []byte("back")}, nil)
	s.add(nil, nil)
	done := make(chan struct{})
	close(done)
	s.run(done) // one wake-up queued and done: at most two flushes, the second empty
	want := map[string][]byte{"old": []byte("1"), "a": []byte("2"), "gone": []byte("back")}
	got, _ := st.Records("")
	if !maps.EqualFunc(got, want, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Errorf("stored %q, want %q", got, want)
	}
	if st.txs != 1 {
		t.Errorf("%d transactions, want 1", st.txs)
	}
	// Later changes are written by the next run, none are lost.
	s.add(nil, []string{"old"})
	s.run(done)
	if got, _ := st.Records(""); len(got) != 2 || got["old"] != nil {
		t.Errorf("after delete: %q", got)
	}
}

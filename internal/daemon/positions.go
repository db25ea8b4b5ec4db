package daemon

import (
	"github.com/palisade-project/palisade/internal/failjournal"
	"github.com/palisade-project/palisade/internal/source"
	"github.com/palisade-project/palisade/internal/store"
)

// positions adapts the store to source.PositionStore. Before a position
// or cursor is saved, the failure journal is flushed and marks the source
// checkpointed, so every line before a saved position has its failure
// record in the journal file, and a restart knows which lines of the
// source can be delivered again.
type positions struct {
	st *store.Store
	fj *failjournal.Journal
}

func (p positions) checkpoint(src string) error {
	if p.fj == nil {
		return nil
	}
	return p.fj.Checkpoint(src)
}

func (p positions) LoadPosition(path string) (source.Position, bool, error) {
	lp, ok, err := p.st.LogPosition(path)
	if err != nil || !ok {
		return source.Position{}, ok, err
	}
	pos := source.Position{Device: lp.Device, Inode: lp.Inode, Offset: lp.Offset}
	if err := pos.SetFingerprint(lp.FirstLineHash); err != nil {
		// An unusable fingerprint: treat the file as new rather than fail.
		return source.Position{}, false, nil
	}
	return pos, true, nil
}

func (p positions) SavePosition(path string, pos source.Position) error {
	if err := p.checkpoint(path); err != nil {
		return err
	}
	return p.st.SetLogPositions(map[string]store.LogPosition{path: {
		Device: pos.Device, Inode: pos.Inode, Offset: pos.Offset, FirstLineHash: pos.Fingerprint(),
	}})
}

func (p positions) LoadCursor(key string) (string, bool, error) { return p.st.JournalCursor(key) }

func (p positions) SaveCursor(key, cursor string) error {
	if err := p.checkpoint(key); err != nil {
		return err
	}
	return p.st.SetJournalCursor(key, cursor)
}

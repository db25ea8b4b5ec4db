// Package source holds what palisade's log sources share: the Line a
// source delivers, the Consumer that receives lines and Status changes,
// read positions and their PositionStore, the fan-out of one source to
// several subscribers, the parsed fail2ban `backend` value, and the one
// line splitter (Splitter) that every source and `palisade regex` use, so
// that a line means the same bytes everywhere.
//
// One sub-package per source kind does the reading:
//
//   - filetail follows log files (globs, one reader per file shared by
//     every subscriber, safe across rename-and-create rotation,
//     copytruncate, truncation, deletion and restarts);
//   - journal follows the systemd journal through
//     `journalctl --follow --merge -o json` (one process per distinct
//     match, shared), started through internal/sysexec;
//   - stdin reads any io.Reader once (standard input).
//
// Every source hands Line values to a Consumer from its own goroutine, in
// order, and reports problems (missing file, permission denied, journalctl
// failing) as a Status instead of stopping: it keeps retrying, and one
// failing source never stops another.
//
// Read positions (file device, inode, offset and a hash of the file's
// first bytes; journal cursors) are persisted through the small
// PositionStore interface, which internal/store implements on bbolt;
// MemStore is an in-memory implementation for tests. A position is saved
// only after every subscriber has returned from Line for all lines before
// it. After a clean stop no line is lost or read twice; after a crash,
// lines delivered since the last save are delivered again.
package source

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Line is one log line.
type Line struct {
	// Text is the line as the Splitter makes it: without its "\n" and the
	// "\r"s before it, valid UTF-8 (each invalid byte replaced by U+FFFD);
	// lines longer than MaxLineLen are dropped, never cut. The lines of
	// one read may share one string: a consumer that keeps a Text long
	// (not just its match) copies it (strings.Clone).
	Text string
	// Time is the line's time when the source knows it (the journal's
	// _SOURCE_REALTIME_TIMESTAMP or __REALTIME_TIMESTAMP); zero for files,
	// where the filter finds the date in Text.
	Time time.Time
	// Source names where the line came from: a file path, or "journal:KEY".
	Source string
}

// Consumer receives lines and status changes. Both methods are called from
// the source's goroutine, one call at a time per source, in order; they
// should return quickly (a slow consumer slows the source, it never loses
// lines). A source's position is saved only after Line has returned.
type Consumer interface {
	Line(Line)
	Status(Status)
}

// BatchConsumer is a Consumer that takes the lines of one read at once
// (Subscriber calls Lines instead of Line for each): the same order and
// guarantees as Line, with per-call costs paid once per batch. lines and
// its array are only valid during the call; the Text strings may be kept.
type BatchConsumer interface {
	Consumer
	Lines(lines []Line)
}

// ConsumerFuncs adapts two functions to a Consumer; a nil function ignores
// its calls.
type ConsumerFuncs struct {
	OnLine   func(Line)
	OnStatus func(Status)
}

// Line implements Consumer.
func (c ConsumerFuncs) Line(l Line) {
	if c.OnLine != nil {
		c.OnLine(l)
	}
}

// Status implements Consumer.
func (c ConsumerFuncs) Status(s Status) {
	if c.OnStatus != nil {
		c.OnStatus(s)
	}
}

// State is a source's health.
type State int

// States a source can be in.
const (
	// StateOK: reading normally.
	StateOK State = iota
	// StateMissing: the file (or every file of a glob) does not exist yet;
	// the source keeps looking for it.
	StateMissing
	// StateError: the source cannot be read (permission denied, journalctl
	// failing, ...); it retries.
	StateError
)

func (s State) String() string {
	switch s {
	case StateOK:
		return "ok"
	case StateMissing:
		return "missing"
	case StateError:
		return "error"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// ErrNotOpened is the Err of the placeholder Status (StateMissing) a
// source has before its first look at its file or its first journalctl
// start; consumers may ignore it.
var ErrNotOpened = errors.New("not opened yet")

// Status is a source's health as reported to its consumers whenever it
// changes (and once when a consumer subscribes).
type Status struct {
	// Source is the file path, the glob pattern (when nothing matches it),
	// or "journal:KEY".
	Source string
	State  State
	// Err says what is wrong; nil when State is StateOK.
	Err error
	// Since is when the source entered this state.
	Since time.Time
}

func (s Status) String() string {
	if s.Err != nil {
		return fmt.Sprintf("%s: %s: %v", s.Source, s.State, s.Err)
	}
	return fmt.Sprintf("%s: %s", s.Source, s.State)
}

// Position is where a file reader stopped.
type Position struct {
	// Device and Inode identify the file that was being read.
	Device uint64
	Inode  uint64
	// Offset is the byte offset just after the last line delivered.
	Offset int64
	// HeadLen is how many bytes at the start of the file Hash covers
	// (min(Offset, HeadHashLen)); 0 means no hash.
	HeadLen int64
	// Hash is a hash of the file's first HeadLen bytes: it tells a file that
	// was replaced (same inode reused, or copytruncate followed by new
	// writes) from the same file grown.
	Hash uint64
}

// Fingerprint packs HeadLen and Hash into 16 bytes (big-endian), for
// stores that keep one opaque "first-line hash" field (internal/store's
// LogPosition.FirstLineHash). SetFingerprint reverses it.
func (p Position) Fingerprint() []byte {
	if p.HeadLen == 0 {
		return nil
	}
	b := binary.BigEndian.AppendUint64(nil, uint64(p.HeadLen))
	return binary.BigEndian.AppendUint64(b, p.Hash)
}

// SetFingerprint sets HeadLen and Hash from Fingerprint's bytes; nil or
// empty clears them.
func (p *Position) SetFingerprint(b []byte) error {
	switch len(b) {
	case 0:
		p.HeadLen, p.Hash = 0, 0
		return nil
	case 16:
		hl := binary.BigEndian.Uint64(b)
		if hl > HeadHashLen {
			return fmt.Errorf("position fingerprint: head length %d out of range", hl)
		}
		p.HeadLen, p.Hash = int64(hl), binary.BigEndian.Uint64(b[8:])
		return nil
	}
	return fmt.Errorf("position fingerprint: %d bytes, want 16", len(b))
}

// HeadHashLen is the maximum number of bytes at the start of a file hashed
// into Position.Hash.
const HeadHashLen = 1024

// PositionStore persists read positions. internal/store implements it on
// bbolt; MemStore is an in-memory implementation. Methods may be called
// concurrently from several sources.
type PositionStore interface {
	// LoadPosition returns the stored position of the file at path.
	LoadPosition(path string) (Position, bool, error)
	// SavePosition stores the position of the file at path.
	SavePosition(path string, p Position) error
	// LoadCursor returns the stored journal cursor under key.
	LoadCursor(key string) (string, bool, error)
	// SaveCursor stores a journal cursor under key.
	SaveCursor(key, cursor string) error
}

// MemStore is an in-memory PositionStore, safe for concurrent use.
type MemStore struct {
	mu        sync.Mutex
	positions map[string]Position
	cursors   map[string]string
	saves     int
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{positions: map[string]Position{}, cursors: map[string]string{}}
}

// LoadPosition implements PositionStore.
func (m *MemStore) LoadPosition(path string) (Position, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.positions[path]
	return p, ok, nil
}

// SavePosition implements PositionStore.
func (m *MemStore) SavePosition(path string, p Position) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.positions[path] = p
	m.saves++
	return nil
}

// LoadCursor implements PositionStore.
func (m *MemStore) LoadCursor(key string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.cursors[key]
	return c, ok, nil
}

// SaveCursor implements PositionStore.
func (m *MemStore) SaveCursor(key, cursor string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cursors[key] = cursor
	m.saves++
	return nil
}

// Saves returns how many Save calls the store has received.
func (m *MemStore) Saves() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saves
}

// LineSource is one stream of lines that runs until its context ends or
// its input is exhausted: stdin.Source implements it. The long-running,
// shared sources (filetail.Tailer, journal.Reader) are multiplexers
// instead: consumers Subscribe to them.
type LineSource interface {
	// Name is the Line.Source of the lines it delivers.
	Name() string
	// Run delivers every line to c and returns when the input ends (nil)
	// or ctx is done (ctx.Err()) or reading fails.
	Run(ctx context.Context, c Consumer) error
}

package ban

import (
	"sync"
	"time"
)

// Origin says how a ban came about.
type Origin uint8

// Origins. The zero value is an automatic ban.
const (
	// OriginJail: a jail decided it from log lines (automatic).
	OriginJail Origin = iota
	// OriginManual: an explicit request (`palisade ban`, the control
	// socket, another program through the manager).
	OriginManual
	// OriginRestored: re-installed at start-up from the database. The ban
	// was announced when it was made; notifications skip these.
	OriginRestored
	// OriginAdopted: taken over at start-up from palisade's own kernel
	// sets, with their remaining time, because the database had lost it
	// (corrupt and moved aside, or missing).
	OriginAdopted
)

func (o Origin) String() string {
	switch o {
	case OriginJail:
		return "automatic"
	case OriginManual:
		return "manual"
	case OriginRestored:
		return "restored"
	case OriginAdopted:
		return "adopted"
	}
	return "unknown"
}

// EventKind says what happened.
type EventKind int

// Event kinds.
const (
	// EventBan: a new ban is in force.
	EventBan EventKind = iota + 1
	// EventUnban: a ban was lifted (Event.Cause says why).
	EventUnban
	// EventExtend: an active ban now ends later (a longer ban of the same
	// prefix); Entry has the new expiry.
	EventExtend
)

func (k EventKind) String() string {
	switch k {
	case EventBan:
		return "ban"
	case EventUnban:
		return "unban"
	case EventExtend:
		return "extend"
	}
	return "unknown"
}

// Causes of an unban (Event.Cause).
const (
	CauseExpired    = "expired"    // its time was up
	CauseManual     = "manual"     // Unban
	CauseUnbanAll   = "unban-all"  // UnbanAll
	CauseAggregated = "aggregated" // replaced by a ban of its network (maxbans)
	CauseEvicted    = "evicted"    // lifted early to respect maxbans
)

// Event is sent to subscribers after each ban, extension and unban.
//
// Consumers decide from it without asking the manager back:
//   - Entry.Origin tells an automatic ban (OriginJail) from a manual one
//     (OriginManual), and bans re-installed at start-up (OriginRestored,
//     OriginAdopted), which must not be announced again: Restored reports
//     those.
//   - Entry.Offence is the ban's number for the address in its jail (1 for
//     a first ban; the bantime.increment step is Offence-1); 0 when the
//     database could not be read.
//   - Entry.Expires is the end (zero: permanent); Entry.Prefix is an
//     address (/32, /128) or a network.
//   - Aggregated > 0 marks a ban of a network that replaced that many
//     bans of addresses inside it (the jail's maxbans bound); each of
//     those gets an EventUnban with Cause CauseAggregated, which is not a
//     pardon and should not be announced as one.
//
// Events are delivered in the order the manager applied the changes. The
// manager never waits for a subscriber: see Subscribe.
type Event struct {
	Kind  EventKind
	Entry Entry
	// Cause of an unban: one of the Cause constants.
	Cause string
	// Aggregated is the number of bans a network ban replaced (0 for an
	// ordinary ban).
	Aggregated int
	// Lines are the matched log lines behind a new automatic ban, as the
	// jail kept them (Request.Lines; attacker-controlled text). They are
	// not stored: restored bans have none.
	Lines []string
	Time  time.Time
}

// Restored reports whether the event re-announces a ban that was already
// in force before this start (restored from the database or adopted from
// the kernel). Notifications skip these.
func (e Event) Restored() bool {
	return e.Kind == EventBan && (e.Entry.Origin == OriginRestored || e.Entry.Origin == OriginAdopted)
}

// Manual reports whether the ban (or unban) was explicitly requested.
func (e Event) Manual() bool {
	if e.Kind == EventUnban {
		return e.Cause == CauseManual || e.Cause == CauseUnbanAll
	}
	return e.Entry.Origin == OriginManual
}

// Subscribe returns a channel of events with room for buf (default 256)
// and a cancel function. Sends never block: when the channel is full the
// event is dropped and counted in Stats.EventsDropped. A subscriber made
// before Restore also receives one EventBan per restored ban (Restored()
// is true for those); subscribe after Restore to skip them.
func (m *Manager) Subscribe(buf int) (<-chan Event, func()) {
	if buf <= 0 {
		buf = 256
	}
	ch := make(chan Event, buf)
	m.mu.Lock()
	id := m.nextSub
	m.nextSub++
	m.subs[id] = ch
	m.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			m.mu.Lock()
			delete(m.subs, id)
			m.mu.Unlock()
			close(ch)
		})
	}
}

// emit sends events to every subscriber (mu must not be held).
func (m *Manager) emit(evs ...Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.subs) == 0 {
		return
	}
	for _, ev := range evs {
		for _, ch := range m.subs {
			select {
			case ch <- ev:
			default:
				m.stats.EventsDropped++
			}
		}
	}
}

// hasSubscribers reports whether anyone listens (so that bulk paths can
// skip building events).
func (m *Manager) hasSubscribers() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.subs) > 0
}

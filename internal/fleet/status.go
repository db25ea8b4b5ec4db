package fleet

import (
	"net/netip"
	"slices"
	"time"
)

// Status is the node's state; its JSON form is stable (fields may be
// added, never renamed or removed).
type Status struct {
	Name    string   `json:"name"`
	Servers []string `json:"servers"`
	// Connected, Server and Since describe the connection.
	Connected  bool       `json:"connected"`
	Server     string     `json:"server,omitempty"`
	Since      *time.Time `json:"since,omitempty"`
	Reconnects int        `json:"reconnects"`
	// LastError is the last connection, stream or publish error.
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	Stream      StreamInfo `json:"stream"`
	// CaughtUp is true once the current replay reached the end of the
	// stream; Replays counts completed replays.
	CaughtUp   bool       `json:"caught_up"`
	Replays    int        `json:"replays"`
	LastReplay *time.Time `json:"last_replay,omitempty"`
	ReplayTook string     `json:"replay_took,omitempty"`
	// Jail is the local jail remote bans are enforced in; RemoteBans how
	// many are in force.
	Jail       string `json:"jail"`
	RemoteBans int    `json:"remote_bans"`
	Quorum     int    `json:"quorum"`
	Caps       struct {
		Rate    int    `json:"bans_per_minute"`
		Active  int    `json:"active_bans"`
		TTL     string `json:"ttl"`
		Prefix4 int    `json:"prefix4"`
		Prefix6 int    `json:"prefix6"`
	} `json:"caps"`
	Queue struct {
		Depth     int    `json:"depth"`
		Max       int    `json:"max"`
		Dropped   uint64 `json:"dropped"`
		Published uint64 `json:"published"`
		Errors    uint64 `json:"errors"`
		LastSeq   uint64 `json:"last_seq"`
	} `json:"queue"`
	// Received counts messages read from the stream (own ones included).
	Received uint64 `json:"received"`
	// Refused counts refused records per reason.
	Refused map[string]uint64 `json:"refused"`
	// Peers are the trusted origins and the origins seen.
	Peers       []Peer `json:"peers"`
	Trusted     int    `json:"trusted"`
	ApplyErrors uint64 `json:"apply_errors"`
	// Error is set when the fleet is configured but could not start (a
	// missing key, a broken trust file); the daemon fills it.
	Error string `json:"error,omitempty"`
	// Daemon is true when a running daemon answered.
	Daemon bool `json:"daemon"`
}

// Peer is one origin as this server sees it.
type Peer struct {
	Origin   string            `json:"origin"`
	Trusted  bool              `json:"trusted"`
	LastSeen *time.Time        `json:"last_seen,omitempty"`
	LastSeq  uint64            `json:"last_seq"`
	Received uint64            `json:"received"`
	Applied  uint64            `json:"applied"`
	Active   int               `json:"active"`
	Refused  map[string]uint64 `json:"refused"`
}

func tp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Status reports the node.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := Status{Name: n.cfg.Name, Servers: slices.Clone(n.cfg.Conn.Servers), Connected: n.st.connected, Server: n.st.server,
		Reconnects: n.st.reconnects, LastError: n.st.lastErr, LastErrorAt: tp(n.st.lastErrAt), Stream: n.st.stream,
		CaughtUp: n.st.caughtUp, Replays: n.st.replays, LastReplay: tp(n.st.lastReplay), Jail: n.cfg.Jail,
		RemoteBans: n.book.enforced, Quorum: n.book.pol.Quorum, Received: n.st.received,
		Refused: map[string]uint64{}, Peers: []Peer{}, Trusted: n.trust.Len(), ApplyErrors: n.st.applyErrors}
	if len(st.Servers) == 0 {
		st.Servers = []string{DefaultServer}
	}
	if st.Stream.Name == "" {
		st.Stream.Name = n.cfg.Stream
	}
	if n.st.connected {
		st.Since = tp(n.st.since)
	}
	if n.st.replays > 0 {
		st.ReplayTook = n.st.replayTook.Round(time.Millisecond).String()
	}
	c := n.book.pol.Caps
	st.Caps.Rate, st.Caps.Active, st.Caps.Prefix4, st.Caps.Prefix6 = c.Rate, c.Active, c.Prefix4, c.Prefix6
	st.Caps.TTL = "none"
	if c.TTL > 0 {
		st.Caps.TTL = c.TTL.String()
	}
	st.Queue.Depth, st.Queue.Max, st.Queue.Dropped = len(n.q.items), n.q.max, n.q.dropped
	st.Queue.Published, st.Queue.Errors, st.Queue.LastSeq = n.st.published, n.st.pubErrors, n.q.lastSeq
	for r, v := range n.book.refused {
		st.Refused[r] = v
	}
	names := map[string]bool{}
	for _, o := range n.trust.Names() {
		names[o] = true
	}
	for o := range n.book.origins {
		names[o] = true
	}
	delete(names, n.cfg.Name)
	for o := range names {
		p := Peer{Origin: o, Refused: map[string]uint64{}}
		_, p.Trusted = n.trust.Key(o)
		if s := n.book.origins[o]; s != nil {
			p.LastSeen, p.LastSeq, p.Received, p.Applied, p.Active = tp(s.lastSeen), s.lastSeq, s.received, s.applied, s.active
			for r, v := range s.refused {
				p.Refused[r] = v
			}
		}
		st.Peers = append(st.Peers, p)
	}
	slices.SortFunc(st.Peers, func(a, b Peer) int {
		if a.Origin < b.Origin {
			return -1
		}
		if a.Origin > b.Origin {
			return 1
		}
		return 0
	})
	return st
}

// Explain lists the fleet records of every prefix containing a: which
// origin, which jail, when, and whether it is applied here.
func (n *Node) Explain(a netip.Addr) []Origin {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.book.explain(a.Unmap(), n.now())
}

// Origins returns the records behind the fleet ban of p (for banned).
func (n *Node) Origins(p netip.Prefix) []Origin {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Origin
	for _, o := range n.book.explain(p.Addr(), n.now()) {
		if o.State == "applied" && o.Prefix == p.String() {
			out = append(out, o)
		}
	}
	return out
}

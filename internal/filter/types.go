// Package filter turns log lines into failures the way fail2ban's Filter
// does: it translates fail2ban's regex dialect (tags such as <HOST>, <F-*>
// groups, Python re syntax), chooses an engine per pattern (Go regexp when
// the translated pattern compiles as RE2, regexp2 with a match timeout
// otherwise), applies prefregex/<F-CONTENT>, failregex and ignoreregex,
// keeps multi-line buffers (maxlines) and merges per-connection state
// (<F-MLFID>, <F-NOFAIL>, <F-MLFFORGET>, <F-MLFGAINED>).
package filter

import (
	"io"
	"net/netip"
	"time"
)

// Definition is a filter after configuration reading and tag substitution:
// the values of a fail2ban filter's [Definition] section.
type Definition struct {
	// Name is used in messages (a built-in name or a file path).
	Name         string
	PrefRegex    string
	FailRegex    []string
	IgnoreRegex  []string
	MaxLines     int    // 0 or 1: single-line
	DatePattern  string // "" = every default template
	JournalMatch string // kept for the journal source
}

// Failure is one failure found by a filter.
type Failure struct {
	// ID is fail2ban's failure id: the <F-ID> capture, else ip4, ip6, dns.
	ID string
	// Addr is ID parsed as an IP address (invalid when ID is not one).
	Addr netip.Addr
	// Time is the log line's time; zero when the line had no usable date.
	Time time.Time
	// fields are the captures (Fields, Field); the failures of one
	// connection (mlfid) share them while they stay the same.
	fields *fieldsView
	// Users is the set of user names seen for this failure (mlfid
	// merging), sorted. Read only (shared like Fields).
	Users []string
	// Attempts is the number of log lines attributed to this failure.
	Attempts int
	// Matches are those log lines (at most the last 32). Read only: the
	// failures of one connection share the backing array.
	Matches []string
	// Regex is the index of the failregex that matched.
	Regex int
}

// ReadClock is a clock for Options.Now that reads the real clock once per
// read of the input it wraps (Reader): the lines of one read are given
// the time that read returned. Reading the clock costs 50-150 ns on a
// virtual machine, a noticeable share of a line; once per read of 32 KiB
// it costs nothing. The reads and Now must happen on one goroutine.
type ReadClock struct{ t time.Time }

// NewReadClock returns a ReadClock that reads the current time.
func NewReadClock() *ReadClock { return &ReadClock{t: time.Now()} }

// Now is the time the last read through Reader returned (or the clock's
// creation).
func (c *ReadClock) Now() time.Time { return c.t }

// Stamp sets the clock to the current time (the moment of a read).
func (c *ReadClock) Stamp() { c.t = time.Now() }

// Reader returns r with each Read stamping the clock.
func (c *ReadClock) Reader(r io.Reader) io.Reader { return clockedReader{r, c} }

type clockedReader struct {
	r io.Reader
	c *ReadClock
}

func (cr clockedReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.c.Stamp()
	return n, err
}

// Fields returns the failure's captures by lower-case fail2ban name
// (user, ip4, ip6, dns, fid, mlfid, ...) in a new map: failures carry
// their captures unboxed, and only a caller that wants them all builds it.
func (f *Failure) Fields() map[string]string {
	v := f.fields
	if v == nil {
		return map[string]string{}
	}
	n := len(v.vals)
	if v.hasIP {
		n++
	}
	m := make(map[string]string, n)
	for _, x := range v.vals {
		m[v.names[x.id]] = x.s
	}
	if v.hasIP {
		m["ip"] = v.ip
	}
	return m
}

// Field returns one capture of the failure (see Fields).
func (f *Failure) Field(name string) (string, bool) {
	v := f.fields
	if v == nil {
		return "", false
	}
	if name == "ip" && v.hasIP {
		return v.ip, true
	}
	for _, x := range v.vals {
		if v.names[x.id] == name {
			return x.s, true
		}
	}
	return "", false
}

// fieldsView is a failure's captures: the fields that are set (values in
// memory of their own, in the order of their ids) and the filter's field
// names. Read only.
type fieldsView struct {
	names []string
	vals  []idVal
	// "ip": the address when an <F-ID> differs from it
	ip    string
	hasIP bool
}

type idVal struct {
	id int
	s  string
}

// newFieldsView takes the fields of fs that are set, passing each value
// through keep.
func newFieldsView(names []string, fs fieldSet, keep func(string) string) *fieldsView {
	n := 0
	for _, x := range fs {
		if x.ok {
			n++
		}
	}
	v := &fieldsView{names: names, vals: make([]idVal, 0, n)}
	for k, x := range fs {
		if x.ok {
			v.vals = append(v.vals, idVal{k, keep(x.s)})
		}
	}
	return v
}

// same reports whether v holds exactly the fields of fs that are set.
func (v *fieldsView) same(fs fieldSet) bool {
	j := 0
	for k, x := range fs {
		if !x.ok {
			continue
		}
		if j == len(v.vals) || v.vals[j].id != k || v.vals[j].s != x.s {
			return false
		}
		j++
	}
	return j == len(v.vals)
}

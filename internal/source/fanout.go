package source

import "sync"

// Subscriber serialises the calls to one Consumer and ends them once
// cancelled: a source holds one per subscription, so a consumer that
// unsubscribed is never called again.
type Subscriber struct {
	mu        sync.Mutex
	c         Consumer
	cancelled bool
}

// NewSubscriber wraps c.
func NewSubscriber(c Consumer) *Subscriber { return &Subscriber{c: c} }

// Lines hands lines to the consumer, in order.
func (s *Subscriber) Lines(lines []Line) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancelled {
		return
	}
	if bc, ok := s.c.(BatchConsumer); ok {
		bc.Lines(lines)
		return
	}
	for _, l := range lines {
		s.c.Line(l)
	}
}

// Status hands st to the consumer.
func (s *Subscriber) Status(st Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cancelled {
		s.c.Status(st)
	}
}

// Cancel stops every later call; it waits for a call in progress.
func (s *Subscriber) Cancel() {
	s.mu.Lock()
	s.cancelled = true
	s.mu.Unlock()
}

// Fanout is one source's subscribers and its current Status. The source's
// goroutine delivers lines and status changes through it; every
// subscriber gets the current status once when it joins, before any line.
type Fanout struct {
	sendMu sync.Mutex // orders status sends to subscribers
	mu     sync.Mutex // guards the fields below
	subs   []*Subscriber
	fresh  []*Subscriber // attached, not yet sent the current status
	st     Status
}

// NewFanout returns a Fanout whose current status is st.
func NewFanout(st Status) *Fanout { return &Fanout{st: st} }

// Attach adds s; the source's goroutine sends it the current status at
// its next Subscribers call (so Attach may run under the source's locks).
func (f *Fanout) Attach(s *Subscriber) {
	f.mu.Lock()
	f.subs = append(f.subs, s)
	f.fresh = append(f.fresh, s)
	f.mu.Unlock()
}

// AttachNow adds s and sends it the current status at once, from the
// caller's goroutine (for a source that may be blocked for long).
func (f *Fanout) AttachNow(s *Subscriber) {
	f.sendMu.Lock()
	defer f.sendMu.Unlock()
	f.mu.Lock()
	f.subs = append(f.subs, s)
	st := f.st
	f.mu.Unlock()
	s.Status(st)
}

// Detach removes s and returns how many subscribers remain.
func (f *Fanout) Detach(s *Subscriber) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs = without(f.subs, s)
	f.fresh = without(f.fresh, s)
	return len(f.subs)
}

// without returns list without s, in a new array when s was in it (the
// old array may be held by a caller of Subscribers).
func without(list []*Subscriber, s *Subscriber) []*Subscriber {
	for i, x := range list {
		if x == s {
			return append(list[:i:i], list[i+1:]...)
		}
	}
	return list
}

// Subscribers returns the current subscribers, first sending the current
// status to those that joined with Attach since the last call. The slice
// must not be modified.
func (f *Fanout) Subscribers() []*Subscriber {
	f.mu.Lock()
	subs, hasFresh := f.subs, len(f.fresh) > 0
	f.mu.Unlock()
	if !hasFresh {
		return subs
	}
	f.sendMu.Lock()
	defer f.sendMu.Unlock()
	f.mu.Lock()
	fresh, st := f.fresh, f.st
	f.fresh, subs = nil, f.subs
	f.mu.Unlock()
	for _, s := range fresh {
		s.Status(st)
	}
	return subs
}

// Deliver hands lines to every subscriber.
func (f *Fanout) Deliver(lines []Line) {
	for _, s := range f.Subscribers() {
		s.Lines(lines)
	}
}

// SetStatus makes st the current status and sends it to every subscriber,
// unless it says the same as the current one (same state and error text);
// it reports whether it changed.
func (f *Fanout) SetStatus(st Status) bool {
	f.sendMu.Lock()
	defer f.sendMu.Unlock()
	f.mu.Lock()
	if f.st.State == st.State && errText(f.st.Err) == errText(st.Err) {
		f.mu.Unlock()
		return false
	}
	f.st = st
	f.fresh = nil
	subs := f.subs
	f.mu.Unlock()
	for _, s := range subs {
		s.Status(st)
	}
	return true
}

// Status returns the current status.
func (f *Fanout) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func errText(e error) string {
	if e == nil {
		return ""
	}
	return e.Error()
}

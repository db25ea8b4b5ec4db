package source

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// rec records the calls a consumer gets, as "status:STATE" and "line:TEXT".
type rec struct{ calls []string }

func (r *rec) Line(l Line)     { r.calls = append(r.calls, "line:"+l.Text) }
func (r *rec) Status(s Status) { r.calls = append(r.calls, "status:"+s.State.String()) }

func TestFanout(t *testing.T) {
	f := NewFanout(Status{Source: "x", State: StateMissing, Err: ErrNotOpened})
	a, b, c := &rec{}, &rec{}, &rec{}
	sa, sb, sc := NewSubscriber(a), NewSubscriber(b), NewSubscriber(c)

	f.Attach(sa) // the source's goroutine sends the status before any line
	f.Deliver([]Line{{Text: "1"}})
	if !f.SetStatus(Status{State: StateOK}) {
		t.Error("a new state did not count as a change")
	}
	if f.SetStatus(Status{State: StateOK}) {
		t.Error("the same state twice counted as a change")
	}
	f.AttachNow(sb) // gets the current status at once
	if f.SetStatus(Status{State: StateError, Err: errors.New("e1")}) != true || f.SetStatus(Status{State: StateError, Err: errors.New("e2")}) != true {
		t.Error("a new error text did not count as a change")
	}
	f.Deliver([]Line{{Text: "2"}, {Text: "3"}})
	if n := f.Detach(sa); n != 1 {
		t.Errorf("Detach left %d, want 1", n)
	}
	f.Attach(sc)
	sb.Cancel()
	f.Deliver([]Line{{Text: "4"}})

	for _, tc := range []struct {
		name string
		got  []string
		want []string
	}{
		{"attached", a.calls, []string{"status:missing", "line:1", "status:ok", "status:error", "status:error", "line:2", "line:3"}},
		{"attached now, then cancelled", b.calls, []string{"status:ok", "status:error", "status:error", "line:2", "line:3"}},
		{"attached late", c.calls, []string{"status:error", "line:4"}},
	} {
		if diff := cmp.Diff(tc.want, tc.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	if st := f.Status(); st.State != StateError || st.Err.Error() != "e2" {
		t.Errorf("Status = %v", st)
	}
}

// batchRec is a BatchConsumer: it records each batch as one call.
type batchRec struct{ rec }

func (r *batchRec) Lines(ls []Line) {
	s := "lines:"
	for _, l := range ls {
		s += l.Text + ","
	}
	r.calls = append(r.calls, s)
}

// TestFanoutBatches: a BatchConsumer gets each delivery as one Lines call
// (in order, after its status), a plain Consumer line by line; a cancelled
// one gets none.
func TestFanoutBatches(t *testing.T) {
	f := NewFanout(Status{Source: "x", State: StateOK})
	bc, pc := &batchRec{}, &rec{}
	sbc, spc := NewSubscriber(bc), NewSubscriber(pc)
	f.Attach(sbc)
	f.Attach(spc)
	f.Deliver([]Line{{Text: "1"}, {Text: "2"}})
	f.Deliver([]Line{{Text: "3"}})
	sbc.Cancel()
	f.Deliver([]Line{{Text: "4"}})
	if diff := cmp.Diff([]string{"status:ok", "lines:1,2,", "lines:3,"}, bc.calls); diff != "" {
		t.Errorf("batch consumer (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"status:ok", "line:1", "line:2", "line:3", "line:4"}, pc.calls); diff != "" {
		t.Errorf("plain consumer (-want +got):\n%s", diff)
	}
}

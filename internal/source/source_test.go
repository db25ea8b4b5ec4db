package source

import (
	"errors"
	"testing"
)

func TestPositionFingerprint(t *testing.T) {
	for _, p := range []Position{
		{Device: 1, Inode: 2, Offset: 3},
		{Device: 1, Inode: 2, Offset: 3000, HeadLen: 1024, Hash: 0xdeadbeefcafef00d},
		{Offset: 5, HeadLen: 5, Hash: 1},
	} {
		var q Position
		q.Device, q.Inode, q.Offset = p.Device, p.Inode, p.Offset
		if err := q.SetFingerprint(p.Fingerprint()); err != nil {
			t.Fatal(err)
		}
		if q != p {
			t.Errorf("round trip %+v -> %+v", p, q)
		}
	}
	var q Position
	if err := q.SetFingerprint([]byte{1, 2, 3}); err == nil {
		t.Error("short fingerprint accepted")
	}
	if err := q.SetFingerprint(Position{HeadLen: 1 << 40, Hash: 1}.Fingerprint()); err == nil {
		t.Error("out-of-range head length accepted")
	}
}

func TestStatusAndConsumerFuncs(t *testing.T) {
	var got []string
	c := ConsumerFuncs{OnLine: func(l Line) { got = append(got, l.Text) }}
	c.Line(Line{Text: "x"})
	c.Status(Status{}) // nil OnStatus is ignored
	ConsumerFuncs{}.Line(Line{})
	if len(got) != 1 || got[0] != "x" {
		t.Errorf("got %q", got)
	}
	for _, tc := range []struct {
		s    Status
		want string
	}{
		{Status{Source: "/var/log/auth.log", State: StateOK}, "/var/log/auth.log: ok"},
		{Status{Source: "/x", State: StateMissing, Err: errors.New("gone")}, "/x: missing: gone"},
		{Status{Source: "journal:all", State: StateError, Err: errors.New("denied")}, "journal:all: error: denied"},
		{Status{Source: "y", State: State(9)}, "y: State(9)"},
	} {
		if s := tc.s.String(); s != tc.want {
			t.Errorf("%q, want %q", s, tc.want)
		}
	}
}

func TestMemStore(t *testing.T) {
	m := NewMemStore()
	if _, ok, _ := m.LoadPosition("/a"); ok {
		t.Fatal("empty store has a position")
	}
	p := Position{Device: 1, Inode: 2, Offset: 3}
	if err := m.SavePosition("/a", p); err != nil {
		t.Fatal(err)
	}
	if err := m.SaveCursor("k", "c"); err != nil {
		t.Fatal(err)
	}
	if got, ok, _ := m.LoadPosition("/a"); !ok || got != p {
		t.Errorf("position %+v %v", got, ok)
	}
	if got, ok, _ := m.LoadCursor("k"); !ok || got != "c" {
		t.Errorf("cursor %q %v", got, ok)
	}
	if m.Saves() != 2 {
		t.Errorf("saves = %d", m.Saves())
	}
}

package fleet

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/netip"
	"time"
)

// The book's stored entries. An entry is written in a compact binary
// form (entryV1); stores written before it hold JSON objects, which load
// still reads (a JSON object starts with '{', never with entryV1).
//
// entryV1 layout, after the version byte:
//
//	flags byte (entryLifted; which times are zero: issued, expires, until, received)
//	strings, each a uvarint length then the bytes:
//	    origin, kind, jail, reason, refused, detail
//	prefix: address length (4 or 16), the address, bits; or 0 for none
//	times that are not zero, each as varint seconds and uvarint nanoseconds
//	    of the Unix epoch: issued, expires, until, received
//	seq, uvarint
const entryV1 = 0x01

const (
	entryLifted = 1 << iota
	zeroIssued
	zeroExpires
	zeroUntil
	zeroReceived
)

// maxEntry bounds the decoded strings (a stored entry is never larger
// than a message).
const maxEntry = MaxMessage

// appendEntry appends e's stored form to dst.
func appendEntry(dst []byte, e *entry) []byte {
	r := &e.Rec
	times := [4]time.Time{r.Issued, r.Expires, e.Until, e.Received}
	var flags byte
	if e.Lifted {
		flags |= entryLifted
	}
	for i, t := range times {
		if t.IsZero() {
			flags |= zeroIssued << i
		}
	}
	dst = append(dst, entryV1, flags)
	for _, s := range [...]string{r.Origin, r.Kind, r.Jail, r.Reason, e.Refused, e.Detail} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	switch a := r.Prefix.Addr(); {
	case !r.Prefix.IsValid():
		dst = append(dst, 0)
	case a.Is4():
		b := a.As4()
		dst = append(append(dst, 4), b[:]...)
		dst = append(dst, byte(r.Prefix.Bits()))
	default:
		b := a.As16()
		dst = append(append(dst, 16), b[:]...)
		dst = append(dst, byte(r.Prefix.Bits()))
	}
	for _, t := range times {
		if !t.IsZero() {
			dst = binary.AppendVarint(dst, t.Unix())
			dst = binary.AppendUvarint(dst, uint64(t.Nanosecond()))
		}
	}
	return binary.AppendUvarint(dst, r.Seq)
}

var errEntry = errors.New("malformed stored entry")

// decodeEntry reads a stored entry in either form. The record is not
// validated here (load does that for both forms).
func decodeEntry(b []byte) (entry, error) {
	var e entry
	if len(b) == 0 || b[0] != entryV1 {
		err := json.Unmarshal(b, &e)
		return e, err
	}
	d := entryDecoder{b: b[1:]}
	flags := d.byte()
	r := &e.Rec
	for _, s := range [...]*string{&r.Origin, &r.Kind, &r.Jail, &r.Reason, &e.Refused, &e.Detail} {
		*s = d.str()
	}
	var a netip.Addr
	switch n := d.byte(); n {
	case 0: // no prefix (validation rejects the entry)
	case 4:
		a = netip.AddrFrom4([4]byte(d.take(4)))
	case 16:
		a = netip.AddrFrom16([16]byte(d.take(16)))
	default:
		d.fail()
	}
	if a.IsValid() {
		r.Prefix = netip.PrefixFrom(a, int(d.byte()))
		if !r.Prefix.IsValid() {
			d.fail()
		}
	}
	for i, t := range [...]*time.Time{&r.Issued, &r.Expires, &e.Until, &e.Received} {
		if flags&(zeroIssued<<i) == 0 {
			sec := d.varint()
			ns := d.uvarint()
			if ns >= uint64(time.Second) {
				d.fail()
			}
			*t = time.Unix(sec, int64(ns))
		}
	}
	r.Seq = d.uvarint()
	e.Lifted = flags&entryLifted != 0
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	return e, d.err
}

// entryDecoder reads entryV1's fields; the first error sticks and every
// later read returns a zero value.
type entryDecoder struct {
	b   []byte
	err error
}

func (d *entryDecoder) fail() {
	if d.err == nil {
		d.err = errEntry
	}
	d.b = nil
}

func (d *entryDecoder) take(n int) []byte {
	if d.err != nil || n < 0 || len(d.b) < n {
		d.fail()
		return make([]byte, max(n, 0))
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *entryDecoder) byte() byte { return d.take(1)[0] }

func (d *entryDecoder) str() string {
	n := d.uvarint()
	if n > maxEntry {
		d.fail()
		return ""
	}
	return string(d.take(int(n)))
}

func (d *entryDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *entryDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

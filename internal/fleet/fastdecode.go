package fleet

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"time"
	"unicode/utf8"
)

// Every member parses every record of the fleet, so decoding is on the
// propagation path of a 1,000-member fleet 1,000 times over. Records are
// written by Sign (encoding/json, fields in a fixed order): fastDecode
// reads exactly that layout without reflection, and gives up (decode
// then uses encoding/json) on anything else: another field order, an
// escaped string, a byte encoding/json would replace. Where it succeeds,
// it yields what encoding/json yields from the same bytes (the field
// parsers are the same: netip.Prefix.UnmarshalText, time.Time's
// UnmarshalJSON; TestFastDecodeAgrees and FuzzDecode check the rest).

const (
	envHead = `{"v":1,"r":`
	envSig  = `,"s":"`
	sigB64  = 88 // base64 of a 64-byte signature, padded
)

// fastDecode parses body as Sign writes it; ok is false when body is not
// in that layout (which says nothing about its validity).
func fastDecode(body []byte) (r Record, env envelope, ok bool) {
	tail := len(envSig) + sigB64 + len(`"}`)
	if len(body) < len(envHead)+tail || !bytes.HasPrefix(body, []byte(envHead)) ||
		!bytes.HasPrefix(body[len(body)-tail:], []byte(envSig)) || !bytes.HasSuffix(body, []byte(`"}`)) {
		return r, env, false
	}
	sig := make([]byte, base64.StdEncoding.DecodedLen(sigB64))
	n, err := base64.StdEncoding.Strict().Decode(sig, body[len(body)-tail+len(envSig):len(body)-2])
	if err != nil || n != 64 {
		return r, env, false
	}
	sig = sig[:n:n]
	raw := body[len(envHead) : len(body)-tail]
	if !fastRecord(raw, &r) {
		return Record{}, env, false
	}
	return r, envelope{V: envelopeVers, R: raw, S: sig}, true
}

// recReader reads the fixed layout of a record.
type recReader struct {
	b  []byte
	ok bool
}

// lit consumes s.
func (d *recReader) lit(s string) {
	if d.ok && bytes.HasPrefix(d.b, []byte(s)) {
		d.b = d.b[len(s):]
		return
	}
	d.ok = false
}

// opt consumes s if it is next.
func (d *recReader) opt(s string) bool {
	if d.ok && bytes.HasPrefix(d.b, []byte(s)) {
		d.b = d.b[len(s):]
		return true
	}
	return false
}

// str consumes a string without escapes (its opening quote already
// consumed) and its closing quote, and returns its contents (a view into
// the input).
func (d *recReader) str() []byte {
	if !d.ok {
		return nil
	}
	end := bytes.IndexByte(d.b, '"')
	if end < 0 {
		d.ok = false
		return nil
	}
	s := d.b[:end]
	for _, c := range s {
		if c == '\\' || c < 0x20 {
			d.ok = false
			return nil
		}
	}
	if !utf8.Valid(s) { // encoding/json would replace the bad bytes
		d.ok = false
		return nil
	}
	d.b = d.b[end+1:]
	return s
}

// quotedTime parses a string (opening quote consumed) as time.Time's
// UnmarshalJSON does.
func (d *recReader) quotedTime(t *time.Time) {
	s := d.str()
	if !d.ok {
		return
	}
	q := make([]byte, 0, len(s)+2)
	q = append(append(append(q, '"'), s...), '"')
	if t.UnmarshalJSON(q) != nil {
		d.ok = false
	}
}

func fastRecord(raw []byte, r *Record) bool {
	d := &recReader{b: raw, ok: true}
	d.lit(`{"origin":"`)
	r.Origin = string(d.str())
	d.lit(`,"kind":"`)
	r.Kind = string(d.str())
	d.lit(`,"prefix":"`)
	if p := d.str(); d.ok && r.Prefix.UnmarshalText(p) != nil {
		d.ok = false
	}
	d.lit(`,"jail":"`)
	r.Jail = string(d.str())
	if d.opt(`,"reason":"`) {
		r.Reason = string(d.str())
	}
	d.lit(`,"issued":"`)
	d.quotedTime(&r.Issued)
	if d.opt(`,"expires":"`) {
		d.quotedTime(&r.Expires)
	}
	d.lit(`,"seq":`)
	if !d.ok {
		return false
	}
	n := 0
	for n < len(d.b) && d.b[n] >= '0' && d.b[n] <= '9' {
		n++
	}
	if n == 0 || n > 1 && d.b[0] == '0' || string(d.b[n:]) != "}" {
		return false
	}
	seq, err := strconv.ParseUint(string(d.b[:n]), 10, 64)
	if err != nil {
		return false
	}
	r.Seq = seq
	return true
}

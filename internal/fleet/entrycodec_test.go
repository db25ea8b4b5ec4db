package fleet

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// sameEntry compares the stored fields of two entries, times by instant.
func sameEntry(a, b entry) bool {
	ta := [...]time.Time{a.Rec.Issued, a.Rec.Expires, a.Until, a.Received}
	tb := [...]time.Time{b.Rec.Issued, b.Rec.Expires, b.Until, b.Received}
	for i := range ta {
		if !ta[i].Equal(tb[i]) || ta[i].IsZero() != tb[i].IsZero() {
			return false
		}
	}
	a.Rec.Issued, a.Rec.Expires, a.Until, a.Received = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	b.Rec.Issued, b.Rec.Expires, b.Until, b.Received = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	a.gen, b.gen = 0, 0
	return reflect.DeepEqual(a, b)
}

func codecEntries() map[string]entry {
	t0 := time.Date(2026, 12, 7, 13, 0, 0, 123456789, time.UTC)
	return map[string]entry{
		"ban": {Rec: Record{Origin: "web-01", Kind: KindBan, Prefix: netip.MustParsePrefix("198.51.100.7/32"), Jail: "sshd",
			Reason: "5 failures within 10m", Issued: t0, Expires: t0.Add(time.Hour), Seq: 42},
			Until: t0.Add(time.Hour), Received: t0.Add(time.Second)},
		"permanent v6 network, refused": {Rec: Record{Origin: "m0001", Kind: KindBan, Prefix: netip.MustParsePrefix("2001:db8::/48"),
			Jail: "recidive", Issued: t0.In(time.FixedZone("CET", 3600)), Seq: 1 << 60},
			Refused: RefuseExempt, Detail: "ignoreip 2001:db8::/32", Received: t0},
		"tombstone, lifted": {Rec: Record{Origin: "a", Kind: KindUnban, Prefix: netip.MustParsePrefix("203.0.113.0/24"), Jail: "j",
			Issued: time.Unix(-5, 999999999), Expires: t0, Seq: 1}, Until: t0, Received: t0, Lifted: true},
		"no prefix": {Detail: "x"},
	}
}

// TestEntryCodecRoundTrip: every stored field comes back, and entries
// stored as JSON by earlier versions are still read.
func TestEntryCodecRoundTrip(t *testing.T) {
	for name, e := range codecEntries() {
		t.Run(name, func(t *testing.T) {
			b := appendEntry(nil, &e)
			got, err := decodeEntry(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !sameEntry(got, e) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, e)
			}
			old, err := json.Marshal(&e)
			if err != nil {
				t.Fatal(err)
			}
			got, err = decodeEntry(old)
			if err != nil || !sameEntry(got, e) {
				t.Fatalf("JSON form: %+v, %v", got, err)
			}
		})
	}
}

// TestEntryCodecRejectsDamage: every truncation and trailing bytes are
// errors, never a partly read entry.
func TestEntryCodecRejectsDamage(t *testing.T) {
	e := codecEntries()["ban"]
	b := appendEntry(nil, &e)
	for n := 1; n < len(b); n++ {
		if _, err := decodeEntry(b[:n]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: no error", n, len(b))
		}
	}
	if _, err := decodeEntry(append(b, 0)); err == nil {
		t.Fatal("trailing byte: no error")
	}
	bad := append([]byte(nil), b...)
	bad[2] = 0xff // an origin length beyond the entry
	if _, err := decodeEntry(bad); err == nil {
		t.Fatal("oversized length: no error")
	}
}

// FuzzEntryDecode: decoding never panics, and what decodes encodes back
// to the same bytes.
func FuzzEntryDecode(f *testing.F) {
	for _, e := range codecEntries() {
		f.Add(appendEntry(nil, &e))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || b[0] != entryV1 {
			return
		}
		e, err := decodeEntry(b)
		if err != nil {
			return
		}
		again, err := decodeEntry(appendEntry(nil, &e))
		if err != nil || !sameEntry(again, e) {
			t.Fatalf("re-encoded entry differs: %+v, %v", again, err)
		}
	})
}

func BenchmarkEntryCodec(b *testing.B) {
	e := codecEntries()["ban"]
	b.Run("binary", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = appendEntry(buf[:0], &e)
			if _, err := decodeEntry(buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(buf)), "bytes")
	})
	b.Run("json", func(b *testing.B) {
		var n int
		for b.Loop() {
			buf, _ := json.Marshal(&e)
			var d entry
			if err := json.Unmarshal(buf, &d); err != nil {
				b.Fatal(err)
			}
			n = len(buf)
		}
		b.ReportMetric(float64(n), "bytes")
	})
}

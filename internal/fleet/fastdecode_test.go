package fleet

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"testing"
	"time"
)

// signedBodies are messages as Sign writes them, of every shape a record
// takes; fast says whether fastDecode reads them (no escaped string).
func signedBodies(t testing.TB) []struct {
	name string
	body []byte
	fast bool
} {
	_, priv := testKey(t)
	at := time.Date(2026, 12, 7, 12, 0, 0, 123456789, time.FixedZone("", 3600))
	base := Record{Origin: "web-01", Kind: KindBan, Prefix: netip.MustParsePrefix("198.51.100.7/32"), Jail: "sshd",
		Reason: "5 failures within 10m", Issued: at, Expires: at.Add(time.Hour), Seq: 1765108800123456}
	var out []struct {
		name string
		body []byte
		fast bool
	}
	for _, c := range []struct {
		name string
		mod  func(*Record)
		fast bool
	}{
		{"ban", func(*Record) {}, true},
		{"ipv6 network", func(r *Record) { r.Prefix = netip.MustParsePrefix("2001:db8:1::/48") }, true},
		{"ipv4 network", func(r *Record) { r.Prefix = netip.MustParsePrefix("203.0.113.0/24") }, true},
		{"permanent", func(r *Record) { r.Expires = time.Time{} }, true},
		{"unban", func(r *Record) { r.Kind = KindUnban; r.Reason = "" }, true},
		{"utc", func(r *Record) { r.Issued, r.Expires = at.UTC(), at.UTC().Add(time.Minute) }, true},
		{"unicode reason", func(r *Record) { r.Reason = "échecs répétés ✓ 日本" }, true},
		{"max seq", func(r *Record) { r.Seq = 1<<64 - 1 }, true},
		{"jail punctuation", func(r *Record) { r.Jail = "nginx-http-auth@web.1:x" }, true},
		{"escaped reason", func(r *Record) { r.Reason = `quote " backslash \ <tag> & tab` + "\t" }, false},
		{"control in reason", func(r *Record) { r.Reason = "line\nbreak" }, false},
	} {
		r := base
		c.mod(&r)
		body, err := Sign(r, priv)
		if err != nil {
			t.Fatal(c.name, err)
		}
		out = append(out, struct {
			name string
			body []byte
			fast bool
		}{c.name, body, c.fast})
	}
	return out
}

// agree fails unless fastDecode either declines body or reads what
// encoding/json reads from it.
func agree(t testing.TB, body []byte) bool {
	fr, fenv, ok := fastDecode(body)
	if !ok {
		return false
	}
	sr, senv, serr := decodeJSON(body)
	ferr := fr.validate()
	if (ferr == nil) != (serr == nil) || ferr != nil && ferr.Error() != serr.Error() {
		t.Fatalf("%q: fast error %v, encoding/json error %v", body, ferr, serr)
	}
	fj, _ := json.Marshal(fr)
	sj, _ := json.Marshal(sr)
	if !bytes.Equal(fj, sj) || fr.Issued.String() != sr.Issued.String() || fr.Expires.String() != sr.Expires.String() {
		t.Fatalf("%q: fast read %s, encoding/json %s", body, fj, sj)
	}
	if fenv.V != senv.V || !bytes.Equal(fenv.R, senv.R) || !bytes.Equal(fenv.S, senv.S) {
		t.Fatalf("%q: envelopes differ: %+v, %+v", body, fenv, senv)
	}
	return true
}

// TestFastDecodeAgrees: Sign's output is read the fast way (except
// records with escaped strings), with the same result as encoding/json;
// and so is every one-byte change or deletion of it the fast way accepts.
func TestFastDecodeAgrees(t *testing.T) {
	for _, c := range signedBodies(t) {
		t.Run(c.name, func(t *testing.T) {
			if got := agree(t, c.body); got != c.fast {
				t.Fatalf("read the fast way: %v, want %v", got, c.fast)
			}
			if _, _, err := decode(c.body); err != nil {
				t.Fatal(err)
			}
			accepted := 0
			for i := range c.body {
				for _, b := range []byte{'"', '\\', '}', '{', ',', ':', ' ', '0', '9', 'x', 'A', '=', '/', 0x80, 0xff, 0} {
					m := bytes.Clone(c.body)
					m[i] = b
					if agree(t, m) {
						accepted++
					}
				}
				m := append(bytes.Clone(c.body[:i]), c.body[i+1:]...)
				if agree(t, m) {
					accepted++
				}
			}
			t.Logf("%d mutations read the fast way, all as encoding/json reads them", accepted)
		})
	}
}

// FuzzDecode: whatever fastDecode accepts, it reads as encoding/json
// does.
func FuzzDecode(f *testing.F) {
	for _, c := range signedBodies(f) {
		f.Add(c.body)
	}
	f.Fuzz(func(t *testing.T, body []byte) { agree(t, body) })
}

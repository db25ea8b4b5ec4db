package fleet

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func testKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func rec(origin, prefix string, seq uint64) Record {
	now := time.Now()
	return Record{Origin: origin, Kind: KindBan, Prefix: netip.MustParsePrefix(prefix), Jail: "sshd",
		Reason: "5 failures", Issued: now, Expires: now.Add(time.Hour), Seq: seq}
}

func TestAddressKey(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"198.51.100.7/32", "198-51-100-7"},
		{"203.0.113.0/24", "203-0-113-0_24"},
		{"2001:db8::1/128", "2001-db8--1"},
		{"2001:db8:1::/48", "2001-db8-1--_48"},
	} {
		if got := AddressKey(netip.MustParsePrefix(c.in)); got != c.want {
			t.Errorf("AddressKey(%s) = %q, want %q", c.in, got, c.want)
		}
	}
	if s := Subject("web1", netip.MustParsePrefix("192.0.2.1/32")); s != "palisade.bans.web1.192-0-2-1" {
		t.Errorf("subject %q", s)
	}
}

// verifyCase is one message and the verdict it must get.
type verifyCase struct {
	name, subject string
	body          []byte
	want          string
}

// verifyCases returns messages that must be applied or refused, the trust
// set they are judged under and the one good record among them.
func verifyCases(t *testing.T) ([]verifyCase, *Trust, Record) {
	pubA, privA := testKey(t)
	pubB, privB := testKey(t)
	_, privX := testKey(t)
	trust := NewTrust(map[string]ed25519.PublicKey{"web1": pubA, "web2": pubB})
	good := rec("web1", "198.51.100.7/32", 1)
	body, err := Sign(good, privA)
	if err != nil {
		t.Fatal(err)
	}
	// A record of web1 with its signature bytes altered.
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	env.S[0] ^= 1
	badSig, _ := json.Marshal(env)
	// The record altered after signing (another address).
	env.S[0] ^= 1
	env.R = json.RawMessage(strings.Replace(string(env.R), "198.51.100.7", "198.51.100.8", 1))
	tampered, _ := json.Marshal(env)
	signedBy := func(r Record, k ed25519.PrivateKey) []byte {
		b, err := Sign(r, k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return []verifyCase{
		{"valid", good.Subject(), body, ""},
		{"bad signature", good.Subject(), badSig, RefuseSignature},
		{"altered record", "palisade.bans.web1.198-51-100-8", tampered, RefuseSignature},
		{"signed by another key", good.Subject(), signedBy(good, privX), RefuseSignature},
		{"unknown origin", "palisade.bans.evil.198-51-100-7", signedBy(rec("evil", "198.51.100.7/32", 1), privX), RefuseUntrusted},
		// web2 publishing (validly signed) a record of its own under web1's subject.
		{"under another's subject", good.Subject(), signedBy(rec("web2", "198.51.100.7/32", 1), privB), RefuseSubject},
		// web2 signing a record that claims to be web1's.
		{"claims another origin", good.Subject(), signedBy(good, privB), RefuseSignature},
		{"wrong address key", "palisade.bans.web1.198-51-100-9", body, RefuseSubject},
		{"garbage", good.Subject(), []byte("not json"), RefuseMalformed},
		{"no signature", good.Subject(), []byte(`{"v":1,"r":{}}`), RefuseMalformed},
		{"unknown version", good.Subject(), []byte(`{"v":2,"r":{},"s":"` + strings.Repeat("A", 86) + `=="}`), RefuseMalformed},
		{"oversized", good.Subject(), make([]byte, MaxMessage+1), RefuseMalformed},
	}, trust, good
}

func TestVerify(t *testing.T) {
	cases, trust, good := verifyCases(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Verify(c.subject, c.body, trust)
			if v.Refused != c.want {
				t.Fatalf("Refused = %q (%v), want %q", v.Refused, v.Err, c.want)
			}
			if c.want == "" && (v.Record.Prefix != good.Prefix || v.Record.Seq != 1 || !v.Record.Expires.Equal(good.Expires)) {
				t.Errorf("record %+v, want %+v", v.Record, good)
			}
		})
	}
}

// TestVerifyBatch: every message gets the verdict Verify gives it, in
// batches of forged and honest messages mixed, of honest ones only, and
// of fewer than minBatch.
func TestVerifyBatch(t *testing.T) {
	cases, trust, _ := verifyCases(t)
	var valid []verifyCase
	for _, c := range cases {
		if c.want == "" {
			valid = append(valid, c)
		}
	}
	// Interleave: each forged case between honest ones.
	var mixed []verifyCase
	for _, c := range cases {
		mixed = append(mixed, valid[0], c, valid[0])
	}
	honest := slices.Repeat(valid, 3*minBatch)
	for _, b := range []struct {
		name  string
		cases []verifyCase
	}{
		{"forged among honest", mixed},
		{"honest only", honest},
		{"below minBatch", mixed[:minBatch-1]},
		{"one forged", cases[1:2]},
		{"forged only", cases[1:]},
		{"empty", nil},
	} {
		t.Run(b.name, func(t *testing.T) {
			msgs := make([]Message, len(b.cases))
			for i, c := range b.cases {
				msgs[i] = Message{Subject: c.subject, Data: c.body}
			}
			out := make([]Verified, len(msgs))
			VerifyBatch(msgs, trust, out)
			for i, c := range b.cases {
				if out[i].Refused != c.want {
					t.Errorf("message %d (%s): Refused = %q (%v), want %q", i, c.name, out[i].Refused, out[i].Err, c.want)
				}
				if single := Verify(c.subject, c.body, trust); single.Refused != out[i].Refused || single.Record != out[i].Record {
					t.Errorf("message %d (%s): batch verdict %q %+v, alone %q %+v", i, c.name, out[i].Refused, out[i].Record, single.Refused, single.Record)
				}
			}
		})
	}
}

// TestUnusableKeys: a trust file key that is not a point, is not
// canonically encoded or is of small order (for which any message can
// verify) is refused with its line, and a trust set holding one anyway
// refuses every record of that origin.
func TestUnusableKeys(t *testing.T) {
	identity := make([]byte, 32) // the neutral point: order 1
	identity[0] = 1
	nonCanonical := bytes.Repeat([]byte{0xff}, 32) // y = 2^255-1 > p
	nonCanonical[0], nonCanonical[31] = 0xed, 0x7f // y = p, read as 0
	notPoint := make([]byte, 32)
	notPoint[0] = 2 // y = 2 has no x on the curve
	for name, k := range map[string][]byte{"small order": identity, "non-canonical": nonCanonical, "not a point": notPoint} {
		t.Run(name, func(t *testing.T) {
			line := "web9 " + FormatPublicKey(k) + "\n"
			_, err := ParseTrust("trust", []byte("# fleet\n"+line))
			if err == nil || !strings.Contains(err.Error(), "trust:2:") || !strings.Contains(err.Error(), "not a usable ed25519 key") {
				t.Fatalf("ParseTrust: %v, want trust:2: not a usable ed25519 key", err)
			}
			trust := NewTrust(map[string]ed25519.PublicKey{"web9": k})
			r := rec("web9", "198.51.100.7/32", 1)
			_, priv := testKey(t)
			body, err := Sign(r, priv)
			if err != nil {
				t.Fatal(err)
			}
			if v := Verify(r.Subject(), body, trust); v.Refused != RefuseSignature {
				t.Errorf("Verify with an unusable key: %q, want %q", v.Refused, RefuseSignature)
			}
		})
	}
}

func TestSignRefusesInvalidRecords(t *testing.T) {
	_, priv := testKey(t)
	for name, mod := range map[string]func(*Record){
		"bad origin":   func(r *Record) { r.Origin = "a.b" },
		"bad kind":     func(r *Record) { r.Kind = "maybe" },
		"no seq":       func(r *Record) { r.Seq = 0 },
		"bad jail":     func(r *Record) { r.Jail = "x y" },
		"long reason":  func(r *Record) { r.Reason = strings.Repeat("x", maxReason+1) },
		"no prefix":    func(r *Record) { r.Prefix = netip.Prefix{} },
		"no issued":    func(r *Record) { r.Issued = time.Time{} },
		"mapped addr4": func(r *Record) { r.Prefix = netip.MustParsePrefix("::ffff:192.0.2.1/128") },
	} {
		r := rec("web1", "192.0.2.1/32", 1)
		mod(&r)
		if _, err := Sign(r, priv); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
}

// BenchmarkDecode: parsing one message body (every member does it for
// every record), the fast way and with encoding/json, and computing its
// subject (checked against the one it came on).
func BenchmarkDecode(b *testing.B) {
	_, priv := testKey(b)
	r := rec("web-01", "198.51.100.7/32", 1)
	body, err := Sign(r, priv)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := decode(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := decodeJSON(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("subject", func(b *testing.B) {
		for b.Loop() {
			_ = r.Subject()
		}
	})
}

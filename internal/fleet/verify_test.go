package fleet

import (
	"crypto/ed25519"
	"fmt"
	"net/netip"
	"testing"
)

// BenchmarkVerify: the cost of one signature check, per message, alone
// (Verify, and crypto/ed25519 on the same messages for reference) and in
// batches as the node checks a replay (VerifyBatch).
func BenchmarkVerify(b *testing.B) {
	const n, origins = 1024, 16
	keys := map[string]ed25519.PublicKey{}
	privs := make([]ed25519.PrivateKey, origins)
	for i := range privs {
		pub, priv := testKey(b)
		keys[fmt.Sprintf("m%02d", i)] = pub
		privs[i] = priv
	}
	trust := NewTrust(keys)
	msgs := make([]Message, n)
	for i := range msgs {
		r := rec(fmt.Sprintf("m%02d", i%origins), netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}).String()+"/32", uint64(i+1))
		body, err := Sign(r, privs[i%origins])
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = Message{Subject: r.Subject(), Data: body}
	}
	b.Run("single", func(b *testing.B) {
		i := 0
		for b.Loop() {
			m := msgs[i%n]
			if v := Verify(m.Subject, m.Data, trust); v.Refused != "" {
				b.Fatal(v.Err)
			}
			i++
		}
	})
	b.Run("stdlib", func(b *testing.B) {
		i := 0
		for b.Loop() {
			r, env, err := decode(msgs[i%n].Data)
			if err != nil || !ed25519.Verify(keys[r.Origin], signed(env.R), env.S) {
				b.Fatal("refused")
			}
			i++
		}
	})
	for _, size := range []int{16, 64, 256, 1024} {
		b.Run(fmt.Sprintf("batch%d", size), func(b *testing.B) {
			out := make([]Verified, size)
			for b.Loop() {
				VerifyBatch(msgs[:size], trust, out)
				if out[0].Refused != "" || out[size-1].Refused != "" {
					b.Fatal(out[0].Err, out[size-1].Err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/msg")
		})
	}
}

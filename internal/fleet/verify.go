package fleet

import (
	"crypto/ed25519"
	"fmt"

	"github.com/oasisprotocol/curve25519-voi/curve"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Signatures are checked with curve25519-voi rather than crypto/ed25519:
// with a trusted origin's key expanded once (its precomputed table lives
// in the Trust) one check costs about 23 µs instead of 40, and a batch of
// a few hundred about 10 µs a signature (BenchmarkVerify). Both paths use
// the same rule, RFC 8032's cofactored equation with canonical keys of
// large order (voi's default), so a message gets the same verdict alone
// or in a batch. Every signature crypto/ed25519.Sign makes passes it.

// minBatch is the smallest number of signatures checked as one batch;
// fewer are checked one at a time (a batch has a fixed cost).
const minBatch = 4

// Verify checks one message received on subject: it must decode, its
// origin must be trusted, its signature valid, and the subject the
// record's own.
func Verify(subject string, body []byte, trust *Trust) Verified {
	v, key, env := prepare(subject, body, trust)
	if v.Refused != "" {
		return v
	}
	return finish(subject, v.Record, voi.VerifyExpanded(key, signed(env.R), env.S))
}

// VerifyBatch checks msgs as Verify does, writing the verdict of msgs[i]
// to out[i]. The signatures of the messages that decode and come from
// trusted origins are checked in one batch; when the batch fails, each of
// its signatures is checked on its own, so a forged message never costs
// an honest one its verdict.
func VerifyBatch(msgs []Message, trust *Trust, out []Verified) {
	if len(out) != len(msgs) {
		panic("fleet: VerifyBatch: len(out) != len(msgs)")
	}
	type pending struct {
		i   int
		key *voi.ExpandedPublicKey
		msg []byte
		sig []byte
	}
	todo := make([]pending, 0, len(msgs))
	// The signed messages (domain and record) share one buffer.
	size := 0
	for _, m := range msgs {
		size += len(signDomain) + len(m.Data)
	}
	buf := make([]byte, 0, size)
	for i, m := range msgs {
		v, key, env := prepare(m.Subject, m.Data, trust)
		out[i] = v
		if v.Refused == "" {
			s := len(buf)
			buf = appendSigned(buf, env.R)
			todo = append(todo, pending{i, key, buf[s:len(buf):len(buf)], env.S})
		}
	}
	if len(todo) < minBatch {
		for _, p := range todo {
			out[p.i] = finish(msgs[p.i].Subject, out[p.i].Record, voi.VerifyExpanded(p.key, p.msg, p.sig))
		}
		return
	}
	bv := voi.NewBatchVerifierWithCapacity(len(todo))
	for _, p := range todo {
		bv.AddExpanded(p.key, p.msg, p.sig)
	}
	_, valid := bv.Verify(nil)
	for k, p := range todo {
		out[p.i] = finish(msgs[p.i].Subject, out[p.i].Record, valid[k])
	}
}

// prepare decodes a message and finds its origin's key: a verdict with
// Refused set when either fails.
func prepare(subject string, body []byte, trust *Trust) (Verified, *voi.ExpandedPublicKey, envelope) {
	r, env, err := decode(body)
	if err != nil {
		return Verified{Record: r, Refused: RefuseMalformed, Err: err}, nil, env
	}
	key, ok := trust.expandedKey(r.Origin)
	if !ok {
		return Verified{Record: r, Refused: RefuseUntrusted, Err: fmt.Errorf("origin %s is not trusted", r.Origin)}, nil, env
	}
	if key == nil {
		return Verified{Record: r, Refused: RefuseSignature, Err: fmt.Errorf("origin %s has an unusable key", r.Origin)}, nil, env
	}
	return Verified{Record: r}, key, env
}

// finish is the verdict on a decoded record from a trusted origin once
// its signature has been checked.
func finish(subject string, r Record, sigOK bool) Verified {
	if !sigOK {
		return Verified{Record: r, Refused: RefuseSignature, Err: fmt.Errorf("bad signature from %s", r.Origin)}
	}
	if subject != r.Subject() {
		return Verified{Record: r, Refused: RefuseSubject, Err: fmt.Errorf("record of %s for %s on subject %q", r.Origin, r.Prefix, trunc(subject))}
	}
	return Verified{Record: r}
}

// expandKey precomputes pub's verification table; it fails for a key that
// is not a point, not canonically encoded, or of small order (a key no
// honest signer has, for which the scheme is not binding).
func expandKey(pub ed25519.PublicKey) (*voi.ExpandedPublicKey, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("not %d bytes", ed25519.PublicKeySize)
	}
	var c curve.CompressedEdwardsY
	if _, err := c.SetBytes(pub); err != nil {
		return nil, fmt.Errorf("not a curve point")
	}
	var p curve.EdwardsPoint
	if _, err := p.SetCompressedY(&c); err != nil {
		return nil, fmt.Errorf("not a curve point")
	}
	if !c.IsCanonicalVartime() {
		return nil, fmt.Errorf("not canonically encoded")
	}
	if p.IsSmallOrder() {
		return nil, fmt.Errorf("a point of small order")
	}
	return voi.NewExpandedPublicKey(voi.PublicKey(pub))
}

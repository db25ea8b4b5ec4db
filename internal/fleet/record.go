package fleet

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// SubjectRoot is the subject prefix of every record; an origin publishes
// under SubjectRoot.<origin>.> only.
const SubjectRoot = "palisade.bans"

// Record kinds.
const (
	KindBan   = "ban"
	KindUnban = "unban" // a tombstone: the origin lifted its ban
)

// Bounds of a record.
const (
	MaxMessage   = 4096 // bytes of one message body
	maxReason    = 512
	maxNameLen   = 64
	signDomain   = "palisade-fleet-record-v1\x00"
	envelopeVers = 1
)

// Record is one origin's statement about one address or prefix.
type Record struct {
	// Origin is the publishing daemon's name.
	Origin string `json:"origin"`
	// Kind is KindBan or KindUnban.
	Kind   string       `json:"kind"`
	Prefix netip.Prefix `json:"prefix"`
	// Jail is the origin's jail that banned it.
	Jail   string `json:"jail"`
	Reason string `json:"reason,omitempty"`
	// Issued is when the origin banned (or unbanned).
	Issued time.Time `json:"issued"`
	// Expires is when the ban ends; zero for a permanent ban.
	Expires time.Time `json:"expires,omitzero"`
	// Seq increases with every record of the origin.
	Seq uint64 `json:"seq"`
}

// Permanent reports whether the ban never expires.
func (r Record) Permanent() bool { return r.Expires.IsZero() }

// Subject is where the record is published.
func (r Record) Subject() string { return Subject(r.Origin, r.Prefix) }

// Subject returns SubjectRoot.<origin>.<address-key>.
func Subject(origin string, p netip.Prefix) string {
	return SubjectRoot + "." + origin + "." + AddressKey(p)
}

// AddressKey is a prefix as one subject token: the address with '.' and
// ':' replaced by '-', and "_BITS" for a network ("198-51-100-7",
// "203-0-113-0_24", "2001-db8--1", "2001-db8--_48").
func AddressKey(p netip.Prefix) string {
	p = p.Masked()
	b := p.Addr().AppendTo(make([]byte, 0, 48))
	for i, c := range b {
		if c == '.' || c == ':' {
			b[i] = '-'
		}
	}
	if !p.IsSingleIP() {
		b = strconv.AppendInt(append(b, '_'), int64(p.Bits()), 10)
	}
	return string(b)
}

// ValidName reports whether s can name an origin: 1 to 64 letters,
// digits, '-' and '_', starting with a letter or digit (it is a subject
// token and a NATS user name).
func ValidName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

func validJail(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == '@' || c == ':':
		default:
			return false
		}
	}
	return true
}

// validate checks the fields of a record (not its signature).
func (r *Record) validate() error {
	switch {
	case !ValidName(r.Origin):
		return fmt.Errorf("invalid origin %q", trunc(r.Origin))
	case r.Kind != KindBan && r.Kind != KindUnban:
		return fmt.Errorf("invalid kind %q", trunc(r.Kind))
	case !r.Prefix.IsValid() || r.Prefix.Addr().Zone() != "" || r.Prefix.Addr().Is4In6():
		return errors.New("invalid prefix")
	case r.Prefix != r.Prefix.Masked():
		return fmt.Errorf("prefix %s has host bits set", r.Prefix)
	case !validJail(r.Jail):
		return fmt.Errorf("invalid jail %q", trunc(r.Jail))
	case len(r.Reason) > maxReason:
		return errors.New("reason too long")
	case r.Issued.IsZero():
		return errors.New("no issue time")
	case r.Seq == 0:
		return errors.New("no sequence number")
	}
	return nil
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// envelope is the message body: the record's JSON as signed, and the
// signature over signDomain + R.
type envelope struct {
	V int             `json:"v"`
	R json.RawMessage `json:"r"`
	S []byte          `json:"s"`
}

// Sign encodes r as a signed message body.
func Sign(r Record, key ed25519.PrivateKey) ([]byte, error) {
	r.Prefix = r.Prefix.Masked()
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("fleet record: %w", err)
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(envelope{V: envelopeVers, R: raw, S: ed25519.Sign(key, signed(raw))})
	if err != nil {
		return nil, err
	}
	if len(body) > MaxMessage {
		return nil, fmt.Errorf("fleet record: %d bytes (at most %d)", len(body), MaxMessage)
	}
	return body, nil
}

// signed is the message a record's signature covers: the domain, then
// the record.
func signed(raw []byte) []byte {
	return appendSigned(make([]byte, 0, len(signDomain)+len(raw)), raw)
}

// appendSigned appends signed(raw) to dst.
func appendSigned(dst, raw []byte) []byte {
	return append(append(dst, signDomain...), raw...)
}

// Refusal reasons, counted per origin in status.
const (
	RefuseMalformed = "malformed"  // not a record
	RefuseUntrusted = "untrusted"  // origin not in the trust file
	RefuseSignature = "signature"  // bad signature
	RefuseSubject   = "subject"    // published under another origin's subject
	RefuseStale     = "stale"      // an older sequence than one already seen
	RefuseExempt    = "exempt"     // ignoreip, own address, admin session
	RefuseRate      = "rate"       // more bans per minute than the cap
	RefuseActive    = "max_bans"   // more active bans than the cap
	RefusePrefix    = "prefix"     // wider than the prefix cap
	RefuseJail      = "jail"       // the origin's jail is not applied here
	RefuseExpired   = "expired"    // already over
	RefuseFuture    = "clock_skew" // issued too far in the future
)

// decode parses a message body, without checking the signature.
func decode(body []byte) (Record, envelope, error) {
	var env envelope
	var r Record
	if len(body) > MaxMessage {
		return r, env, fmt.Errorf("message of %d bytes", len(body))
	}
	if r, env, ok := fastDecode(body); ok {
		return r, env, r.validate()
	}
	return decodeJSON(body)
}

// decodeJSON is decode with encoding/json, for any layout.
func decodeJSON(body []byte) (Record, envelope, error) {
	var env envelope
	var r Record
	if err := json.Unmarshal(body, &env); err != nil {
		return r, env, fmt.Errorf("not a record: %v", err)
	}
	if env.V != envelopeVers {
		return r, env, fmt.Errorf("unknown record version %d", env.V)
	}
	if len(env.S) != ed25519.SignatureSize {
		return r, env, errors.New("no signature")
	}
	if err := json.Unmarshal(env.R, &r); err != nil {
		return r, env, fmt.Errorf("not a record: %v", err)
	}
	if err := r.validate(); err != nil {
		return r, env, err
	}
	return r, env, nil
}

// Verified is a message checked against the trust file.
type Verified struct {
	Record Record
	// Refused is "" for a record with a valid signature by a trusted
	// origin under its own subject; otherwise a Refuse constant.
	Refused string
	Err     error
}

// SubjectOrigin returns the origin token of a record subject ("" when the
// subject is not one).
func SubjectOrigin(subject string) string {
	rest, ok := strings.CutPrefix(subject, SubjectRoot+".")
	if !ok {
		return ""
	}
	o, _, ok := strings.Cut(rest, ".")
	if !ok {
		return ""
	}
	return o
}

// Package cloudflare locks a web server's ports to Cloudflare: it fetches
// Cloudflare's published ranges and validates them strictly (a challenge
// page, a glued line or a truncated list is refused, never applied), keeps
// a dated snapshot of them in the binary as the floor, diffs a new list
// against the lock in force and applies it through a Lock (the nftables
// implementation is internal/firewall/nft), persists the last known good
// list, re-syncs on an interval with jitter and backoff, and renders the
// real-IP configuration for nginx and Apache. Bans at Cloudflare's edge
// live in the sub-package edge.
package cloudflare

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// ErrRefused wraps every reason a list is not applied.
var ErrRefused = errors.New("cloudflare list refused")

func refused(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
}

// Limits of a valid list.
const (
	// MaxPerFamily bounds the entries of one family (Cloudflare publishes
	// about 15 IPv4 and 7 IPv6 ranges).
	MaxPerFamily = 1000
	// MinBits4 and MinBits6 are the widest prefixes accepted.
	MinBits4 = 8
	MinBits6 = 12
)

// List is a set of Cloudflare ranges and where it came from.
type List struct {
	IPv4 []netip.Prefix `json:"ipv4_cidrs"`
	IPv6 []netip.Prefix `json:"ipv6_cidrs"`
	// ETag is the API's result.etag (empty for files without one).
	ETag string `json:"etag,omitempty"`
	// Source is the URL or file the list was read from, or "snapshot".
	Source string `json:"source"`
	// Fetched is when it was read (for the snapshot: its date).
	Fetched time.Time `json:"fetched"`
}

// All returns the IPv4 then the IPv6 ranges.
func (l List) All() []netip.Prefix { return slices.Concat(l.IPv4, l.IPv6) }

// Len is the number of ranges.
func (l List) Len() int { return len(l.IPv4) + len(l.IPv6) }

// Contains returns the range holding a.
func (l List) Contains(a netip.Addr) (netip.Prefix, bool) {
	a = a.Unmap().WithZone("")
	for _, p := range l.All() {
		if p.Contains(a) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// special are ranges no proxy list may touch.
var special = []struct {
	p    netip.Prefix
	what string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "the \"this network\" range"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (carrier-grade NAT) address space"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/128"), "the unspecified address"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped"},
	{netip.MustParsePrefix("fc00::/7"), "private (unique local)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// ParseEntry parses one list entry strictly: a canonical CIDR prefix (no
// blanks, no host bits, the shortest spelling, lower case), not the default
// route, not wider than /8 (IPv4) or /12 (IPv6), and clear of private,
// loopback, link-local, multicast and reserved space. Documentation ranges
// are allowed.
func ParseEntry(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, refused("empty entry")
	}
	q := quote(s)
	if strings.TrimSpace(s) != s {
		return netip.Prefix{}, refused("entry %s has surrounding blanks", q)
	}
	if !strings.Contains(s, "/") {
		return netip.Prefix{}, refused("entry %s is an address, not a CIDR prefix", q)
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, refused("entry %s is not a CIDR prefix (two ranges glued together?)", q)
	}
	a := p.Addr()
	if a.Zone() != "" || a.Is4In6() {
		return netip.Prefix{}, refused("entry %s: zones and IPv4-mapped addresses are not allowed", q)
	}
	if p.Masked() != p {
		return netip.Prefix{}, refused("entry %s has host bits set (the prefix is %s)", q, p.Masked())
	}
	if p.String() != s {
		return netip.Prefix{}, refused("entry %s is not written canonically (want %s)", q, p)
	}
	if p.Bits() == 0 {
		return netip.Prefix{}, refused("entry %s is the default route", q)
	}
	minBits := MinBits6
	if a.Is4() {
		minBits = MinBits4
	}
	if p.Bits() < minBits {
		return netip.Prefix{}, refused("entry %s is wider than /%d", q, minBits)
	}
	for _, sp := range special {
		if sp.p.Overlaps(p) {
			return netip.Prefix{}, refused("entry %s overlaps %s %s", q, sp.what, sp.p)
		}
	}
	return p, nil
}

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// Validate checks a whole list: both families present, each within
// MaxPerFamily, every entry valid (ParseEntry) and in its own family, no
// duplicates or overlaps. It returns the list sorted.
func Validate(l List) (List, error) {
	out := l
	for _, fam := range []struct {
		name string
		v4   bool
		list *[]netip.Prefix
	}{{"IPv4", true, &out.IPv4}, {"IPv6", false, &out.IPv6}} {
		in := *fam.list
		if len(in) == 0 {
			return List{}, refused("the %s list is empty (both families must be present)", fam.name)
		}
		if len(in) > MaxPerFamily {
			return List{}, refused("the %s list has %d entries (at most %d)", fam.name, len(in), MaxPerFamily)
		}
		sorted := make([]netip.Prefix, 0, len(in))
		for _, p := range in {
			q, err := ParseEntry(p.String())
			if err != nil || q != p {
				if err == nil {
					err = refused("entry %s is not canonical", p)
				}
				return List{}, err
			}
			if p.Addr().Is4() != fam.v4 {
				return List{}, refused("entry %s is in the %s list", p, fam.name)
			}
			sorted = append(sorted, p)
		}
		slices.SortFunc(sorted, func(a, b netip.Prefix) int {
			if c := a.Addr().Compare(b.Addr()); c != 0 {
				return c
			}
			return a.Bits() - b.Bits()
		})
		for i := 1; i < len(sorted); i++ {
			if sorted[i-1].Overlaps(sorted[i]) {
				return List{}, refused("entries %s and %s overlap", sorted[i-1], sorted[i])
			}
		}
		*fam.list = sorted
	}
	return out, nil
}

// apiReply is the body of https://api.cloudflare.com/client/v4/ips.
type apiReply struct {
	Success *bool `json:"success"`
	Errors  []struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
	Result *struct {
		IPv4 *[]string `json:"ipv4_cidrs"`
		IPv6 *[]string `json:"ipv6_cidrs"`
		ETag string    `json:"etag"`
	} `json:"result"`
}

// ParseAPI parses and validates a reply of Cloudflare's /ips API: a JSON
// object with success true and result.ipv4_cidrs, result.ipv6_cidrs (lists
// of strings) and result.etag.
func ParseAPI(body []byte) (List, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return List{}, refused("the reply is not a JSON object (starts with %s)", quote(string(trimmed[:min(len(trimmed), 40)])))
	}
	var r apiReply
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(&r); err != nil {
		return List{}, refused("malformed JSON: %v", err)
	}
	if dec.More() {
		return List{}, refused("trailing data after the JSON reply")
	}
	if r.Success == nil {
		return List{}, refused("the reply has no \"success\" field")
	}
	if !*r.Success {
		msg := "the API answered success:false"
		for _, e := range r.Errors {
			msg += fmt.Sprintf(" [%d %s]", e.Code, quote(e.Message))
		}
		return List{}, refused("%s", msg)
	}
	if r.Result == nil || r.Result.IPv4 == nil || r.Result.IPv6 == nil {
		return List{}, refused("the reply lacks result.ipv4_cidrs or result.ipv6_cidrs")
	}
	var l List
	for _, fam := range []struct {
		in  []string
		out *[]netip.Prefix
	}{{*r.Result.IPv4, &l.IPv4}, {*r.Result.IPv6, &l.IPv6}} {
		if len(fam.in) > MaxPerFamily {
			return List{}, refused("a family has %d entries (at most %d)", len(fam.in), MaxPerFamily)
		}
		for _, s := range fam.in {
			p, err := ParseEntry(s)
			if err != nil {
				return List{}, err
			}
			*fam.out = append(*fam.out, p)
		}
	}
	l.ETag = r.Result.ETag
	if len(l.ETag) > 128 || strings.ContainsFunc(l.ETag, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.')
	}) {
		return List{}, refused("etag %s is not a short token", quote(l.ETag))
	}
	return Validate(l)
}

// ParseText parses and validates a list with one CIDR prefix per line
// (blank lines and lines starting with # are skipped); the family follows
// from each entry. A saved API reply (a JSON object) is read as ParseAPI
// reads it.
func ParseText(body []byte) (List, error) {
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '{' {
		return ParseAPI(body)
	}
	var l List
	for i, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		p, err := ParseEntry(line)
		if err != nil {
			return List{}, fmt.Errorf("line %d: %w", i+1, err)
		}
		if p.Addr().Is4() {
			l.IPv4 = append(l.IPv4, p)
		} else {
			l.IPv6 = append(l.IPv6, p)
		}
		if l.Len() > 2*MaxPerFamily {
			return List{}, refused("more than %d entries", 2*MaxPerFamily)
		}
	}
	return Validate(l)
}

// Diff is how a list changes into another.
type Diff struct {
	Added   []netip.Prefix `json:"added"`
	Removed []netip.Prefix `json:"removed"`
	Kept    int            `json:"kept"`
}

// Changed reports whether the lists differ.
func (d Diff) Changed() bool { return len(d.Added)+len(d.Removed) > 0 }

// DiffLists compares the ranges of two lists.
func DiffLists(from, to []netip.Prefix) Diff {
	d := Diff{Added: []netip.Prefix{}, Removed: []netip.Prefix{}}
	have := map[netip.Prefix]bool{}
	for _, p := range from {
		have[p] = true
	}
	want := map[netip.Prefix]bool{}
	for _, p := range to {
		want[p] = true
		if have[p] {
			d.Kept++
		} else {
			d.Added = append(d.Added, p)
		}
	}
	for _, p := range from {
		if !want[p] {
			d.Removed = append(d.Removed, p)
		}
	}
	return d
}

// CheckShrink refuses a new list that drops more than half of the current
// ranges (a truncated or hijacked list would otherwise lock Cloudflare out).
func CheckShrink(current, next []netip.Prefix) error {
	if len(current) == 0 {
		return nil
	}
	d := DiffLists(current, next)
	if 2*len(d.Removed) > len(current) {
		return refused("the new list drops %d of the %d ranges in force (more than half); use --force if this is intended", len(d.Removed), len(current))
	}
	return nil
}

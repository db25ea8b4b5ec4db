package cloudflare

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"
)

// snapshotJSON is the dated copy of Cloudflare's ranges built into the
// binary: the floor used when no list was ever fetched and the network is
// unreachable.
//
//go:embed snapshot.json
var snapshotJSON []byte

// SnapshotSource is the Source of the embedded list.
const SnapshotSource = "snapshot"

// SnapshotMaxAge is the age after which status warns about a snapshot in
// use.
const SnapshotMaxAge = 180 * 24 * time.Hour

// Snapshot returns the embedded list, validated; Fetched is its date.
func Snapshot() (List, error) {
	var s struct {
		Date string   `json:"date"`
		ETag string   `json:"etag"`
		IPv4 []string `json:"ipv4_cidrs"`
		IPv6 []string `json:"ipv6_cidrs"`
	}
	if err := json.Unmarshal(snapshotJSON, &s); err != nil {
		return List{}, fmt.Errorf("embedded snapshot: %w", err)
	}
	date, err := time.Parse(time.DateOnly, s.Date)
	if err != nil {
		return List{}, fmt.Errorf("embedded snapshot: date: %w", err)
	}
	var l List
	for _, fam := range []struct {
		in  []string
		out *[]netip.Prefix
	}{{s.IPv4, &l.IPv4}, {s.IPv6, &l.IPv6}} {
		for _, e := range fam.in {
			p, err := ParseEntry(e)
			if err != nil {
				return List{}, fmt.Errorf("embedded snapshot: %w", err)
			}
			*fam.out = append(*fam.out, p)
		}
	}
	l, err = Validate(l)
	if err != nil {
		return List{}, fmt.Errorf("embedded snapshot: %w", err)
	}
	l.ETag, l.Source, l.Fetched = s.ETag, SnapshotSource, date
	return l, nil
}

package control

import (
	"context"
	"time"
)

// VerbFleet asks for the fleet's state (no arguments); the reply is
// fleet.Status, carried as JSON.
const VerbFleet Verb = "fleet"

// FleetOrigin is one fleet member's record behind (or refused for) a ban
// here: which origin, which jail there, when.
type FleetOrigin struct {
	Origin  string     `json:"origin"`
	Prefix  string     `json:"prefix"`
	Jail    string     `json:"jail"`
	Reason  string     `json:"reason,omitempty"`
	Issued  time.Time  `json:"issued"`
	Expires *time.Time `json:"expires,omitempty"`
	// Until is when the record stops counting here (the TTL cap).
	Until    *time.Time `json:"until,omitempty"`
	Received time.Time  `json:"received"`
	Seq      uint64     `json:"seq"`
	// State is applied, quorum, lifted, unbanned or refused (Refused
	// then says why: untrusted, exempt, rate, max_bans, prefix, ...).
	State   string `json:"state"`
	Refused string `json:"refused,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// FleetSummary is the fleet's line in status.
type FleetSummary struct {
	Name       string `json:"name"`
	Connected  bool   `json:"connected"`
	Server     string `json:"server,omitempty"`
	CaughtUp   bool   `json:"caught_up"`
	Jail       string `json:"jail"`
	RemoteBans int    `json:"remote_bans"`
	Peers      int    `json:"peers"`
	Queue      int    `json:"queue"`
	// Error says why the fleet is not running, or its last error.
	Error string `json:"error,omitempty"`
}

// Fleet asks for the fleet's state and decodes it into out.
func (c *Client) Fleet(ctx context.Context, out any) error {
	return c.Call(ctx, Request{Verb: VerbFleet}, out)
}

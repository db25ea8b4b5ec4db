// Package control is palisade's local control channel: a root-only Unix
// socket speaking newline-delimited JSON with a fixed verb set, the
// server the daemon runs and the client the CLI uses.
//
// One connection carries one request and one response. The server checks
// the peer's credentials (SO_PEERCRED, uid 0) on every connection, bounds
// the request size and the time a peer may take, and answers a bad request
// with an error reply; nothing a peer sends stops the server.
package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/palisade-project/palisade/internal/firewall"
)

// Verb names a request. The set is fixed.
type Verb string

// The verbs the daemon answers.
const (
	VerbPing    Verb = "ping"    // liveness; replies PingReply
	VerbStatus  Verb = "status"  // jails and counters; optional Jail; replies StatusReply
	VerbBan     Verb = "ban"     // Jail, IP, optional For; replies BanReply
	VerbUnban   Verb = "unban"   // Jail+IP, or All (optional Jail); replies UnbanReply
	VerbBanned  Verb = "banned"  // every active ban; optional Jail; replies BannedReply
	VerbExplain Verb = "explain" // IP; replies ExplainReply
	VerbReload  Verb = "reload"  // re-read the configuration; replies ReloadReply
	// VerbCloudflare runs a Cloudflare lock operation (Cloudflare args;
	// cloudflare.go).
	VerbCloudflare Verb = "cloudflare"
	VerbConfig     Verb = "config" // configuration directory and each jail's ports; replies ConfigReply
)

// Verbs lists every verb the protocol knows.
var verbs = map[Verb]bool{
	VerbPing: true, VerbStatus: true, VerbBan: true, VerbUnban: true,
	VerbBanned: true, VerbExplain: true, VerbReload: true, VerbCloudflare: true,
	VerbConfig: true, VerbFleet: true,
}

// MaxRequestSize is the default bound on one request, newline included.
const MaxRequestSize = 64 << 10

// maxDuration bounds the textual --for value.
const maxDuration = 64

// Request is one command sent to the daemon.
type Request struct {
	Verb Verb   `json:"verb"`
	Jail string `json:"jail,omitempty"`
	// IP is a single address (IPv4 or IPv6) in canonical or any form
	// netip.ParseAddr accepts.
	IP string `json:"ip,omitempty"`
	// For is a ban duration in fail2ban syntax ("1h", "3600", "-1"); empty
	// means the jail's bantime.
	For string `json:"for,omitempty"`
	// All asks unban to lift every ban (of Jail when set).
	All bool `json:"all,omitempty"`
	// Cloudflare holds the arguments of VerbCloudflare.
	Cloudflare *CloudflareArgs `json:"cloudflare,omitempty"`
}

// Addr returns the request's IP parsed; it is valid after DecodeRequest
// succeeded for a verb that needs one.
func (r Request) Addr() netip.Addr {
	a, err := netip.ParseAddr(r.IP)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// Response is the daemon's answer. Data holds the verb's reply type.
type Response struct {
	OK    bool            `json:"ok"`
	Error string          `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// ErrBadRequest wraps every request validation error.
var ErrBadRequest = errors.New("bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// DecodeRequest parses and validates one request (without the trailing
// newline). Unknown fields, unknown verbs, malformed addresses and fields
// that the verb does not take are errors wrapping ErrBadRequest.
func DecodeRequest(data []byte) (Request, error) {
	var r Request
	if len(data) > MaxRequestSize {
		return r, badRequest("request larger than %d bytes", MaxRequestSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Request{}, badRequest("malformed JSON: %v", err)
	}
	if dec.More() {
		return Request{}, badRequest("trailing data after the request")
	}
	if err := r.Validate(); err != nil {
		return Request{}, err
	}
	return r, nil
}

// Validate checks that r is a well-formed request for its verb.
func (r Request) Validate() error {
	if !verbs[r.Verb] {
		return badRequest("unknown verb %q", truncate(string(r.Verb)))
	}
	if r.Jail != "" && !ValidJailName(r.Jail) {
		return badRequest("invalid jail name %q", truncate(r.Jail))
	}
	if len(r.For) > maxDuration {
		return badRequest("duration too long")
	}
	if (r.Verb == VerbCloudflare) != (r.Cloudflare != nil) {
		return badRequest("cloudflare arguments go with the cloudflare verb only")
	}
	needIP := false
	switch r.Verb {
	case VerbCloudflare:
		if r.Jail != "" || r.IP != "" || r.For != "" || r.All {
			return badRequest("cloudflare takes only its own arguments")
		}
		if err := r.Cloudflare.validate(); err != nil {
			return err
		}
	case VerbPing, VerbReload, VerbConfig, VerbFleet:
		if r.Jail != "" || r.IP != "" || r.For != "" || r.All {
			return badRequest("%s takes no arguments", r.Verb)
		}
	case VerbStatus, VerbBanned:
		if r.IP != "" || r.For != "" || r.All {
			return badRequest("%s takes only a jail", r.Verb)
		}
	case VerbBan:
		if r.Jail == "" {
			return badRequest("ban needs a jail")
		}
		if r.All {
			return badRequest("ban does not take all")
		}
		needIP = true
	case VerbUnban:
		if r.For != "" {
			return badRequest("unban does not take a duration")
		}
		if r.All {
			if r.IP != "" {
				return badRequest("unban takes an address or all, not both")
			}
		} else {
			// No jail: every jail's ban of the address.
			needIP = true
		}
	case VerbExplain:
		if r.Jail != "" || r.For != "" || r.All {
			return badRequest("explain takes only an address")
		}
		needIP = true
	}
	if needIP {
		if r.IP == "" {
			return badRequest("%s needs an address", r.Verb)
		}
		if err := r.validateIP(); err != nil {
			return badRequest("%v", err)
		}
	} else if r.IP != "" {
		return badRequest("%s does not take an address", r.Verb)
	}
	return nil
}

// ParseIP parses a single IPv4 or IPv6 address (no zone, no prefix) and
// returns it unmapped.
func ParseIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("invalid address %q", truncate(s))
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("invalid address %q: zones are not allowed", truncate(s))
	}
	return a.Unmap(), nil
}

// ValidJailName reports whether s is an acceptable jail name
// (firewall.CheckJailName, the one rule).
func ValidJailName(s string) bool { return firewall.CheckJailName(s) == nil }

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// PingReply answers ping.
type PingReply struct {
	Version string    `json:"version"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
}

// StatusReply answers status.
type StatusReply struct {
	// Backend is the firewall backend in use ("nftables", "fake", ...).
	Backend string `json:"backend"`
	// ConfigDir is the configuration directory the daemon reads.
	ConfigDir string `json:"config_dir"`
	// Started is when the daemon became ready.
	Started time.Time `json:"started"`
	// ReloadError is the error of the last failed reload, if the running
	// configuration is older than the files on disk.
	ReloadError string `json:"reload_error,omitempty"`
	// Healthy is false while any jail has a health problem (health.go).
	Healthy bool `json:"healthy"`
	// Database is the state of the ban database.
	Database DatabaseStatus `json:"database"`
	Jails    []JailStatus   `json:"jails"`
	// Fleet is present when fleet-wide bans are configured (fleet.go).
	Fleet *FleetSummary `json:"fleet,omitempty"`
}

// DatabaseStatus says whether the ban database takes writes. While it
// does not (read-only or full file system), the daemon keeps banning from
// memory and retries; Unsaved and PendingDeletes count what it will write.
type DatabaseStatus struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Since is when writes began failing; NextRetry when they are tried
	// again (both absent while OK).
	Since          *time.Time `json:"since,omitempty"`
	NextRetry      *time.Time `json:"next_retry,omitempty"`
	Unsaved        int        `json:"unsaved"`
	PendingDeletes int        `json:"pending_deletes"`
}

// JailStatus is one jail in a StatusReply.
type JailStatus struct {
	Name    string   `json:"name"`
	Filter  string   `json:"filter"`
	Sources []string `json:"sources"`
	// Watching says exactly what is read: file paths and globs, or
	// "journal: MATCH".
	Watching []string `json:"watching"`
	// Error is set when the jail is not (fully) working: a missing log
	// file, an unreadable journal, a firewall backend that refused it.
	Error string `json:"error,omitempty"`
	// Warnings say when a source has nothing to read now (a missing log
	// file, no journal files, journalctl absent).
	Warnings []string `json:"warnings,omitempty"`
	// StockReplaced is the fail2ban stock filter file palisade's built-in
	// filter of the same name replaces (absent: the filter is used as
	// read).
	StockReplaced   string `json:"stock_replaced,omitempty"`
	CurrentlyFailed int    `json:"currently_failed"`
	TotalFailed     uint64 `json:"total_failed"`
	CurrentlyBanned int    `json:"currently_banned"`
	TotalBanned     uint64 `json:"total_banned"`
	// Evicted counts the addresses pushed out of the full failure table
	// (failtable.size) since start.
	Evicted uint64 `json:"evicted"`
	// Banned lists the banned addresses/prefixes (sorted).
	Banned []string `json:"banned"`
	// Health is the watchdog's view of the jail (health.go).
	Health JailHealth `json:"health"`
	// Settings are the counting settings the jail runs with (`palisade
	// get JAIL bantime` and its kin read them).
	Settings JailSettings `json:"settings"`
}

// JailSettings are a running jail's counting settings.
type JailSettings struct {
	MaxRetry int `json:"maxretry"`
	// FindTime and BanTime are whole seconds, as fail2ban-client prints
	// them; BanTime -1 is permanent. BanTime is the base ban length
	// (bantime.increment escalates it per offence).
	FindTime int64 `json:"findtime"`
	BanTime  int64 `json:"bantime"`
	// IgnoreIP are the ignoreip entries as written: addresses, networks
	// and host names.
	IgnoreIP []string `json:"ignoreip"`
	// IgnoreSelf: the host's own addresses are never banned.
	IgnoreSelf bool `json:"ignoreself"`
}

// BanEntry is one active ban.
type BanEntry struct {
	Jail string `json:"jail"`
	// IP is an address, or a prefix when the jail aggregates.
	IP    string    `json:"ip"`
	Since time.Time `json:"since"`
	// Expires is absent for a permanent ban.
	Expires   *time.Time `json:"expires,omitempty"`
	Permanent bool       `json:"permanent"`
	// Offences counts this address's bans in the jail, this one included
	// (the bantime.increment step).
	Offences int `json:"offences"`
	// Origins are the fleet members whose records this ban enforces (a
	// ban of the fleet jail only).
	Origins []FleetOrigin `json:"origins,omitempty"`
}

// BannedReply answers banned.
type BannedReply struct {
	Bans []BanEntry `json:"bans"`
}

// BanReply answers ban.
type BanReply struct {
	Ban BanEntry `json:"ban"`
}

// UnbanReply answers unban.
type UnbanReply struct {
	Removed int `json:"removed"`
}

// ReloadReply answers reload.
type ReloadReply struct {
	Jails   []string `json:"jails"`
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Changed []string `json:"changed,omitempty"`
	// Lifted counts, per removed jail, the bans lifted with it.
	Lifted map[string]int `json:"lifted,omitempty"`
}

// ExplainReply answers explain: why an address is banned, ignored or
// counted.
type ExplainReply struct {
	IP     string        `json:"ip"`
	Banned []BanEntry    `json:"banned"`
	Jails  []JailExplain `json:"jails"`
	// Fleet lists the fleet members' records for the address, applied or
	// not (present when fleet-wide bans are configured).
	Fleet []FleetOrigin `json:"fleet,omitempty"`
}

// JailExplain is one jail's view of an address.
type JailExplain struct {
	Jail string `json:"jail"`
	// Ignored is set when an ignore rule applies; IgnoreRule names it
	// ("ignoreip 127.0.0.1/8", "ignoreself", "ignorecommand").
	Ignored    bool   `json:"ignored"`
	IgnoreRule string `json:"ignore_rule,omitempty"`
	// Failures counted in the current findtime window, and the jail's
	// threshold.
	Failures int    `json:"failures"`
	MaxRetry int    `json:"maxretry"`
	FindTime string `json:"findtime"`
	// Lines are the counted log lines (most recent last), with the rule
	// that matched.
	Lines []ExplainLine `json:"lines"`
	// Offences is how many times the address was banned in this jail
	// (bantime.increment history); NextBanTime is the ban a new offence
	// would get ("permanent" for -1).
	Offences    int    `json:"offences"`
	NextBanTime string `json:"next_bantime"`
}

// ExplainLine is one counted log line.
type ExplainLine struct {
	Time time.Time `json:"time"`
	Line string    `json:"line"`
	// Rule is the failregex (index and pattern) that matched, when known.
	Rule string `json:"rule,omitempty"`
}

// ConfigReply answers config: the configuration the daemon runs, as far
// as the hardening commands (ssh harden/audit, ftp port, port check) need
// it to follow the daemon rather than guess.
type ConfigReply struct {
	// ConfigDir is the configuration directory the daemon read.
	ConfigDir string       `json:"config_dir"`
	Jails     []JailConfig `json:"jails"`
}

// JailConfig is one running jail's filter and firewall scope.
type JailConfig struct {
	Name string `json:"name"`
	// Filter is the filter's name (or .conf path), without arguments.
	Filter string `json:"filter"`
	// Port is the port option as written; Ports the ranges it means
	// (empty: every port).
	Port     string      `json:"port"`
	Ports    []PortRange `json:"ports"`
	Protocol string      `json:"protocol"`
	// Where is the file:line of the jail's enabled option.
	Where string `json:"where,omitempty"`
}

// PortRange is an inclusive range of ports.
type PortRange struct {
	From uint16 `json:"from"`
	To   uint16 `json:"to"`
}

// Package fleet shares bans between palisade daemons over NATS JetStream.
//
// Each daemon publishes the bans of the jails it shares as records signed
// with its own ed25519 key, one subject per banned address
// (palisade.bans.<origin>.<address-key>), on a stream that keeps one
// message per subject with a per-message TTL equal to the ban's remaining
// time: the stream is the fleet's current ban set. An unban publishes a
// tombstone. Every daemon consumes the stream (replaying it in full on
// start and after every reconnect) and applies the records its policy
// accepts: a valid signature by an origin of its trust file, published
// under that origin's own subject; never an address the local
// configuration exempts (ignoreip, the host's own addresses, the admin's
// session); per-origin caps on the issuing rate, active bans, TTL and
// prefix width; an optional quorum of distinct origins. Refusals are
// counted per reason.
//
// Remote bans are enforced through the ban manager in one jail of their
// own (Config.Jail), so the firewall, the store, expiry, banned and
// explain treat them like any other ban; the records behind them (origin,
// jail, issue time, sequence) live in the store's record spaces. Local
// banning never waits on the bus: events are followed asynchronously,
// outgoing records are queued (bounded, persisted) while the bus is
// unreachable and published on reconnect.
//
// The daemon links only the NATS client (github.com/nats-io/nats.go); the
// tests embed nats-server (internal/fleet/fleettest).
package fleet

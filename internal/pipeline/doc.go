// Package pipeline is one jail's path from configuration to decisions,
// built once and run.
//
// Build turns a validated configuration jail (internal/config) into a Plan:
// the compiled filter, the log source to read, the jail logic's settings,
// how its bans are enforced (the route to a firewall backend) and its
// firewall scope. `palisade config check`, daemon start-up and reload all
// call Build, so a configuration that passes the check is exactly what
// runs; BuildFilter is the filter builder `palisade regex` shares.
//
// A Jail (New, from a Plan) is the running per-line path: it receives log
// lines from its source, runs the filter, skips lines the failure journal
// already counted before a restart, asks the stage beside the jail for
// what needs the outside world (host names in ignoreip and in failure ids,
// the ignorecommand; bounded, cached and cancellable, on the jail's own
// workers so a slow lookup never holds up the shared log reader or other
// jails), feeds internal/jail, records counted failures in the journal and
// hands ban decisions to the ban manager. Lines flow downward: nothing here
// calls back into the daemon.
package pipeline

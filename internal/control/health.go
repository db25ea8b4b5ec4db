package control

import "time"

// JailHealth is a jail's health in a StatusReply: whether the health
// watchdog (internal/health) sees a problem, which ones, and since when
// the jail is in this state.
type JailHealth struct {
	Healthy bool `json:"healthy"`
	// Problems are the current problems, sorted; empty when healthy.
	Problems []string `json:"problems"`
	// Since is when the jail became healthy or unhealthy (zero before
	// the watchdog's first look).
	Since time.Time `json:"since,omitzero"`
}

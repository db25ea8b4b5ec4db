package daemon

import (
	"github.com/palisade-project/palisade/internal/ban"
	"github.com/palisade-project/palisade/internal/pipeline"
)

// banJails returns the ban manager's per-jail settings from the built
// plans (maxbans, and the ignoreip networks a network ban must not cover)
// and the fleet's jail, whose remote bans the fleet's book stores.
func banJails(plans []*pipeline.Plan, fleet []string) map[string]ban.JailConfig {
	out := make(map[string]ban.JailConfig, len(plans)+len(fleet))
	for _, p := range plans {
		out[p.Name()] = p.Bans
	}
	for _, j := range fleet {
		out[j] = ban.JailConfig{NotStored: true}
	}
	return out
}

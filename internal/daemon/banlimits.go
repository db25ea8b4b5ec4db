package daemon

import (
	"github.com/palisade-project/palisade/internal/ban"
	"github.com/palisade-project/palisade/internal/pipeline"
)

// banJails returns the ban manager's per-jail settings from the built
// plans (maxbans, and the ignoreip networks a network ban must not cover).
func banJails(plans []*pipeline.Plan) map[string]ban.JailConfig {
	out := make(map[string]ban.JailConfig, len(plans))
	for _, p := range plans {
		out[p.Name()] = p.Bans
	}
	return out
}

package daemon

import (
	"testing"

	"github.com/palisade-project/palisade/internal/ban"
)

// TestAnnounced: notifications skip bans re-installed at start-up,
// extensions and address bans replaced by their network's ban.
func TestAnnounced(t *testing.T) {
	tests := []struct {
		name string
		ev   ban.Event
		want bool
	}{
		{"automatic ban", ban.Event{Kind: ban.EventBan}, true},
		{"manual ban", ban.Event{Kind: ban.EventBan, Entry: ban.Entry{Origin: ban.OriginManual}}, true},
		{"network ban replacing addresses", ban.Event{Kind: ban.EventBan, Aggregated: 12}, true},
		{"restored at start-up", ban.Event{Kind: ban.EventBan, Entry: ban.Entry{Origin: ban.OriginRestored}}, false},
		{"adopted from the kernel", ban.Event{Kind: ban.EventBan, Entry: ban.Entry{Origin: ban.OriginAdopted}}, false},
		{"extension", ban.Event{Kind: ban.EventExtend}, false},
		{"expiry", ban.Event{Kind: ban.EventUnban, Cause: ban.CauseExpired}, true},
		{"replaced by a network ban", ban.Event{Kind: ban.EventUnban, Cause: ban.CauseAggregated}, false},
		{"lifted early by maxbans", ban.Event{Kind: ban.EventUnban, Cause: ban.CauseEvicted}, true},
	}
	for _, tc := range tests {
		if got := announced(tc.ev); got != tc.want {
			t.Errorf("%s: announced = %v, want %v", tc.name, got, tc.want)
		}
	}
}

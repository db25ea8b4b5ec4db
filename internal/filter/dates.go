package filter

import (
	"time"

	"github.com/palisade-project/palisade/internal/datetime"
)

// detector adapts a datetime.Detector to DateDetector.
type detector struct{ d *datetime.Detector }

func (a detector) Detect(line string, now time.Time) (DateMatch, bool) {
	m, ok := a.d.Match(line, now)
	return DateMatch(m), ok
}

// NewDateDetector returns palisade's date detector for a fail2ban
// datepattern ("" = every default template) reading zone-less times in loc.
func NewDateDetector(datepattern string, loc *time.Location) (DateDetector, error) {
	d, err := datetime.New(datepattern, loc)
	if err != nil {
		return nil, err
	}
	return detector{d}, nil
}

package daemon

import (
	"fmt"
	"io/fs"
	"time"

	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/config/ini"
	"github.com/palisade-project/palisade/internal/datetime"
	"github.com/palisade-project/palisade/internal/filter"
)

// FilterSpec returns the spec that loads j's filter.
func FilterSpec(j config.Jail) config.FilterSpec {
	vars := ini.Vars{}
	for k, v := range j.Options {
		vars[k] = v
	}
	return config.FilterSpec{Name: j.Filter.Name, Options: j.Filter.Args, JailOptions: vars, Backend: j.BackendName}
}

// StandardLoadFilter returns the LoadFilter that reads filter.d from the
// configuration directory, then from builtin (palisade's filters).
func StandardLoadFilter(builtin fs.FS) func(cfg *config.Config, j config.Jail) (filter.Definition, error) {
	return func(cfg *config.Config, j config.Jail) (filter.Definition, error) {
		return config.LoadFilter(FilterSpec(j), []string{cfg.Dir}, builtin)
	}
}

// dates adapts datetime.Detector to filter.DateDetector.
type dates struct{ d *datetime.Detector }

func (x dates) Detect(line string, now time.Time) (filter.DateMatch, bool) {
	m, ok := x.d.Match(line, now)
	return filter.DateMatch{Start: m.Start, End: m.End, Time: m.Time, Valid: m.Valid}, ok
}

// StandardNewFilter compiles a definition with palisade's date detector,
// honouring the jail's datepattern, logtimezone and usedns.
func StandardNewFilter(def filter.Definition, j config.Jail) (LineFilter, error) {
	loc := time.Local
	if j.LogTimezone != "" {
		l, err := time.LoadLocation(j.LogTimezone)
		if err != nil {
			return nil, fmt.Errorf("logtimezone %q: %w", j.LogTimezone, err)
		}
		loc = l
	}
	if j.DatePattern != "" {
		def.DatePattern = j.DatePattern
	}
	det, err := datetime.New(def.DatePattern, loc)
	if err != nil {
		return nil, fmt.Errorf("datepattern: %w", err)
	}
	return filter.New(def, filter.Options{Location: loc, Dates: dates{det}, UseDNS: j.UseDNS})
}

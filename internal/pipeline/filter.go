package pipeline

import (
	"io/fs"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/filter"
)

// FilterInput is what builds a filter: the one builder shared by the
// daemon's jails and `palisade regex`.
type FilterInput struct {
	// Spec names the filter and its arguments (and, for a jail, the
	// jail's options).
	Spec config.FilterSpec
	// Dirs are the configuration directories holding filter.d; Builtin
	// holds palisade's built-in filter.d (nil: none).
	Dirs    []string
	Builtin fs.FS
	// DatePattern, when set, replaces the filter's (a jail's datepattern).
	DatePattern string
	// Location is the zone of zone-less times (nil: local).
	Location *time.Location
	// Now is the clock for year inference (nil: time.Now).
	Now func() time.Time
	// Journal: lines carry no dates (logtype = journal).
	Journal bool
	// UseDNS is the jail's usedns ("" = warn).
	UseDNS string
	// BacktrackBudget bounds the time spent in backtracking regexes per
	// second (filter.Options; 0: the default, negative: unlimited, as for
	// palisade regex).
	BacktrackBudget time.Duration
}

// BuiltFilter is a compiled filter with what it was built from.
type BuiltFilter struct {
	Filter *filter.Filter
	// Definition is the resolved definition the filter was compiled from.
	Definition filter.Definition
	// Loaded is the filter as read (files, combined options).
	Loaded *config.LoadedFilter
	// RE2 reports that the filter is made only of palisade's built-in
	// files and was therefore held to Go's RE2 engine.
	RE2 bool
}

// BuildFilter reads and compiles a filter. Its errors name the filter
// once. A filter read only from
// palisade's built-in files must be RE2 (DESIGN: built-in filters never
// backtrack); a filter from disk may use fail2ban's full syntax.
func BuildFilter(in FilterInput) (*BuiltFilter, error) {
	lf, err := config.ReadFilter(in.Spec, in.Dirs, in.Builtin)
	if err != nil {
		return nil, withFilterName(in.Spec.Name, err)
	}
	def := lf.Definition
	if def.Name == "" {
		def.Name = in.Spec.Name
	}
	if in.DatePattern != "" {
		def.DatePattern = in.DatePattern
	}
	re2 := onlyBuiltin(lf.Files)
	f, err := filter.New(def, filter.Options{
		Location: in.Location, Now: in.Now, Journal: in.Journal, UseDNS: in.UseDNS, RequireRE2: re2,
		BacktrackBudget: in.BacktrackBudget,
	})
	if err != nil {
		return nil, err
	}
	return &BuiltFilter{Filter: f, Definition: def, Loaded: lf, RE2: re2}, nil
}

// onlyBuiltin reports whether every file read is an embedded built-in.
func onlyBuiltin(files []string) bool {
	if len(files) == 0 {
		return false
	}
	for _, f := range files {
		if !strings.HasPrefix(f, config.BuiltinName) {
			return false
		}
	}
	return true
}

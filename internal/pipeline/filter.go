package pipeline

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/config/stock"
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
	// Stock recognises fail2ban's unmodified stock files (nil: none is).
	// A filter given by name whose every file read from disk is a stock
	// file is replaced by palisade's built-in filter of that name, when
	// there is one (see stockUse). A filter given as a path, and any
	// filter when AsWritten is set, is used as written; BuiltFilter.Stock
	// still says that it is a stock file.
	Stock     *stock.Sums
	AsWritten bool
	// ReuseResults and NoMatches: see filter.Options (palisade regex;
	// never a jail).
	ReuseResults, NoMatches bool
	// FailRegex, when set, is the whole filter: a failregex given on
	// palisade regex's command line instead of a filter (named
	// Spec.Name); no file is read and it is not held to RE2.
	FailRegex string
	// MaxLines, when above 0, replaces the filter's maxlines (palisade
	// regex -L).
	MaxLines int
	// IgnoreRegex are added after the filter's ignoreregex (palisade
	// regex's IGNOREREGEX argument). They are not held to RE2, and with
	// them neither is a built-in filter.
	IgnoreRegex []string
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
	// Stock is set when the filter's files on disk are fail2ban's
	// unmodified stock files and palisade has a built-in of the name.
	Stock *StockUse
	// Lint are the rules that capture an address after text a client
	// may control (filter.Lint), for config check.
	Lint []LintNote
	// clock is the filter's clock when FilterInput.Now was nil: the
	// running jail stamps it once per read (Jail.Lines), one clock
	// reading for the read's lines instead of one per line.
	clock *filter.ReadClock
}

// StockUse says that a filter's files on disk are fail2ban's unmodified
// stock files, and whether palisade's built-in filter of the same name
// was used instead.
type StockUse struct {
	// Name is the filter's (and the built-in's) name; File its file
	// on disk, Files every stock file read (its includes too).
	Name  string
	File  string
	Files []string
	// Replaced: the built-in was used, the files were not read.
	Replaced bool
}

// String is the note config check, status and the daemon's log show.
func (u *StockUse) String() string {
	if u.Replaced {
		return fmt.Sprintf("filter %s: %s is fail2ban's unmodified stock filter; palisade's built-in filter %s is used instead "+
			"(anchored, it resists addresses forged in user names; a filter.d/%s.local, even empty, makes palisade use the file as written)",
			u.Name, u.File, u.Name, u.Name)
	}
	return fmt.Sprintf("filter %s: fail2ban's unmodified stock filter, used as written; a jail naming filter %s uses palisade's built-in filter %s instead",
		u.File, u.Name, u.Name)
}

// BuildFilter reads and compiles a filter. Its errors name the filter
// once. A filter read only from
// palisade's built-in files must be RE2 (DESIGN: built-in filters never
// backtrack); a filter from disk may use fail2ban's full syntax.
func BuildFilter(in FilterInput) (*BuiltFilter, error) {
	lf, use, err := readFilter(in)
	if err != nil {
		return nil, err
	}
	def := lf.Definition
	if def.Name == "" {
		def.Name = in.Spec.Name
	}
	if in.DatePattern != "" {
		def.DatePattern = in.DatePattern
	}
	if in.MaxLines > 0 {
		def.MaxLines = in.MaxLines
	}
	if len(in.IgnoreRegex) > 0 {
		def.IgnoreRegex = append(slices.Clip(def.IgnoreRegex), in.IgnoreRegex...)
	}
	re2 := onlyBuiltin(lf.Files) && len(in.IgnoreRegex) == 0
	var clk *filter.ReadClock
	now := in.Now
	if now == nil {
		clk = filter.NewReadClock()
		now = clk.Now
	}
	f, err := filter.New(def, filter.Options{
		Location: in.Location, Now: now, Journal: in.Journal, UseDNS: in.UseDNS, RequireRE2: re2,
		BacktrackBudget: in.BacktrackBudget, ReuseResults: in.ReuseResults, NoMatches: in.NoMatches,
	})
	if err != nil {
		return nil, err
	}
	bf := &BuiltFilter{Filter: f, Definition: def, Loaded: lf, RE2: re2, Stock: use, clock: clk}
	if !re2 {
		bf.Lint = lintNotes(def, lf)
	}
	return bf, nil
}

// readFilter reads the filter's files (the built-in instead of a stock
// filter, see stockUse), or makes the filter of in.FailRegex alone.
func readFilter(in FilterInput) (*config.LoadedFilter, *StockUse, error) {
	if in.FailRegex != "" {
		return &config.LoadedFilter{Definition: filter.Definition{Name: in.Spec.Name, FailRegex: []string{in.FailRegex}}}, nil, nil
	}
	lf, err := config.ReadFilter(in.Spec, in.Dirs, in.Builtin)
	if err != nil {
		return nil, nil, withFilterName(in.Spec.Name, err)
	}
	use := stockUse(in, lf.Files)
	if use != nil && use.Replaced {
		if lf, err = config.ReadFilter(in.Spec, nil, in.Builtin); err != nil {
			return nil, nil, withFilterName(in.Spec.Name, err)
		}
	}
	return lf, use, nil
}

// stockUse recognises a stock filter: every file read from disk is
// filter.d/NAME.conf's or an include's (filter.d/X.conf, never a .local
// or a NAME.d/ file) unmodified stock content, the filter's own file is
// among them, and palisade has a built-in filter.d/NAME.conf. nil
// otherwise.
func stockUse(in FilterInput, files []string) *StockUse {
	if onlyBuiltin(files) || in.Builtin == nil || in.Stock.Len() == 0 {
		return nil // (no file from disk: the sums are not needed)
	}
	name := strings.TrimSpace(in.Spec.Name)
	byPath := strings.Contains(name, "/")
	if byPath {
		name = filepath.Base(name)
	}
	name = strings.TrimSuffix(strings.TrimSuffix(name, ".conf"), ".local")
	if _, err := fs.Stat(in.Builtin, "filter.d/"+name+".conf"); err != nil || name == "common" {
		return nil
	}
	var disk []string
	own := ""
	for _, f := range files {
		if strings.HasPrefix(f, config.BuiltinName) {
			continue
		}
		base := filepath.Base(f)
		if filepath.Base(filepath.Dir(f)) != "filter.d" || !strings.HasSuffix(base, ".conf") ||
			!in.Stock.MatchFile("/etc/fail2ban/filter.d/"+base, f) {
			return nil
		}
		if base == name+".conf" {
			own = f
		}
		disk = append(disk, f)
	}
	if own == "" {
		return nil
	}
	return &StockUse{Name: name, File: own, Files: disk, Replaced: !byPath && !in.AsWritten}
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

package filter_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/filter"
)

// TestStockEngines loads every stock fail2ban filter (where installed) and
// reports how many of their regexes run on the linear-time engine; it
// fails if a stock filter no longer loads.
func TestStockEngines(t *testing.T) {
	files, _ := filepath.Glob("/etc/fail2ban/filter.d/*.conf")
	if len(files) == 0 {
		t.Skip("fail2ban's filter.d is not installed")
	}
	var re2, bt, filters int
	var btFilters []string
	for _, fn := range files {
		def, err := config.LoadFilter(config.FilterSpec{Name: fn}, nil, nil)
		if err != nil {
			continue // include-only files (common.conf, ...) and broken ones
		}
		f, err := filter.New(def, filter.Options{Location: time.UTC})
		if err != nil {
			t.Errorf("%s: %v", fn, err)
			continue
		}
		st := f.Stats()
		filters++
		re2 += st.RE2Regexes
		bt += st.BacktrackRegexes
		if st.BacktrackRegexes > 0 {
			btFilters = append(btFilters, strings.TrimSuffix(filepath.Base(fn), ".conf"))
		}
	}
	t.Logf("%d stock filters: %d regexes on RE2, %d on the backtracking engine (%.1f%% RE2); backtracking in: %s",
		filters, re2, bt, 100*float64(re2)/float64(re2+bt), strings.Join(btFilters, " "))
}

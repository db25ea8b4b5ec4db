package filters_test

import (
	"fmt"
	"io/fs"
	"os"
	"testing"
	"time"

	"github.com/palisade-project/palisade/bench/authlog"
	"github.com/palisade-project/palisade/filters"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/datetime"
	"github.com/palisade-project/palisade/internal/filter"
)

// TestSameFailuresAsStockSSHD runs the built-in sshd filter and fail2ban's
// own sshd.conf (read from /etc/fail2ban at run time) through palisade's
// engine over the benchmark's synthetic auth.log, in every mode, and
// requires the same failures: same address, same time, same number.
func TestSameFailuresAsStockSSHD(t *testing.T) {
	const stock = "/etc/fail2ban/filter.d/sshd.conf"
	if _, err := os.Stat(stock); err != nil {
		t.Skipf("fail2ban's sshd.conf is not installed: %v", err)
	}
	const n = 60000
	start := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return start.Add(36 * time.Hour) }
	for _, mode := range []string{"normal", "ddos", "extra", "aggressive"} {
		t.Run(mode, func(t *testing.T) {
			v := variant{name: "sshd", opts: map[string]string{"mode": mode}}
			mk := func(name string, re2 bool) *filter.Filter {
				var builtin fs.FS
				if re2 {
					builtin = filters.FS()
				}
				def, err := config.LoadFilter(config.FilterSpec{Name: name, Options: optionList(v)}, nil, builtin)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				d, err := datetime.New(def.DatePattern, time.UTC)
				if err != nil {
					t.Fatal(err)
				}
				f, err := filter.New(def, filter.Options{Location: time.UTC, Now: now, Clock: now, RequireRE2: re2, Dates: dates{d}})
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				return f
			}
			ours, theirs := mk("sshd", true), mk(stock, false)
			g := authlog.New(1, start, "web1")
			got, want := map[string]int{}, map[string]int{}
			total := 0
			for i := 0; i < n; i++ {
				line := string(g.Line())
				line = line[:len(line)-1]
				for _, fl := range ours.Process(line).Failures {
					got[fmt.Sprintf("%s %d", fl.ID, fl.Time.Unix())]++
					total++
				}
				for _, fl := range theirs.Process(line).Failures {
					want[fmt.Sprintf("%s %d", fl.ID, fl.Time.Unix())]++
				}
			}
			if total < n/20 {
				t.Fatalf("only %d failures in %d lines: the log or the filter is wrong", total, n)
			}
			bad := 0
			for k, c := range want {
				if got[k] != c {
					bad++
					if bad <= 5 {
						t.Errorf("%s: built-in %d, stock %d", k, got[k], c)
					}
				}
			}
			for k, c := range got {
				if _, ok := want[k]; !ok {
					bad++
					if bad <= 5 {
						t.Errorf("%s: built-in %d, stock 0", k, c)
					}
				}
			}
			t.Logf("mode %s: %d failures in %d lines, %d differences", mode, total, n, bad)
		})
	}
}

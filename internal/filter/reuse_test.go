package filter_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/palisade-project/palisade/bench/authlog"
	"github.com/palisade-project/palisade/filters"
	"github.com/palisade-project/palisade/internal/config"
	"github.com/palisade-project/palisade/internal/datetime"
	"github.com/palisade-project/palisade/internal/filter"
)

// TestReuseResults runs built-in filters over their generated attack logs
// twice, with and without Options.ReuseResults and NoMatches (palisade
// regex's options), and checks that every line gives the same failures,
// captures included (read before the next line, as ReuseResults
// requires), without matched lines, and that the reusing filter hands out
// the same memory for every failure.
func TestReuseResults(t *testing.T) {
	for _, tc := range []struct{ name, profile string }{
		{"sshd", "attack"}, {"postfix", "mail"}, {"dovecot", "mail"}, {"apache-auth", "web"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			def, err := config.LoadFilter(config.FilterSpec{Name: tc.name}, nil, filters.FS())
			if err != nil {
				t.Fatal(err)
			}
			now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
			build := func(reuse bool) *filter.Filter {
				d, err := datetime.New(def.DatePattern, time.UTC)
				if err != nil {
					t.Fatal(err)
				}
				f, err := filter.New(def, filter.Options{Location: time.UTC, Now: func() time.Time { return now },
					Dates: dtAdapter{d}, RequireRE2: true, ReuseResults: reuse, NoMatches: reuse})
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
			keep, reuse := build(false), build(true)
			g, err := authlog.NewProfile(tc.profile, 1, time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), "web1")
			if err != nil {
				t.Fatal(err)
			}
			var first *filter.Failure
			failures := 0
			for n := 0; n < 20000; n++ {
				l := g.Line()
				line := string(l[:len(l)-1])
				want, got := keep.Process(line), reuse.Process(line)
				if got.Status != want.Status || got.Regex != want.Regex || got.Ignore != want.Ignore || len(got.Failures) != len(want.Failures) {
					t.Fatalf("line %d %q: %+v, want %+v", n, line, got, want)
				}
				for i := range got.Failures {
					a, b := &got.Failures[i], &want.Failures[i]
					if a.ID != b.ID || a.Addr != b.Addr || !a.Time.Equal(b.Time) || a.Attempts != b.Attempts || a.Regex != b.Regex ||
						!slices.Equal(a.Users, b.Users) || len(a.Matches) != 0 || len(b.Matches) == 0 || !maps.Equal(a.Fields(), b.Fields()) {
						t.Fatalf("line %d %q: failure %+v %v, want %+v %v", n, line, *a, a.Fields(), *b, b.Fields())
					}
					u, ok := a.Field("user")
					wu, wok := b.Field("user")
					if u != wu || ok != wok {
						t.Fatalf("line %d: Field(user) = %q, %v; want %q, %v", n, u, ok, wu, wok)
					}
					if first == nil {
						first = a
					} else if a != first {
						t.Fatalf("line %d: a new failure slot (%p, the first was %p)", n, a, first)
					}
					failures++
				}
			}
			if failures == 0 {
				t.Fatal("no failures: the test compared nothing")
			}
		})
	}
}

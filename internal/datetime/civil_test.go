package datetime

import (
	"testing"
	"time"
)

// TestCivilDays checks the calendar arithmetic against package time over the
// whole range Python's datetime supports (sampled).
func TestCivilDays(t *testing.T) {
	for n := int64(0); n*86400 <= naiveMaxSec; n += 97 {
		want := time.Unix(n*86400+unixOfNaiveZero, 0).UTC()
		y, m, d := civilFromDays(n)
		if y != want.Year() || m != int(want.Month()) || d != want.Day() {
			t.Fatalf("civilFromDays(%d) = %d-%d-%d, want %v", n, y, m, d, want)
		}
		if got := daysFromCivil(y, m, d); got != n {
			t.Fatalf("daysFromCivil(%d-%d-%d) = %d, want %d", y, m, d, got, n)
		}
		if daysIn(y, m) != time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day() {
			t.Fatalf("daysIn(%d, %d) wrong", y, m)
		}
	}
	if y, m, d := civilFromDays(naiveMaxSec / 86400); y != 9999 || m != 12 || d != 31 {
		t.Fatalf("max day = %d-%d-%d", y, m, d)
	}
}

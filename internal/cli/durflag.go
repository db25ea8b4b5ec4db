package cli

import (
	"fmt"
	"time"

	"github.com/palisade-project/palisade/internal/duration"
	"github.com/spf13/pflag"
)

// durationValue is a flag holding a non-negative duration in palisade's
// one syntax (fail2ban's 600, 10m, 1h 30m, 2d and Go's 1h30m, 500ms).
type durationValue time.Duration

func (d *durationValue) Set(s string) error {
	v, err := duration.Parse(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("%q must not be negative", s)
	}
	*d = durationValue(v)
	return nil
}

func (d *durationValue) String() string { return time.Duration(*d).String() }
func (d *durationValue) Type() string   { return "duration" }

// durationVar defines a duration flag on fs (the replacement of
// pflag's DurationVar, which takes Go's syntax only).
func durationVar(fs *pflag.FlagSet, p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	fs.Var((*durationValue)(p), name, usage)
}

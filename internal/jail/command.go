package jail

import (
	"errors"

	"github.com/palisade-project/palisade/internal/sysexec"
)

// SplitCommand splits an ignorecommand value into a non-empty argument
// vector without a shell (sysexec.SplitArgs).
func SplitCommand(s string) ([]string, error) {
	args, err := sysexec.SplitArgs(s)
	if err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, errors.New("empty command")
	}
	return args, nil
}

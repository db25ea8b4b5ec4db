package source

import (
	"fmt"
	"path/filepath"
	"strings"
)

// BackendKind is the kind of source a jail reads from.
type BackendKind int

// Backend kinds. fail2ban's pyinotify, gamin and polling all mean "tail the
// log files" (palisade always uses fsnotify wake-ups plus polling).
const (
	BackendAuto BackendKind = iota
	BackendFile
	BackendSystemd
)

func (k BackendKind) String() string {
	switch k {
	case BackendAuto:
		return "auto"
	case BackendFile:
		return "file"
	case BackendSystemd:
		return "systemd"
	}
	return fmt.Sprintf("BackendKind(%d)", int(k))
}

// Backend is a parsed fail2ban `backend` value.
type Backend struct {
	Kind BackendKind
	// Name is the spelling given (lower-cased): auto, polling, pyinotify,
	// gamin or systemd.
	Name string
	// Options are the bracketed arguments, e.g. systemd[journalpath=/x]
	// gives {"journalpath": "/x"}. Known to the journal source:
	// journalpath (a directory), journalfiles (space-separated globs),
	// journalflags and namespace (accepted, ignored).
	Options map[string]string
}

// ParseBackend parses a fail2ban backend value: auto, polling, pyinotify,
// gamin or systemd, optionally followed by [name=value, ...] arguments.
func ParseBackend(s string) (Backend, error) {
	s = strings.TrimSpace(s)
	name, args := s, ""
	if i := strings.IndexByte(s, '['); i >= 0 {
		if !strings.HasSuffix(s, "]") {
			return Backend{}, fmt.Errorf("backend %q: missing closing ]", s)
		}
		name, args = strings.TrimSpace(s[:i]), s[i+1:len(s)-1]
	}
	b := Backend{Name: strings.ToLower(name), Options: map[string]string{}}
	switch b.Name {
	case "", "auto":
		b.Name, b.Kind = "auto", BackendAuto
	case "polling", "pyinotify", "gamin":
		b.Kind = BackendFile
	case "systemd":
		b.Kind = BackendSystemd
	default:
		return Backend{}, fmt.Errorf("unknown backend %q (want auto, polling, pyinotify, gamin or systemd)", name)
	}
	opts, err := parseOptions(args)
	if err != nil {
		return Backend{}, fmt.Errorf("backend %q: %w", s, err)
	}
	b.Options = opts
	return b, nil
}

// parseOptions splits `k=v, k2="v 2"` into a map. Values may be quoted with
// ' or " to hold commas.
func parseOptions(s string) (map[string]string, error) {
	out := map[string]string{}
	rest := strings.TrimSpace(s)
	for rest != "" {
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("option %q: want name=value", rest)
		}
		key := strings.TrimSpace(rest[:eq])
		rest = strings.TrimLeft(rest[eq+1:], " \t")
		var val string
		if rest != "" && (rest[0] == '"' || rest[0] == '\'') {
			end := strings.IndexByte(rest[1:], rest[0])
			if end < 0 {
				return nil, fmt.Errorf("option %q: unterminated quote", key)
			}
			val, rest = rest[1:1+end], strings.TrimLeft(rest[2+end:], " \t")
			if rest != "" && rest[0] != ',' {
				return nil, fmt.Errorf("option %q: text after closing quote", key)
			}
		} else {
			comma := strings.IndexByte(rest, ',')
			if comma < 0 {
				comma = len(rest)
			}
			val, rest = strings.TrimSpace(rest[:comma]), rest[comma:]
		}
		rest = strings.TrimSpace(strings.TrimPrefix(rest, ","))
		out[key] = val
	}
	return out, nil
}

// Resolve turns BackendAuto into BackendFile when at least one of logpaths
// names an existing file (a glob matching one), else into BackendSystemd.
// Other kinds are returned unchanged.
func (b Backend) Resolve(logpaths []string) BackendKind {
	if b.Kind != BackendAuto {
		return b.Kind
	}
	for _, p := range logpaths {
		if m, err := filepath.Glob(p); err == nil && len(m) > 0 {
			return BackendFile
		}
	}
	return BackendSystemd
}

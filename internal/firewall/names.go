package firewall

import (
	"fmt"
	"hash/fnv"
	"strings"
)

// MaxJailName is the longest jail name palisade accepts.
const MaxJailName = 64

// CheckJailName is palisade's one rule for jail names, applied by the
// configuration (with file:line) and, as a last line of defence, by every
// backend: 1 to MaxJailName characters, each an ASCII letter or digit or one
// of "-_.@:". Every name it accepts works on every backend: backends whose
// kernel objects allow fewer characters or shorter names map the name with
// ObjectName.
func CheckJailName(name string) error {
	if name == "" || len(name) > MaxJailName {
		return fmt.Errorf("jail name %q: must be 1 to %d characters", name, MaxJailName)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !objectChar(c) && c != '@' && c != ':' {
			return fmt.Errorf("jail name %q: character %q not allowed (letters, digits, - _ . @ :)", name, rune(c))
		}
	}
	return nil
}

// objectChar reports whether c may appear in a kernel object name as is
// (nftables sets and chains, ipsets, iptables chains, ufw comments).
func objectChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
}

// ObjectName maps a jail name to at most max characters of letters, digits
// and "-_.", for the name of a kernel object. A name that already fits is
// returned unchanged (so existing kernel state keeps its names); any other
// name becomes its first max-8 characters (others replaced by "_") and a
// hash of the whole name in 8 hex digits. max must be at least 9.
func ObjectName(jail string, max int) string {
	fits := len(jail) <= max
	for i := 0; fits && i < len(jail); i++ {
		fits = objectChar(jail[i])
	}
	if fits {
		return jail
	}
	h := fnv.New32a()
	h.Write([]byte(jail))
	sum := fmt.Sprintf("%08x", h.Sum32())
	keep := min(len(jail), max-len(sum))
	var b strings.Builder
	for i := 0; i < keep; i++ {
		if c := jail[i]; objectChar(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	b.WriteString(sum)
	return b.String()
}

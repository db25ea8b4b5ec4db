package cloudflare

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// JailLog names a web jail and its log files (logpath patterns).
type JailLog struct {
	Jail  string
	Paths []string
}

// Bounds of the real-IP check.
const (
	realIPTail     = 64 << 10 // bytes read from the end of each file
	realIPFiles    = 16       // files per jail
	realIPMinLines = 10       // lines with an address needed to judge
)

// CheckRealIP reads the end of each jail's log files and warns about a
// jail whose recent lines show Cloudflare's addresses only: the web server
// logs the proxy instead of the visitor (real-IP is not set up), so the
// jail can never ban an attacker. The first public address of each line
// counts; loopback and private addresses are skipped.
func CheckRealIP(jails []JailLog, l List) []string {
	var out []string
	for _, j := range jails {
		cf, other := 0, 0
		var file string
		files := 0
		for _, pat := range j.Paths {
			matches, err := filepath.Glob(pat)
			if err != nil {
				continue
			}
			for _, f := range matches {
				if files == realIPFiles {
					break
				}
				files++
				c, o := countAddrs(f, l)
				if c > 0 && file == "" {
					file = f
				}
				cf, other = cf+c, other+o
			}
		}
		if cf >= realIPMinLines && other == 0 {
			out = append(out, fmt.Sprintf("jail %s: the last %d addresses in %s are all Cloudflare's: the web server logs the proxy, not the visitor, so the jail cannot ban attackers; set up real-IP (palisade cloudflare real-ip nginx|apache)", j.Jail, cf, file))
		}
	}
	return out
}

func countAddrs(path string, l List) (cf, other int) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	cut := false
	if fi, err := f.Stat(); err == nil && fi.Size() > realIPTail {
		if _, err := f.Seek(-realIPTail, io.SeekEnd); err != nil {
			return 0, 0
		}
		cut = true
	}
	b, err := io.ReadAll(io.LimitReader(f, realIPTail))
	if err != nil {
		return 0, 0
	}
	lines := strings.Split(string(b), "\n")
	if cut && len(lines) > 1 {
		lines = lines[1:] // the first is cut
	}
	for _, line := range lines {
		a, ok := firstPublicAddr(line)
		if !ok {
			continue
		}
		if _, in := l.Contains(a); in {
			cf++
		} else {
			other++
		}
	}
	return cf, other
}

// firstPublicAddr returns the first token of line that is a public IP
// address.
func firstPublicAddr(line string) (netip.Addr, bool) {
	tokens := strings.FieldsFunc(line, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F' || r == '.' || r == ':')
	})
	for _, t := range tokens {
		if !strings.ContainsAny(t, ".:") || len(t) < 7 {
			continue
		}
		t = strings.Trim(t, ":.")
		a, err := netip.ParseAddr(t)
		if i := strings.LastIndexByte(t, ':'); err != nil && i > 0 && strings.Contains(t[:i], ".") {
			a, err = netip.ParseAddr(t[:i]) // address:port
		}
		if err != nil {
			continue
		}
		a = a.Unmap()
		if a.IsLoopback() || a.IsPrivate() || a.IsUnspecified() || a.IsLinkLocalUnicast() || a.IsMulticast() {
			continue
		}
		return a, true
	}
	return netip.Addr{}, false
}

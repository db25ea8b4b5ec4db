package firewall

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Services maps service names to port numbers, as read from /etc/services.
// Keys are "name/proto" (for example "ssh/tcp"); aliases are included.
type Services map[string]uint16

// maxServicesSize bounds how much of a services file is read.
const maxServicesSize = 4 << 20

// LoadServices reads a services(5) file. path is the full, already
// root-prefixed path (DIR/etc/services under --root DIR). A missing file is an
// error; callers that want "numbers only" pass a nil Services to ParsePorts.
func LoadServices(path string) (Services, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read services: %w", err)
	}
	defer f.Close()
	s, err := ParseServices(io.LimitReader(f, maxServicesSize))
	if err != nil {
		return nil, fmt.Errorf("read services %s: %w", path, err)
	}
	return s, nil
}

// ParseServices parses services(5) text: "name port/proto [aliases...] [# comment]".
// Malformed lines are skipped, as the C library does.
func ParseServices(r io.Reader) (Services, error) {
	s := Services{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		portStr, proto, ok := strings.Cut(fields[1], "/")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			continue
		}
		proto = strings.ToLower(proto)
		for _, name := range append([]string{fields[0]}, fields[2:]...) {
			key := strings.ToLower(name) + "/" + proto
			if _, dup := s[key]; !dup { // first definition wins, like getservbyname
				s[key] = uint16(n)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return s, nil
}

// Lookup resolves a service name for a protocol ("tcp", "udp", "sctp"). For
// any other protocol (such as "all") tcp, then udp, is tried.
func (s Services) Lookup(name, proto string) (uint16, bool) {
	if s == nil {
		return 0, false
	}
	name = strings.ToLower(name)
	switch proto {
	case "tcp", "udp", "sctp", "dccp":
		p, ok := s[name+"/"+proto]
		return p, ok
	}
	if p, ok := s[name+"/tcp"]; ok {
		return p, true
	}
	p, ok := s[name+"/udp"]
	return p, ok
}

// ParsePorts parses a fail2ban port specification such as "ssh",
// "http,https", "ssh,2222,8000:8100", "0:65535" or "all". Items are separated
// by commas (spaces around them are ignored); a range is "A:B" (or "A-B" with
// numeric ends); names are resolved through services for proto. The result is
// sorted and merged; an empty result (nil) means every port, which is what
// "all", "any", "" and the full range "0:65535" / "1:65535" give.
// Errors name the offending item.
func ParsePorts(spec string, proto string, services Services) ([]PortRange, error) {
	spec = strings.TrimSpace(spec)
	switch strings.ToLower(spec) {
	case "", "all", "any":
		return nil, nil
	}
	var out []PortRange
	for _, raw := range strings.Split(spec, ",") {
		tok := strings.TrimSpace(raw)
		if tok == "" {
			return nil, fmt.Errorf("port list %q: empty item", spec)
		}
		r, err := parsePortItem(tok, proto, services)
		if err != nil {
			return nil, fmt.Errorf("port list %q: item %q: %w", spec, tok, err)
		}
		out = append(out, r)
	}
	out = MergePorts(out)
	if len(out) == 1 && out[0].From <= 1 && out[0].To == 65535 {
		return nil, nil
	}
	return out, nil
}

func parsePortItem(tok, proto string, services Services) (PortRange, error) {
	if strings.ContainsAny(tok, " \t") {
		return PortRange{}, fmt.Errorf("unexpected space (separate ports with commas)")
	}
	lo, hi, isRange := strings.Cut(tok, ":")
	if !isRange {
		// "8000-8100" is a range only when both ends are numbers, since
		// service names may contain dashes ("ms-sql-s").
		if a, b, ok := strings.Cut(tok, "-"); ok && isDigits(a) && isDigits(b) {
			lo, hi, isRange = a, b, true
		}
	}
	from, err := portValue(lo, proto, services)
	if err != nil {
		return PortRange{}, err
	}
	if !isRange {
		return PortRange{From: from, To: from}, nil
	}
	to, err := portValue(hi, proto, services)
	if err != nil {
		return PortRange{}, err
	}
	if from > to {
		return PortRange{}, fmt.Errorf("range start %d is above its end %d", from, to)
	}
	return PortRange{From: from, To: to}, nil
}

func portValue(s, proto string, services Services) (uint16, error) {
	if s == "" {
		return 0, fmt.Errorf("missing port")
	}
	if isDigits(s) {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("port %s out of range 0-65535", s)
		}
		return uint16(n), nil
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '+') {
			return 0, fmt.Errorf("invalid character %q in port name %q", c, s)
		}
	}
	if p, ok := services.Lookup(s, proto); ok {
		return p, nil
	}
	return 0, fmt.Errorf("unknown service name %q", s)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// MergePorts sorts ranges and merges overlapping or adjacent ones.
func MergePorts(in []PortRange) []PortRange {
	if len(in) == 0 {
		return nil
	}
	rs := slices.Clone(in)
	slices.SortFunc(rs, func(a, b PortRange) int {
		if a.From != b.From {
			return int(a.From) - int(b.From)
		}
		return int(a.To) - int(b.To)
	})
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if uint32(r.From) <= uint32(last.To)+1 {
			last.To = max(last.To, r.To)
			continue
		}
		out = append(out, r)
	}
	return out
}

// FormatPorts renders ranges the way iptables multiport and fail2ban write
// them ("22,8000:8100"); nil renders as "0:65535".
func FormatPorts(rs []PortRange) string {
	if len(rs) == 0 {
		return "0:65535"
	}
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		if r.From == r.To {
			parts = append(parts, strconv.Itoa(int(r.From)))
		} else {
			parts = append(parts, strconv.Itoa(int(r.From))+":"+strconv.Itoa(int(r.To)))
		}
	}
	return strings.Join(parts, ",")
}

// GroupPorts splits merged ranges into groups that fit a limit of max
// ports per rule, a range counting as two (iptables multiport and ufw both
// take at most 15).
func GroupPorts(rs []PortRange, max int) [][]PortRange {
	var out [][]PortRange
	var cur []PortRange
	used := 0
	for _, r := range rs {
		cost := 1
		if r.From != r.To {
			cost = 2
		}
		if used+cost > max && len(cur) > 0 {
			out = append(out, cur)
			cur, used = nil, 0
		}
		cur = append(cur, r)
		used += cost
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

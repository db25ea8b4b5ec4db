package datetime

import (
	"strings"
	"unicode/utf8"
)

// Hand-written matchers for the two hottest default templates (ISO 8601 and
// syslog stamps anchored at the line start). Each follows the template regex's
// first-choice path and answers only when that path provably is the regex
// result; anything unusual (non-ASCII text near the stamp, a failed boundary
// that would make the regex backtrack, odd field widths) is reported as
// fastUnsure and the regex decides. TestFastPathAgreesWithRegex checks this.

type fastResult uint8

const (
	fastUnsure fastResult = iota
	fastMatch
	fastNoMatch
)

// fastKind selects a hand-written matcher (a switch, not a func value, so the
// match result stays on the stack).
type fastKind uint8

const (
	fastNone fastKind = iota
	fastKindISO
	fastKindSyslog
	fastKindCLF
	fastKindEpoch
)

func (d *Detector) runFast(k fastKind, line string, m *tmatch) fastResult {
	switch k {
	case fastKindISO:
		return fastISO(line, d.exyLo, d.exyHi, m)
	case fastKindSyslog:
		return fastSyslog(line, d.exyLo, d.exyHi, m)
	case fastKindCLF:
		return d.fastCLF(line, m)
	case fastKindEpoch:
		return fastEpoch(line, m)
	}
	return fastUnsure
}

// attachFastPaths installs the fast matchers on templates whose regex is
// exactly one of the anchored default templates they implement.
func (d *Detector) attachFastPaths() {
	full := d.defaults()
	var isoRE, syslogRE, epochRE string
	for _, t := range full {
		switch t.name {
		case "{^LN-BEG}Epoch":
			epochRE = t.regex
		case "{^LN-BEG}ExYear(?P<_sep>[-/.])Month(?P=_sep)Day(?:T|  ?)24hour:Minute:Second(?:[.,]Microseconds)?(?:\\s*Zone offset)?":
			isoRE = t.regex
		case "{^LN-BEG}(?:DAY )?MON Day %k:Minute:Second(?:\\.Microseconds)?(?: ExYear)?":
			syslogRE = t.regex
		}
	}
	// the Apache/CLF default template inside fail2ban's usual web-log
	// datepattern ^[^\[]*\[({DATE})
	clfRE := ""
	for _, t := range defaultOriginals(d.table) {
		if t.name == "Day(?P<_sep>[-/])MON(?P=_sep)ExYear[ :]?24hour:Minute:Second(?:\\.Microseconds)?(?: Zone offset)?" {
			w := replaceDateMarker(clfPreMatch, unboundPattern(t.pattern))
			if ct, err := newTemplateFor(w, patternKey(w), d.table); err == nil {
				clfRE = ct.regex
			}
		}
	}
	d.exyLo, d.exyHi = yearCenturyRange(d.table)
	for _, e := range d.tpls {
		switch {
		case e.t.regex == isoRE && isoRE != "":
			e.t.fast = fastKindISO
		case e.t.regex == syslogRE && syslogRE != "":
			e.t.fast = fastKindSyslog
		case e.t.regex == clfRE && clfRE != "":
			e.t.fast = fastKindCLF
		case e.t.regex == epochRE && epochRE != "" && e.t.kind == kindEpoch && !e.t.long:
			e.t.fast = fastKindEpoch
		}
	}
}

// yearCenturyRange returns the %ExY century bounds (e.g. 200..202).
func yearCenturyRange(table map[string]directive) (int, int) {
	re := table["ExY"].re // (?P<Y>20[0-N]\d)
	const pre = "(?P<Y>20[0-"
	if len(re) > len(pre)+1 && re[:len(pre)] == pre && isDigit(re[len(pre)]) {
		return 200, 200 + int(re[len(pre)]-'0')
	}
	return 1, 0 // unknown form: the fast paths never accept a year
}

func isASCIIWord(c byte) bool {
	return c == '_' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// linePrefix handles "^(?:\W{0,2})?": it returns where the stamp must start,
// ok=false with a definite answer when no start is possible, or unsure.
func linePrefix(line string, first func(c byte) bool) (int, fastResult) {
	k := 0
	for k < len(line) && k < 3 {
		c := line[k]
		if c >= utf8.RuneSelf {
			return 0, fastUnsure
		}
		if isASCIIWord(c) {
			break
		}
		k++
	}
	if k >= 3 || k >= len(line) {
		return 0, fastNoMatch
	}
	if !first(line[k]) {
		return 0, fastNoMatch
	}
	return k, fastMatch
}

// nonWordAt: true when position i is the end or an ASCII non-word char; unsure
// (ok=false) for non-ASCII.
func nonWordAt(line string, i int) (bool, bool) {
	if i >= len(line) {
		return true, true
	}
	c := line[i]
	if c >= utf8.RuneSelf {
		return false, false
	}
	return !isASCIIWord(c), true
}

func digitAt(line string, i int) bool { return i < len(line) && isDigit(line[i]) }

func byteAt(line string, i int) byte {
	if i < len(line) {
		return line[i]
	}
	return 0
}

// twoOrOne parses a 1- or 2-digit number whose 2-digit form must have its first
// digit <= maxFirst, followed by the byte sep. Returns the length or 0.
func twoOrOne(line string, i int, maxFirst byte, sep byte) int {
	if !digitAt(line, i) {
		return 0
	}
	if line[i] <= maxFirst && digitAt(line, i+1) && byteAt(line, i+2) == sep {
		return 2
	}
	if byteAt(line, i+1) == sep {
		return 1
	}
	return 0
}

// secondsTail parses the seconds and what may follow them up to the fraction:
// S is "[0-5]?\d" first choice. Returns the end of S or 0.
// clock24 parses `HH:MM:SS` at i with the hour as `[0-1]?\d|2[0-3]`, the
// minute as `[0-5]?\d` and the seconds as secondsLen allows, storing them in
// m; it returns the index after the seconds.
func clock24(line string, i int, m *tmatch) (int, bool) {
	var n int
	c0, c1 := byteAt(line, i), byteAt(line, i+1)
	switch {
	case (c0 == '0' || c0 == '1') && isDigit(c1) && byteAt(line, i+2) == ':':
		n = 2
	case isDigit(c0) && c1 == ':':
		n = 1
	case c0 == '2' && c1 >= '0' && c1 <= '3' && byteAt(line, i+2) == ':':
		n = 2
	default:
		return i, false
	}
	m.parts.hour = num(line[i : i+n])
	i += n + 1
	if n = twoOrOne(line, i, '5', ':'); n == 0 {
		return i, false
	}
	m.parts.minute = num(line[i : i+n])
	i += n + 1
	if n = secondsLen(line, i); n == 0 {
		return i, false
	}
	m.parts.second = num(line[i : i+n])
	return i + n, true
}

func secondsLen(line string, i int) int {
	if !digitAt(line, i) {
		return 0
	}
	if line[i] <= '5' && digitAt(line, i+1) {
		return 2
	}
	if digitAt(line, i+1) {
		return 0 // 6x..9x: the regex would backtrack; let it decide
	}
	return 1
}

// fraction parses "[.,]\d{1,6}" (seps lists the accepted separators) and
// returns the new end, or unsure when more than six digits follow.
func fraction(line string, i int, seps string, m *tmatch) (int, bool) {
	c := byteAt(line, i)
	if c == 0 || (c != seps[0] && (len(seps) < 2 || c != seps[1])) || !digitAt(line, i+1) {
		return i, true
	}
	j := i + 1
	for j < len(line) && isDigit(line[j]) {
		j++
	}
	if j-(i+1) > 6 {
		return i, false
	}
	return j, true
}

// num parses the ASCII digits of s (a leading space is allowed: " 4").
func num(s string) int {
	v := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			v = v*10 + int(s[i]-'0')
		}
	}
	return v
}

// monthNum returns 1..12 for a case-insensitive English month abbreviation.
func monthNum(s string) int {
	if len(s) != 3 {
		return 0
	}
	k := uint32(s[0]|0x20)<<16 | uint32(s[1]|0x20)<<8 | uint32(s[2]|0x20)
	switch k {
	case 'j'<<16 | 'a'<<8 | 'n':
		return 1
	case 'f'<<16 | 'e'<<8 | 'b':
		return 2
	case 'm'<<16 | 'a'<<8 | 'r':
		return 3
	case 'a'<<16 | 'p'<<8 | 'r':
		return 4
	case 'm'<<16 | 'a'<<8 | 'y':
		return 5
	case 'j'<<16 | 'u'<<8 | 'n':
		return 6
	case 'j'<<16 | 'u'<<8 | 'l':
		return 7
	case 'a'<<16 | 'u'<<8 | 'g':
		return 8
	case 's'<<16 | 'e'<<8 | 'p':
		return 9
	case 'o'<<16 | 'c'<<8 | 't':
		return 10
	case 'n'<<16 | 'o'<<8 | 'v':
		return 11
	case 'd'<<16 | 'e'<<8 | 'c':
		return 12
	}
	return 0
}

// isWeekdayAbbr reports a case-insensitive English weekday abbreviation.
func isWeekdayAbbr(s string) bool {
	if len(s) != 3 {
		return false
	}
	switch string([]byte{s[0] | 0x20, s[1] | 0x20, s[2] | 0x20}) {
	case "mon", "tue", "wed", "thu", "fri", "sat", "sun":
		return true
	}
	return false
}

func exYear(line string, i, lo, hi int) bool {
	if i+4 > len(line) || !digitAt(line, i) || !digitAt(line, i+1) || !digitAt(line, i+2) || !digitAt(line, i+3) {
		return false
	}
	c := int(line[i]-'0')*100 + int(line[i+1]-'0')*10 + int(line[i+2]-'0')
	return c >= lo && c <= hi
}

func isSpaceByte(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// fastISO implements the anchored template
// ^(?:\W{0,2})?(%ExY<sep>%m<sep>%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?)(?=\b|\W|$)
func fastISO(line string, lo, hi int, m *tmatch) fastResult {
	k, r := linePrefix(line, isDigit)
	if r != fastMatch {
		return r
	}
	m.nf = 0
	m.parts = newParts()
	i := k
	if !exYear(line, i, lo, hi) {
		return fastUnsure
	}
	m.parts.year = num(line[i : i+4])
	i += 4
	sep := byteAt(line, i)
	if sep != '-' && sep != '/' && sep != '.' {
		return fastUnsure
	}
	i++
	// month: 0?[1-9] | 1[0-2], followed by sep
	var n int
	switch {
	case digitAt(line, i) && digitAt(line, i+1) && byteAt(line, i+2) == sep:
		v := int(line[i]-'0')*10 + int(line[i+1]-'0')
		if v < 1 || v > 12 {
			return fastUnsure
		}
		n = 2
	case digitAt(line, i) && line[i] != '0' && byteAt(line, i+1) == sep:
		n = 1
	default:
		return fastUnsure
	}
	m.parts.month = num(line[i : i+n])
	i += n + 1
	// day: [1-2]\d | [0 ]?[1-9] | 3[0-1], followed by 'T' or ' '
	dayEnd := func(j int) bool { c := byteAt(line, j); return c == 'T' || c == ' ' }
	c0, c1 := byteAt(line, i), byteAt(line, i+1)
	switch {
	case (c0 == '1' || c0 == '2') && isDigit(c1) && dayEnd(i+2):
		n = 2
	case (c0 == '0' || c0 == ' ') && c1 >= '1' && c1 <= '9' && dayEnd(i+2):
		n = 2
	case c0 >= '1' && c0 <= '9' && dayEnd(i+1):
		n = 1
	case c0 == '3' && (c1 == '0' || c1 == '1') && dayEnd(i+2):
		n = 2
	default:
		return fastUnsure
	}
	m.parts.day = num(line[i : i+n])
	i += n
	// (?:T|  ?)
	if line[i] == 'T' {
		i++
	} else {
		i++
		if byteAt(line, i) == ' ' {
			i++
		}
	}
	i, ok := clock24(line, i, m)
	if !ok {
		return fastUnsure
	}
	end, ok := fraction(line, i, ".,", m)
	if !ok {
		return fastUnsure
	}
	// (?:\s*%z)?
	j := end
	for j < len(line) && isSpaceByte(line[j]) {
		j++
	}
	if j < len(line) && (line[j] < utf8.RuneSelf && line[j] >= 0x1c && line[j] <= 0x1f || line[j] >= utf8.RuneSelf) {
		return fastUnsure
	}
	if zl := zoneLen(line, j); zl > 0 {
		o, ok := zoneOffsetMinutes(line[j : j+zl])
		if !ok {
			return fastUnsure
		}
		m.parts.tzoff = o
		end = j + zl
	}
	nw, ok := nonWordAt(line, end)
	if !ok || !nw {
		return fastUnsure
	}
	m.start, m.end = 0, end
	m.g1s, m.g1e = k, end
	return fastMatch
}

// zoneLen matches Z|UTC|GMT|[+-][01]\d(?::?\d{2})? (case-sensitive) at i.
func zoneLen(line string, i int) int {
	c := byteAt(line, i)
	switch c {
	case 'Z':
		return 1
	case 'U':
		if len(line) >= i+3 && line[i:i+3] == "UTC" {
			return 3
		}
	case 'G':
		if len(line) >= i+3 && line[i:i+3] == "GMT" {
			return 3
		}
	case '+', '-':
		if (byteAt(line, i+1) == '0' || byteAt(line, i+1) == '1') && digitAt(line, i+2) {
			if byteAt(line, i+3) == ':' && digitAt(line, i+4) && digitAt(line, i+5) {
				return 6
			}
			if digitAt(line, i+3) && digitAt(line, i+4) {
				return 5
			}
			return 3
		}
	}
	return 0
}

func isLetter(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }

// fastSyslog implements the anchored template (case-insensitive names)
// ^(?:\W{0,2})?((?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?)(?=\b|\W|$)
func fastSyslog(line string, lo, hi int, m *tmatch) fastResult {
	k, r := linePrefix(line, isLetter)
	if r != fastMatch {
		return r
	}
	m.nf = 0
	m.parts = newParts()
	i := k
	if len(line) >= i+4 && line[i+3] == ' ' && isWeekdayAbbr(line[i:i+3]) {
		// the weekday only matters without a month: ignored like fail2ban
		i += 4
	}
	if len(line) < i+4 || line[i+3] != ' ' {
		return fastUnsure
	}
	if m.parts.month = monthNum(line[i : i+3]); m.parts.month == 0 {
		return fastUnsure
	}
	i += 4
	c0, c1, c2 := byteAt(line, i), byteAt(line, i+1), byteAt(line, i+2)
	n := 0
	switch {
	case (c0 == '1' || c0 == '2') && isDigit(c1) && c2 == ' ':
		n = 2
	case (c0 == '0' || c0 == ' ') && c1 >= '1' && c1 <= '9' && c2 == ' ':
		n = 2
	case c0 >= '1' && c0 <= '9' && c1 == ' ':
		n = 1
	case c0 == '3' && (c1 == '0' || c1 == '1') && c2 == ' ':
		n = 2
	default:
		return fastUnsure
	}
	m.parts.day = num(line[i : i+n])
	i += n + 1
	if byteAt(line, i) == ' ' {
		i++
	}
	// hour: [0-2]?\d followed by ':'
	if n = twoOrOne(line, i, '2', ':'); n == 0 {
		return fastUnsure
	}
	m.parts.hour = num(line[i : i+n])
	i += n + 1
	if n = twoOrOne(line, i, '5', ':'); n == 0 {
		return fastUnsure
	}
	m.parts.minute = num(line[i : i+n])
	i += n + 1
	if n = secondsLen(line, i); n == 0 {
		return fastUnsure
	}
	m.parts.second = num(line[i : i+n])
	i += n
	end, ok := fraction(line, i, ".", m)
	if !ok {
		return fastUnsure
	}
	if byteAt(line, end) == ' ' && exYear(line, end+1, lo, hi) {
		m.parts.year = num(line[end+1 : end+5])
		end += 5
	}
	nw, ok := nonWordAt(line, end)
	if !ok || !nw {
		return fastUnsure
	}
	m.start, m.end = 0, end
	m.g1s, m.g1e = k, end
	return fastMatch
}

// clfPreMatch is the datepattern prefix of fail2ban's web-server filters.
const clfPreMatch = `^[^\[]*\[({DATE})`

// fastCLF implements the template ^[^\[]*\[(%d<sep>%b<sep>%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?)(?=\b|\W|$)
// (case-insensitive): the date right after the first '[' of the line.
func (d *Detector) fastCLF(line string, m *tmatch) fastResult {
	k := strings.IndexByte(line, '[')
	if k < 0 {
		return fastNoMatch
	}
	m.nf = 0
	m.parts = newParts()
	i := k + 1
	// day: [1-2]\d | [0 ]?[1-9] | 3[0-1], followed by '-' or '/'
	isSep := func(c byte) bool { return c == '-' || c == '/' }
	c0, c1, c2 := byteAt(line, i), byteAt(line, i+1), byteAt(line, i+2)
	n := 0
	switch {
	case (c0 == '1' || c0 == '2') && isDigit(c1) && isSep(c2):
		n = 2
	case (c0 == '0' || c0 == ' ') && c1 >= '1' && c1 <= '9' && isSep(c2):
		n = 2
	case c0 >= '1' && c0 <= '9' && isSep(c1):
		n = 1
	case c0 == '3' && (c1 == '0' || c1 == '1') && isSep(c2):
		n = 2
	default:
		return fastUnsure
	}
	m.parts.day = num(line[i : i+n])
	i += n
	sep := line[i]
	i++
	if len(line) < i+4 || line[i+3] != sep {
		return fastUnsure
	}
	if m.parts.month = monthNum(line[i : i+3]); m.parts.month == 0 {
		return fastUnsure
	}
	i += 4
	if !exYear(line, i, d.exyLo, d.exyHi) {
		return fastUnsure
	}
	m.parts.year = num(line[i : i+4])
	i += 4
	if c := byteAt(line, i); c == ' ' || c == ':' {
		i++
	}
	i, ok := clock24(line, i, m)
	if !ok {
		return fastUnsure
	}
	end, ok := fraction(line, i, ".", m)
	if !ok {
		return fastUnsure
	}
	if byteAt(line, end) == ' ' {
		if zl := zoneLen(line, end+1); zl > 0 {
			o, ok := zoneOffsetMinutes(line[end+1 : end+1+zl])
			if !ok {
				return fastUnsure
			}
			m.parts.tzoff = o
			end += 1 + zl
		} else if c := byteAt(line, end+1) | 0x20; c == 'z' || c == 'u' || c == 'g' {
			return fastUnsure // maybe a zone word in another case: let the regex decide
		}
	}
	nw, ok := nonWordAt(line, end)
	if !ok || !nw {
		return fastUnsure
	}
	m.start = 0
	m.end = d.runeIndexOf(line, end)
	m.g1s, m.g1e = k+1, end
	return fastMatch
}

// runeIndexOf converts a byte offset of line to a rune index without
// allocating.
func (d *Detector) runeIndexOf(line string, b int) int {
	for i := 0; i < b; i++ {
		if line[i] >= utf8.RuneSelf {
			return utf8.RuneCountInString(line[:b])
		}
	}
	return b
}

// fastEpoch implements the line-anchored EPOCH template
// ^(?:\W{0,2})?((?P<square>(?<=^\[))?\d{10,11}\b(?:\.\d{3,6})?)(?(square)(?=\]))(?=\b|\W|$)
func fastEpoch(line string, m *tmatch) fastResult {
	k, r := linePrefix(line, isDigit)
	if r != fastMatch {
		return r
	}
	square := k == 1 && line[0] == '['
	i := k
	for i < len(line) && isDigit(line[i]) {
		i++
	}
	if n := i - k; n != 10 && n != 11 {
		return fastUnsure
	}
	end := i
	if byteAt(line, i) == '.' {
		j := i + 1
		for j < len(line) && isDigit(line[j]) {
			j++
		}
		switch f := j - (i + 1); {
		case f > 6:
			return fastUnsure
		case f >= 3:
			end = j
		}
	}
	if square && byteAt(line, end) != ']' {
		return fastUnsure // the regex would retry without the bracket
	}
	nw, ok := nonWordAt(line, end)
	if !ok || !nw {
		return fastUnsure
	}
	m.nf = 0
	m.epoch = line[k:end]
	m.start, m.end = 0, end
	m.g1s, m.g1e = k, end
	return fastMatch
}

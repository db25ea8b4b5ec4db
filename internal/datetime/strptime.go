package datetime

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// fieldKey identifies a strptime field that takes part in the time computation.
type fieldKey uint8

const (
	fNone fieldKey = iota
	fYear2
	fYear
	fMonth
	fMonthName
	fMonthAbbr
	fDay
	fHour
	fHour12
	fMinute
	fSecond
	fFraction
	fWeekdayName
	fWeekdayAbbr
	fWeekdayNum
	fYearday
	fWeekU
	fWeekW
	fZoneOffset
	fZoneName
	fAMPM
)

// keyOfGroup maps a regex group name (the strptime letter fail2ban uses as group
// name) to the field it fills. Unknown names are ignored, like fail2ban does.
func keyOfGroup(name string) fieldKey {
	switch name {
	case "y":
		return fYear2
	case "Y":
		return fYear
	case "m":
		return fMonth
	case "B":
		return fMonthName
	case "b":
		return fMonthAbbr
	case "d":
		return fDay
	case "H":
		return fHour
	case "I":
		return fHour12
	case "M":
		return fMinute
	case "S":
		return fSecond
	case "f":
		return fFraction
	case "A":
		return fWeekdayName
	case "a":
		return fWeekdayAbbr
	case "w":
		return fWeekdayNum
	case "j":
		return fYearday
	case "U":
		return fWeekU
	case "W":
		return fWeekW
	case "z":
		return fZoneOffset
	case "Z":
		return fZoneName
	case "p":
		return fAMPM
	}
	return fNone
}

// field is one captured strptime value (text of the line, not copied).
type field struct {
	k fieldKey
	v string
}

var (
	monthAbbr   = [...]string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
	monthFull   = [...]string{"january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"}
	weekdayAbbr = [...]string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
	weekdayFull = [...]string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
)

// foldIndex returns the index of s in list comparing ASCII case-insensitively
// (the names are matched by a case-insensitive regex), -1 if absent.
func foldIndex(list []string, s string) int {
	for i, n := range list {
		if len(n) != len(s) {
			continue
		}
		ok := true
		for j := 0; j < len(s); j++ {
			c := s[j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != n[j] {
				ok = false
				break
			}
		}
		if ok {
			return i
		}
	}
	return -1
}

// digitValue returns the decimal value of a Unicode decimal digit (Python's int()
// accepts any of them; \d in the templates matches them too).
func digitValue(r rune) int {
	if '0' <= r && r <= '9' {
		return int(r - '0')
	}
	if !unicode.IsDigit(r) {
		return -1
	}
	// Decimal digit runs are contiguous blocks of ten starting at a zero.
	start := r
	for n := 0; n < 100 && unicode.IsDigit(start-1); n++ {
		start--
	}
	return int(r-start) % 10
}

// pyInt converts like Python's int(str) for the texts the templates capture:
// optional surrounding whitespace, optional sign, decimal digits.
func pyInt(s string) (int, bool) {
	s = strings.TrimSpace(s)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" {
		return 0, false
	}
	v := 0
	for i := 0; i < len(s); {
		c := s[i]
		var d int
		if c < utf8.RuneSelf {
			if c < '0' || c > '9' {
				return 0, false
			}
			d = int(c - '0')
			i++
		} else {
			r, n := utf8.DecodeRuneInString(s[i:])
			d = digitValue(r)
			if d < 0 {
				return 0, false
			}
			i += n
		}
		v = v*10 + d
		if v > 1<<40 {
			return 0, false
		}
	}
	if neg {
		v = -v
	}
	return v, true
}

// ParseZone reads a fail2ban logtimezone value - "UTC", "GMT", "Z", a zone
// abbreviation from fail2ban's fixed table ("CET" is always +01:00), an
// offset "[+-]hh[[:]mm]", or both ("UTC+0200", "CET-01") - as a fixed zone.
func ParseZone(s string) (*time.Location, error) {
	o, ok := zoneOffsetMinutes(s)
	if !ok || s == "" {
		return nil, fmt.Errorf("unknown or unsupported time zone %q", s)
	}
	return time.FixedZone(s, o*60), nil
}

// zoneOffsetMinutes implements fail2ban's fixed-offset zone reading: an optional
// abbreviation from a fixed table plus an optional [+-]hh[[:]mm] offset.
func zoneOffsetMinutes(z string) (int, bool) {
	if z == "Z" || z == "UTC" || z == "GMT" {
		return 0, true
	}
	// abbreviation: [A-Z] or [A-Z]{3,5}
	i := 0
	for i < len(z) && i < 5 && 'A' <= z[i] && z[i] <= 'Z' {
		i++
	}
	abbr := z[:i]
	switch len(abbr) {
	case 0, 1, 3, 4, 5:
	default: // two letters: only the first one can be the abbreviation
		abbr = abbr[:1]
		i = 1
	}
	rest := z[i:]
	base := 0
	if abbr != "" {
		o, ok := zoneAbbrOffsets[abbr]
		if !ok {
			return 0, false
		}
		base = o
	}
	if rest == "" {
		return base, true
	}
	// [+-][01]\d(?::?\d{2})? where \d is any Unicode decimal digit
	if len(rest) < 3 || (rest[0] != '+' && rest[0] != '-') || (rest[1] != '0' && rest[1] != '1') {
		return 0, false
	}
	sign := 1
	if rest[0] == '-' {
		sign = -1
	}
	var rs [5]rune
	n := 0
	for _, r := range rest[2:] {
		if n == len(rs) {
			return 0, false
		}
		rs[n] = r
		n++
	}
	dv := func(i int) int { return digitValue(rs[i]) }
	if n == 0 || dv(0) < 0 {
		return 0, false
	}
	hh := int(rest[1]-'0')*10 + dv(0)
	switch {
	case n == 1:
		return base + sign*hh*60, true
	case n == 3 && dv(1) >= 0 && dv(2) >= 0:
		return base + sign*(hh*60+dv(1)*10+dv(2)), true
	case n == 4 && rs[1] == ':' && dv(2) >= 0 && dv(3) >= 0:
		return base + sign*(hh*60+dv(2)*10+dv(3)), true
	}
	return 0, false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// zoneAbbrOffsets is the fixed abbreviation table fail2ban uses (minutes east
// of UTC; no DST switching: CET is always +1, CEST always +2).
var zoneAbbrOffsets = func() map[string]int {
	m := map[string]int{}
	add := func(min int, names string) {
		for _, n := range strings.Fields(names) {
			m[n] = min
		}
	}
	add(-12*60, "Y")
	add(-11*60, "X NUT SST")
	add(-10*60, "W CKT HAST HST TAHT TKT")
	add(-9*60, "V AKST GAMT GIT HADT HNY")
	add(-8*60, "U AKDT CIST HAY HNP PST PT")
	add(-7*60, "T HAP HNR MST PDT")
	add(-6*60, "S CST EAST GALT HAR HNC MDT")
	add(-5*60, "R CDT COT EASST ECT EST ET HAC HNE PET")
	add(-4*60, "Q AST BOT CLT COST EDT FKT GYT HAE HNA PYT")
	add(-3*60, "P ADT ART BRT CLST FKST GFT HAA PMST PYST SRT UYT WGT")
	add(-2*60, "O BRST FNT PMDT UYST WGST")
	add(-1*60, "N AZOT CVT EGT")
	add(0, "Z EGST GMT UTC WET WT")
	add(1*60, "A CET DFT WAT WEDT WEST")
	add(2*60, "B CAT CEDT CEST EET SAST WAST")
	add(3*60, "C EAT EEDT EEST IDT MSK")
	add(4*60, "D AMT AZT GET GST KUYT MSD MUT RET SAMT SCT")
	add(5*60, "E AMST AQTT AZST HMT MAWT MVT PKT TFT TJT TMT UZT YEKT")
	add(6*60, "F ALMT BIOT BTT IOT KGT NOVT OMST YEKST")
	add(7*60, "G CXT DAVT HOVT ICT KRAT NOVST OMSST THA WIB")
	add(8*60, "H ACT AWST BDT BNT CAST HKT IRKT KRAST MYT PHT SGT ULAT WITA WST")
	add(9*60, "I AWDT IRKST JST KST PWT TLT WDT WIT YAKT")
	add(10*60, "K AEST ChST PGT VLAT YAKST YAPT")
	add(11*60, "L AEDT LHDT MAGT NCT PONT SBT VLAST VUT")
	add(12*60, "M ANAST ANAT FJT GILT MAGST MHT NZST PETST PETT TVT WFT")
	add(13*60, "FJST NZDT")
	add(690, "NFT")
	add(630, "ACDT LHST")
	add(570, "ACST")
	add(390, "CCT MMT")
	add(345, "NPT")
	add(330, "SLT")
	add(270, "AFT IRDT")
	add(210, "IRST")
	add(-150, "HAT NDT")
	add(-210, "HNT NST NT")
	add(-270, "HLV VET")
	add(-570, "MART MIT")
	return m
}()

const unset = -1 << 31

// naiveDate is a Python-style naive datetime kept as a UTC time.Time.
func validDate(y, mo, d, h, mi, s int) bool {
	if y < 1 || y > 9999 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 59 {
		return false
	}
	return d <= daysIn(y, mo)
}

func daysIn(y, mo int) int {
	switch mo {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// dateParts are the numeric fields of a stamp (unset when absent).
type dateParts struct {
	year, month, day     int
	hour, minute, second int
	tzoff                int // minutes east of UTC
	weekday, julian      int
	week, weekStart      int
}

func newParts() dateParts {
	return dateParts{year: unset, month: unset, day: unset, tzoff: unset, weekday: unset, julian: unset, week: unset}
}

// partsFromFields reads captured texts like fail2ban's reGroupDictStrptime
// (Python int() and name lookups; an unknown name or zone is invalid).
func partsFromFields(fs []field) (dateParts, bool) {
	p := newParts()
	for _, f := range fs {
		switch f.k {
		case fYear2:
			v, ok := pyInt(f.v)
			if !ok {
				return p, false
			}
			if v <= 2000 {
				v += 2000
			}
			p.year = v
		case fYear, fMonth, fDay, fHour, fMinute, fSecond, fYearday:
			v, ok := pyInt(f.v)
			if !ok {
				return p, false
			}
			switch f.k {
			case fYear:
				p.year = v
			case fMonth:
				p.month = v
			case fDay:
				p.day = v
			case fHour:
				p.hour = v
			case fMinute:
				p.minute = v
			case fSecond:
				p.second = v
			case fYearday:
				p.julian = v
			}
		case fMonthName, fMonthAbbr:
			list := monthAbbr[:]
			if f.k == fMonthName {
				list = monthFull[:]
			}
			i := foldIndex(list, f.v)
			if i < 0 {
				return p, false
			}
			p.month = i + 1
		case fHour12:
			v, ok := pyInt(f.v)
			if !ok {
				return p, false
			}
			ampm := ""
			for _, g := range fs {
				if g.k == fAMPM {
					ampm = g.v
				}
			}
			switch {
			case ampm == "" || foldIndex(ampmNames[:], ampm) == 0:
				if v == 12 {
					v = 0
				}
			case foldIndex(ampmNames[:], ampm) == 1:
				if v != 12 {
					v += 12
				}
			}
			p.hour = v
		case fWeekdayName, fWeekdayAbbr:
			list := weekdayAbbr[:]
			if f.k == fWeekdayName {
				list = weekdayFull[:]
			}
			i := foldIndex(list, f.v)
			if i < 0 {
				return p, false
			}
			p.weekday = i
		case fWeekdayNum:
			v, ok := pyInt(f.v)
			if !ok {
				return p, false
			}
			v--
			if v < 0 {
				v = 6
			}
			p.weekday = v
		case fWeekU, fWeekW:
			v, ok := pyInt(f.v)
			if !ok {
				return p, false
			}
			p.week = v
			p.weekStart = 0
			if f.k == fWeekU {
				p.weekStart = 6
			}
		case fZoneOffset, fZoneName:
			o, ok := zoneOffsetMinutes(f.v)
			if !ok {
				return p, false
			}
			p.tzoff = o
		}
	}
	return p, true
}

var ampmNames = [...]string{"am", "pm"}

// clock caches what a Detector derives from "now" and the local zone.
// Naive (zone-less, Python datetime-like) times are kept as seconds since
// 0001-01-01 00:00:00 of the proleptic Gregorian calendar.
type clock struct {
	now      time.Time
	nowYear  int
	nowMonth int
	nowDay   int
	nowNaive int64 // local wall clock of now
	// last local conversion: naive hour -> unix seconds at its start
	hourKey  int64
	hourUnix int64
	hourOff  int
	hourOK   bool
	// offset of the previous local conversion (mktime's memory)
	lastOff   int
	lastOffOK bool
}

func (c *clock) set(now time.Time, loc *time.Location) {
	if c.now == now && !c.now.IsZero() {
		return
	}
	c.now = now
	nowL := now.In(loc)
	c.nowYear, c.nowMonth, c.nowDay = nowL.Year(), int(nowL.Month()), nowL.Day()
	c.nowNaive = naiveSeconds(c.nowYear, c.nowMonth, c.nowDay, nowL.Hour(), nowL.Minute(), nowL.Second())
}

// daysFromCivil returns the days since 0001-01-01 of a proleptic Gregorian date.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	// era*146097 + doe counts from 0000-03-01; 0001-01-01 is day 306
	return int64(era)*146097 + int64(doe) - 306
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(n int64) (int, int, int) {
	z := n + 306
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return int(y), int(m), int(d)
}

func naiveSeconds(y, mo, d, h, mi, s int) int64 {
	return daysFromCivil(y, mo, d)*86400 + int64(h*3600+mi*60+s)
}

const (
	naiveMinSec = int64(0)
	naiveMaxSec = int64(3652059)*86400 - 1 // 9999-12-31 23:59:59
	// unixOfNaiveZero is the Unix time of 0001-01-01T00:00:00Z.
	unixOfNaiveZero = int64(-62135596800)
)

// local returns the wall-clock naive time in loc (like mktime), reusing the
// last hour's conversion when the stamp is in the same hour. A wall time that
// exists twice (the hour repeated when DST ends) gets the offset of the
// previous conversion when that offset fits, as glibc's mktime does - so a
// chronological log keeps summer time until it leaves the repeated hour.
func (c *clock) local(naive int64, loc *time.Location) time.Time {
	key := naive / 3600
	if !c.hourOK || key != c.hourKey {
		y, mo, d := civilFromDays(naive / 86400)
		h := int(naive % 86400 / 3600)
		t := time.Date(y, time.Month(mo), d, h, 0, 0, 0, loc)
		u := t.Unix()
		_, off := t.Zone()
		if c.lastOffOK && off != c.lastOff {
			alt := key*3600 + unixOfNaiveZero - int64(c.lastOff)
			if _, o := time.Unix(alt, 0).In(loc).Zone(); o == c.lastOff {
				u, off = alt, o
			}
		}
		c.hourKey, c.hourUnix, c.hourOff = key, u, off
		c.hourOK = true
	}
	c.lastOff, c.lastOffOK = c.hourOff, true
	return time.Unix(c.hourUnix+naive%3600, 0).In(loc)
}

// finish computes the time of parts the way fail2ban's reGroupDictStrptime
// does: missing year = now's year (minus one when more than a day ahead),
// missing day = today (minus one when ahead), explicit zone or loc.
func (c *clock) finish(p *dateParts, loc *time.Location) (time.Time, bool) {
	year, month, day := p.year, p.month, p.day
	assumeYear := false
	if year == unset {
		year = c.nowYear
		assumeYear = true
	}
	if month == unset || day == unset {
		julian := p.julian
		if julian == unset && p.week != unset && p.weekday != unset {
			if year < 1 || year > 9999 {
				return time.Time{}, false
			}
			julian = julianFromWeek(year, p.week, p.weekday, p.weekStart == 0)
		}
		if julian != unset {
			if year < 1 || year > 9999 {
				return time.Time{}, false
			}
			n := daysFromCivil(year, 1, 1) + int64(julian) - 1
			if n < 0 || n*86400 > naiveMaxSec {
				return time.Time{}, false
			}
			year, month, day = civilFromDays(n)
		}
	}
	assumeToday := false
	if month == unset && day == unset {
		month, day = c.nowMonth, c.nowDay
		assumeToday = true
	}
	if month == unset || day == unset {
		return time.Time{}, false
	}
	if !validDate(year, month, day, p.hour, p.minute, p.second) {
		return time.Time{}, false
	}
	res := naiveSeconds(year, month, day, p.hour, p.minute, p.second)
	if p.tzoff != unset {
		res -= int64(p.tzoff) * 60
		if res < naiveMinSec || res > naiveMaxSec {
			return time.Time{}, false
		}
	}
	if assumeToday && res > c.nowNaive {
		res -= 86400
		if res < naiveMinSec {
			return time.Time{}, false
		}
	}
	if assumeYear && res > c.nowNaive+86400 {
		tod := int(res % 86400)
		if !validDate(year-1, month, day, tod/3600, tod/60%60, tod%60) {
			return time.Time{}, false
		}
		res = daysFromCivil(year-1, month, day)*86400 + int64(tod)
	}
	if p.tzoff != unset {
		return time.Unix(res+unixOfNaiveZero, 0).In(loc), true
	}
	return c.local(res, loc), true
}

// julianFromWeek is the day of the year from a week number and a weekday
// (Monday = 0), as Python's strptime computes it for %U/%W.
func julianFromWeek(year, week, weekday int, weekStartsMon bool) int {
	first := (int(time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC).Weekday()) + 6) % 7
	if !weekStartsMon {
		first = (first + 1) % 7
		weekday = (weekday + 1) % 7
	}
	week0 := (7 - first) % 7
	if week == 0 {
		return 1 + weekday - first
	}
	return 1 + week0 + 7*(week-1) + weekday
}

// epochTime converts an EPOCH/LEPOCH capture to a time, keeping fractions.
func epochTime(v string, long bool) (time.Time, bool) {
	// Normalise Unicode digits to ASCII (the pattern uses \d); no allocation.
	var buf [64]byte
	n, dot := 0, -1
	for _, r := range v {
		if n == len(buf) {
			return time.Time{}, false
		}
		if r == '.' {
			if dot >= 0 {
				return time.Time{}, false
			}
			dot = n
			buf[n] = '.'
			n++
			continue
		}
		d := digitValue(r)
		if d < 0 {
			return time.Time{}, false
		}
		buf[n] = byte('0' + d)
		n++
	}
	intEnd, fracStart := n, n
	if dot >= 0 {
		intEnd, fracStart = dot, dot+1
	}
	// LEPOCH: 13+ chars are milliseconds, 16+ without a dot microseconds
	div := 0
	if long && n >= 13 {
		if n >= 16 && dot < 0 {
			div = 6
		} else {
			div = 3
		}
	}
	if intEnd <= div || intEnd-div > 18 {
		return time.Time{}, false
	}
	var sec int64
	for _, c := range buf[:intEnd-div] {
		sec = sec*10 + int64(c-'0')
	}
	// fraction digits: the shifted integer digits, then those after the dot
	ns, k := int64(0), 0
	for _, c := range buf[intEnd-div : intEnd] {
		if k < 9 {
			ns, k = ns*10+int64(c-'0'), k+1
		}
	}
	for _, c := range buf[fracStart:n] {
		if k < 9 {
			ns, k = ns*10+int64(c-'0'), k+1
		}
	}
	for ; k < 9; k++ {
		ns *= 10
	}
	return time.Unix(sec, ns), true
}

// tai64nTime converts "@4000000037c219bf2ef02e94" the way fail2ban does (whole
// seconds of the TAI64 label, without the leap-second offset).
func tai64nTime(v string) (time.Time, bool) {
	if len(v) < 17 {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(v[2:17], 16, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

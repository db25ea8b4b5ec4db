// Package duration is palisade's one parser of lengths of time, used
// wherever a duration is read (jail and bantime.* options, [cloudflare],
// notification and firewall-policy settings, command-line flags such as
// ban --for): fail2ban's time syntax (MyTime.str2seconds: "600", "10m",
// "1h 30m", "2w", "-1", "1 hour", "mi", "ho") and Go's ("1h30m", "500ms")
// alike.
package duration

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Lengths of fail2ban's calendar units: a year is 365.25 days and a month a
// twelfth of it.
const (
	secondsPerYear  = (365*3 + 366) * 24 * 60 * 60 / 4.0
	secondsPerMonth = secondsPerYear / 12
)

// unitSeconds maps every spelling fail2ban accepts (case-insensitive) to a
// number of seconds. "m" is minutes; months are "mo" or "mon".
var unitSeconds = map[string]float64{
	"s": 1, "ss": 1, "se": 1, "sec": 1, "second": 1, "seconds": 1,
	"m": 60, "mm": 60, "mi": 60, "min": 60, "minute": 60, "minutes": 60,
	"h": 3600, "hh": 3600, "ho": 3600, "hou": 3600, "hour": 3600, "hours": 3600,
	"d": 86400, "dd": 86400, "da": 86400, "day": 86400, "days": 86400,
	"w": 7 * 86400, "ww": 7 * 86400, "we": 7 * 86400, "wee": 7 * 86400, "week": 7 * 86400, "weeks": 7 * 86400,
	"mo": secondsPerMonth, "mon": secondsPerMonth, "month": secondsPerMonth, "months": secondsPerMonth,
	// Go's sub-second units (time.ParseDuration); "m" stays minutes.
	"ms": 1e-3, "us": 1e-6, "ns": 1e-9,
	"y": secondsPerYear, "yy": secondsPerYear, "ye": secondsPerYear, "yea": secondsPerYear, "year": secondsPerYear, "years": secondsPerYear,
}

// Parse reads fail2ban's time syntax: plain seconds ("600", "-1"),
// numbers with units ("10m", "1h", "5w", "1d12h", "1 hour 30 min",
// "6 months"), and arithmetic over them with + - * / and parentheses
// ("1year-6mo", "60*60*24"). Terms standing side by side are added, as in
// fail2ban. A negative result (bantime = -1) means permanent; see
// IsPermanent.
func Parse(s string) (time.Duration, error) {
	p := durParser{src: s}
	p.next()
	v, err := p.expr(0)
	if err == nil && p.tok.kind != tEOF {
		err = fmt.Errorf("unexpected %q", p.tok.text)
	}
	if err != nil {
		return 0, fmt.Errorf("invalid time %q: %w", s, err)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > float64(math.MaxInt64)/1e9 {
		return 0, fmt.Errorf("invalid time %q: out of range", s)
	}
	return time.Duration(math.Round(v * 1e9)), nil
}

type tokKind int

const (
	tEOF tokKind = iota
	tNum
	tUnit
	tOp
)

type token struct {
	kind tokKind
	text string
	num  float64
}

type durParser struct {
	src string
	pos int
	tok token
	err error
}

const maxDurationDepth = 32

func (p *durParser) next() {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t') {
		p.pos++
	}
	if p.pos >= len(p.src) {
		p.tok = token{kind: tEOF}
		return
	}
	c := p.src[p.pos]
	start := p.pos
	switch {
	case c >= '0' && c <= '9' || c == '.':
		for p.pos < len(p.src) && (p.src[p.pos] >= '0' && p.src[p.pos] <= '9' || p.src[p.pos] == '.') {
			p.pos++
		}
		// Scientific notation such as 1e3.
		if p.pos+1 < len(p.src) && (p.src[p.pos] == 'e' || p.src[p.pos] == 'E') {
			q := p.pos + 1
			if p.src[q] == '+' || p.src[q] == '-' {
				q++
			}
			if q < len(p.src) && p.src[q] >= '0' && p.src[q] <= '9' {
				for q < len(p.src) && p.src[q] >= '0' && p.src[q] <= '9' {
					q++
				}
				p.pos = q
			}
		}
		text := p.src[start:p.pos]
		n, err := strconv.ParseFloat(text, 64)
		if err != nil {
			p.tok = token{kind: tOp, text: text} // reported as unexpected
			p.err = fmt.Errorf("bad number %q", text)
			return
		}
		p.tok = token{kind: tNum, text: text, num: n}
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		for p.pos < len(p.src) && (p.src[p.pos] >= 'a' && p.src[p.pos] <= 'z' || p.src[p.pos] >= 'A' && p.src[p.pos] <= 'Z') {
			p.pos++
		}
		p.tok = token{kind: tUnit, text: strings.ToLower(p.src[start:p.pos])}
	case strings.IndexByte("+-*/()", c) >= 0:
		p.pos++
		p.tok = token{kind: tOp, text: string(c)}
	default:
		p.pos++
		p.tok = token{kind: tOp, text: string(c)}
		p.err = fmt.Errorf("unexpected character %q", c)
	}
}

// expr := term { ('+'|'-'|<juxtaposition>) term }
func (p *durParser) expr(depth int) (float64, error) {
	if depth > maxDurationDepth {
		return 0, fmt.Errorf("too deeply nested")
	}
	v, err := p.term(depth)
	if err != nil {
		return 0, err
	}
	for {
		switch {
		case p.tok.kind == tOp && (p.tok.text == "+" || p.tok.text == "-"):
			op := p.tok.text
			p.next()
			w, err := p.term(depth)
			if err != nil {
				return 0, err
			}
			if op == "+" {
				v += w
			} else {
				v -= w
			}
		case p.tok.kind == tNum || p.tok.kind == tOp && p.tok.text == "(":
			// "1h 30m": side-by-side groups are added.
			w, err := p.term(depth)
			if err != nil {
				return 0, err
			}
			v += w
		default:
			return v, nil
		}
	}
}

// term := factor { ('*'|'/') factor }
func (p *durParser) term(depth int) (float64, error) {
	v, err := p.factor(depth)
	if err != nil {
		return 0, err
	}
	for p.tok.kind == tOp && (p.tok.text == "*" || p.tok.text == "/") {
		op := p.tok.text
		p.next()
		w, err := p.factor(depth)
		if err != nil {
			return 0, err
		}
		if op == "*" {
			v *= w
		} else {
			if w == 0 {
				return 0, fmt.Errorf("division by zero")
			}
			v /= w
		}
	}
	return v, nil
}

// factor := ('+'|'-') factor | number [unit] | '(' expr ')' [unit]
func (p *durParser) factor(depth int) (float64, error) {
	if p.err != nil {
		return 0, p.err
	}
	if depth > maxDurationDepth {
		return 0, fmt.Errorf("too deeply nested")
	}
	var v float64
	switch {
	case p.tok.kind == tOp && (p.tok.text == "-" || p.tok.text == "+"):
		neg := p.tok.text == "-"
		p.next()
		w, err := p.factor(depth + 1)
		if err != nil {
			return 0, err
		}
		if neg {
			w = -w
		}
		return w, nil
	case p.tok.kind == tNum:
		v = p.tok.num
		p.next()
	case p.tok.kind == tOp && p.tok.text == "(":
		p.next()
		w, err := p.expr(depth + 1)
		if err != nil {
			return 0, err
		}
		if p.tok.kind != tOp || p.tok.text != ")" {
			return 0, fmt.Errorf("missing )")
		}
		p.next()
		v = w
	case p.tok.kind == tEOF:
		return 0, fmt.Errorf("missing value")
	default:
		return 0, fmt.Errorf("unexpected %q", p.tok.text)
	}
	if p.err != nil {
		return 0, p.err
	}
	if p.tok.kind == tUnit {
		mul, ok := unitSeconds[p.tok.text]
		if !ok {
			return 0, fmt.Errorf("unknown unit %q", p.tok.text)
		}
		v *= mul
		p.next()
	}
	return v, nil
}

package filter

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Building blocks of fail2ban's address tags. The IPv6 form ends in
// `(?:h16|:)` instead of fail2ban's `(?:h16|(?<=:):)`: every element of the
// repetition before it ends in ':', so the look-behind is always true and the
// two are the same language, but this one is RE2.
const (
	reIP4  = `(?:[0-9]{1,3}\.){3}[0-9]{1,3}`
	reIP6  = `(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:)`
	reDNS  = `[\w\-.^_]*\w`
	reTIP4 = `(?:::f{4,6}:)?(?P<ip4>` + reIP4 + `)`
	reTIP6 = `(?P<ip6>` + reIP6 + `)`
	reTDNS = `(?P<dns>` + reDNS + `)`
	reCIDR = `(?P<cidr>\d+)`
	reADDR = `\[?(?:` + reTIP4 + `|` + reTIP6 + `)\]?`
	reHOST = `(?:` + reADDR + `|` + reTDNS + `)`
	reSUBN = `\[?(?:` + reTIP4 + `|` + reTIP6 + `)(?:/` + reCIDR + `)?\]?`
)

// staticTags are the tags replaced by a fixed expression (fail2ban's RH4TAG).
var staticTags = map[string]string{
	"IP4": reTIP4, "F-IP4/": reTIP4,
	"IP6": reTIP6, "F-IP6/": reTIP6,
	"ADDR": reADDR, "F-ADDR/": reADDR,
	"CIDR": reCIDR, "F-CIDR/": reCIDR,
	"SUBNET": reSUBN, "F-SUBNET/": reSUBN,
	"DNS": reTDNS, "F-DNS/": reTDNS,
	"F-ID/":   `(?P<fid>\S+)`,
	"F-PORT/": `(?P<fport>\w+)`,
}

// fieldName maps an F-NAME tag to its group name (fail2ban's mapTag2Opt).
func fieldName(tag string) string {
	n := strings.ToLower(tag)
	switch n {
	case "id":
		return "fid"
	case "port":
		return "fport"
	}
	return n
}

// isTagChar reports whether c may appear in a tag name (fail2ban's [\w\-]).
func isTagChar(c byte) bool {
	return c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// isCustTag reports whether name is an F- tag name (F-[A-Z0-9_-]+).
func isCustTag(name string) bool {
	if len(name) < 3 || !strings.HasPrefix(name, "F-") {
		return false
	}
	for i := 2; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// ExpandTags replaces fail2ban's regex tags (<HOST>, <ADDR>, <IP4>, <IP6>,
// <DNS>, <CIDR>, <SUBNET>, <F-ID/>, <F-PORT/>, <SKIPLINES>, <F-NAME>..</F-NAME>)
// with their expressions. useDNS "no" makes <HOST> an address only; any other
// value keeps the host-name alternative (fail2ban's "warn"/"yes"). Unknown
// tags stay as they are.
func ExpandTags(expr, useDNS string) string {
	if strings.IndexByte(expr, '<') < 0 {
		return expr
	}
	var b strings.Builder
	open := map[string]bool{}
	skip := 0
	i := 0
	for i < len(expr) {
		c := expr[i]
		if c != '<' {
			b.WriteByte(c)
			i++
			continue
		}
		// </?[\w\-]+/?>
		j := i + 1
		if j < len(expr) && expr[j] == '/' {
			j++
		}
		k := j
		for k < len(expr) && isTagChar(expr[k]) {
			k++
		}
		if k == j {
			b.WriteByte(c)
			i++
			continue
		}
		if k < len(expr) && expr[k] == '/' {
			k++
		}
		if k >= len(expr) || expr[k] != '>' {
			b.WriteByte(c)
			i++
			continue
		}
		tag := expr[i : k+1]
		tn := tag[1 : len(tag)-1]
		b.WriteString(substTag(tag, tn, useDNS, open, &skip))
		i = k + 1
	}
	return b.String()
}

func substTag(tag, tn, useDNS string, open map[string]bool, skip *int) string {
	switch tn {
	case "HOST":
		if useDNS == "no" {
			return reADDR
		}
		return reHOST
	case "SKIPLINES":
		n := *skip
		*skip++
		return `\n(?P<skiplines` + strconv.Itoa(n) + `>(?:(?:.*\n)*?))`
	}
	if r, ok := staticTags[tn]; ok {
		return r
	}
	closing := strings.HasPrefix(tn, "/")
	name := strings.TrimPrefix(tn, "/")
	if !isCustTag(name) {
		return tag
	}
	name = name[2:]
	if closing {
		if open[name] {
			return ")"
		}
		return tag
	}
	open[name] = true
	return "(?P<" + fieldName(name) + ">"
}

// Unicode forms of Python's \d \w \s (str patterns are Unicode in Python).
const (
	uniDigit = `\p{Nd}`
	uniWord  = `\p{L}\p{N}_`
	uniSpace = `\t-\r\x1c- \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}`
	// regexp2 spells code points \uXXXX.
	btSpace = `\t-\r\x1c-\x20\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000`
)

// dollarMode says how Python's `$` is written for Go's regexp.
type dollarMode int

const (
	// dollarSingle: non-MULTILINE pattern on a buffer holding one line plus
	// its final "\n": `$` is "before any \n or at the end".
	dollarSingle dollarMode = iota
	// dollarMulti: non-MULTILINE pattern on a buffer of several lines: `$`
	// is "at the end or before the final \n".
	dollarMulti
	// dollarMultiline: MULTILINE pattern.
	dollarMultiline
)

// translation is a Python `re` pattern rewritten for the engines.
type translation struct {
	// Go is the pattern for Go's regexp; "" when a construct needs a
	// backtracking engine (see Reason).
	Go     string
	Reason string
	// BT is the pattern for regexp2 (.NET syntax).
	BT string
	// Ana is a RE2 pattern whose language includes the original's (look-
	// arounds optional, back-references any text, conditionals either
	// branch); it is parsed to find literals every match must contain.
	Ana string
}

// out accumulates the three renderings.
type out struct {
	g, bt, ana strings.Builder
	goBad      string
}

func (o *out) all(s string) {
	o.g.WriteString(s)
	o.bt.WriteString(s)
	o.ana.WriteString(s)
}

func (o *out) noGo(reason, bt, ana string) {
	if o.goBad == "" {
		o.goBad = reason
	}
	o.bt.WriteString(bt)
	o.ana.WriteString(ana)
}

// globToLocal rewrites `((?i)X)` and `(?:(?i)X)` into `(?i:X)` like
// fail2ban does before compiling (Python 3.11 rejects global flags that do
// not start the pattern).
var globToLocal = regexp.MustCompile(`(^|[^\\])\((?:\?:)?(\(\?[a-z]+)\)`)

// mayGlobToLocal reports whether globToLocal can match s: it needs a flag
// group "(?x)" right after "(" or "(?:". (Running the regexp on every
// pattern cost more than the rest of its translation.)
func mayGlobToLocal(s string) bool {
	for i := 0; ; {
		k := strings.Index(s[i:], "(?")
		if k < 0 {
			return false
		}
		i += k
		j := i + 2
		for j < len(s) && s[j] >= 'a' && s[j] <= 'z' {
			j++
		}
		if j > i+2 && j < len(s) && s[j] == ')' &&
			(strings.HasSuffix(s[:i], "(") || strings.HasSuffix(s[:i], "(?:")) {
			return true
		}
		i += 2
	}
}

// translate rewrites a Python `re` pattern (tags already expanded).
func translate(expr string, dm dollarMode) (translation, error) {
	// (a match needs "((?x)" or "(?:(?x)": most patterns have neither)
	for i := 0; i < 4 && mayGlobToLocal(expr) && globToLocal.MatchString(expr); i++ {
		expr = globToLocal.ReplaceAllString(expr, "${1}${2}:")
	}
	var o out
	type grp struct{ g, bt, ana string }
	var stack []grp
	s := expr
	i := 0
	for i < len(s) {
		c := s[i]
		switch c {
		case '\\':
			n, err := o.escape(s[i:], false)
			if err != nil {
				return translation{}, err
			}
			i += n
		case '[':
			n, err := o.class(s[i:])
			if err != nil {
				return translation{}, err
			}
			i += n
		case '(':
			n, closer, err := o.group(s[i:])
			if err != nil {
				return translation{}, err
			}
			if n > 0 {
				stack = append(stack, closer)
			}
			if n < 0 { // consumed whole construct (comment, backref)
				n = -n
			}
			i += n
		case ')':
			if len(stack) == 0 {
				return translation{}, fmt.Errorf("unbalanced parenthesis at position %d", i)
			}
			cl := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			o.g.WriteString(cl.g)
			o.bt.WriteString(cl.bt)
			o.ana.WriteString(cl.ana)
			i++
		case '{':
			// Python's {,n} is {0,n}.
			if m := reCommaN.FindString(s[i:]); m != "" {
				o.all("{0" + m[1:])
				i += len(m)
			} else {
				o.all("{")
				i++
			}
		case '$':
			var d string
			switch dm {
			case dollarSingle:
				d = `(?m:$)`
			case dollarMulti:
				d = `(?:\z|\n\z)`
			default:
				d = `$`
			}
			o.g.WriteString(d)
			o.ana.WriteString(d)
			o.bt.WriteString("$")
			i++
		default:
			o.all(s[i : i+1])
			i++
		}
	}
	if len(stack) > 0 {
		return translation{}, fmt.Errorf("missing ), unterminated subpattern")
	}
	t := translation{BT: o.bt.String(), Ana: o.ana.String(), Reason: o.goBad}
	if o.goBad == "" {
		t.Go = o.g.String()
	}
	if dm == dollarMultiline {
		if t.Go != "" {
			t.Go = "(?m)" + t.Go
		}
		t.Ana = "(?m)" + t.Ana
	}
	return t, nil
}

var reCommaN = regexp.MustCompile(`^\{,[0-9]+\}`)

type grpCloser = struct{ g, bt, ana string }

var plainClose = grpCloser{")", ")", ")"}

// group handles "(" at the start of s. It returns the bytes consumed
// (negative when the construct was consumed whole, with no closer pushed).
func (o *out) group(s string) (int, grpCloser, error) {
	if !strings.HasPrefix(s, "(?") {
		o.all("(")
		return 1, plainClose, nil
	}
	r := s[2:]
	switch {
	case strings.HasPrefix(r, "P<"):
		end := strings.IndexByte(r, '>')
		if end < 0 {
			return 0, plainClose, fmt.Errorf("missing > in group name")
		}
		name := r[2:end]
		if !validGroupName(name) {
			return 0, plainClose, fmt.Errorf("bad character in group name %q", name)
		}
		o.g.WriteString("(?P<" + name + ">")
		o.ana.WriteString("(?P<" + name + ">")
		o.bt.WriteString("(?<" + name + ">")
		return 2 + end + 1, plainClose, nil
	case strings.HasPrefix(r, "P="):
		end := strings.IndexByte(r, ')')
		if end < 0 {
			return 0, plainClose, fmt.Errorf("missing ) in group reference")
		}
		name := r[2:end]
		if !validGroupName(name) {
			return 0, plainClose, fmt.Errorf("bad character in group name %q", name)
		}
		o.noGo("back-reference", `\k<`+name+`>`, `(?s:.*)`)
		return -(2 + end + 1), plainClose, nil
	case strings.HasPrefix(r, "#"):
		end := strings.IndexByte(r, ')')
		if end < 0 {
			return 0, plainClose, fmt.Errorf("missing ), unterminated comment")
		}
		return -(2 + end + 1), plainClose, nil
	case strings.HasPrefix(r, ":"):
		o.all("(?:")
		return 3, plainClose, nil
	case strings.HasPrefix(r, "="), strings.HasPrefix(r, "!"):
		o.noGo("look-ahead", "(?"+r[:1], "(?:")
		return 3, grpCloser{")", ")", ")?"}, nil
	case strings.HasPrefix(r, "<="), strings.HasPrefix(r, "<!"):
		o.noGo("look-behind", "(?"+r[:2], "(?:")
		return 4, grpCloser{")", ")", ")?"}, nil
	case strings.HasPrefix(r, ">"):
		o.noGo("atomic group", "(?>", "(?:")
		return 3, plainClose, nil
	case strings.HasPrefix(r, "("):
		end := strings.IndexByte(r, ')')
		if end < 0 {
			return 0, plainClose, fmt.Errorf("missing ) in conditional")
		}
		cond := r[1:end]
		if !validGroupName(cond) && !isDigits(cond) {
			return 0, plainClose, fmt.Errorf("bad group name %q in conditional", cond)
		}
		o.noGo("conditional group", "(?("+cond+")", "(?:(?:")
		return 2 + end + 1, grpCloser{")", ")", ")|)"}, nil
	}
	// flags: (?aiLmsux) or (?aiLmsux-imsx:...)
	j := 0
	for j < len(r) && strings.IndexByte("aiLmsux-", r[j]) >= 0 {
		j++
	}
	if j == 0 || j >= len(r) || (r[j] != ')' && r[j] != ':') {
		return 0, plainClose, fmt.Errorf("unknown extension ?%s", firstRune(r))
	}
	var fl strings.Builder
	for k := 0; k < j; k++ {
		switch r[k] {
		case 'a', 'u', 'L': // ASCII/Unicode/locale: no equivalent, Unicode kept
		case 'x':
			if o.goBad == "" {
				o.goBad = "verbose flag"
			}
			fl.WriteByte('x')
		default:
			fl.WriteByte(r[k])
		}
	}
	f := strings.TrimSuffix(fl.String(), "-")
	if r[j] == ')' {
		if f != "" {
			o.all("(?" + f + ")")
		}
		return -(2 + j + 1), plainClose, nil
	}
	if f == "" {
		o.all("(?:")
	} else {
		o.all("(?" + f + ":")
	}
	return 2 + j + 1, plainClose, nil
}

func firstRune(s string) string {
	if s == "" {
		return ""
	}
	r, _ := utf8.DecodeRuneInString(s)
	return string(r)
}

func validGroupName(n string) bool {
	if n == "" || n[0] >= '0' && n[0] <= '9' {
		return false
	}
	for _, r := range n {
		if !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r > 127) {
			return false
		}
	}
	return true
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

func isOct(c byte) bool { return c >= '0' && c <= '7' }

func hexVal(s string) (rune, bool) {
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil || v > utf8.MaxRune {
		return 0, false
	}
	return rune(v), true
}

// literal writes rune r as a literal (escaped if needed), in or out of a class.
func (o *out) literal(r rune, inClass bool) {
	var s string
	switch {
	case r == '\n':
		s = `\n`
	case r < 0x20 || r == 0x7f:
		s = fmt.Sprintf(`\x%02x`, r)
	case inClass && strings.ContainsRune(`\]^-[`, r):
		s = `\` + string(r)
	case !inClass && r < 128:
		s = regexp.QuoteMeta(string(r))
	default:
		s = string(r)
	}
	o.all(s)
}

// escape handles a backslash sequence at the start of s; it returns bytes consumed.
func (o *out) escape(s string, inClass bool) (int, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("bad escape (end of pattern)")
	}
	c := s[1]
	switch c {
	case 'd':
		if inClass {
			o.g.WriteString(uniDigit)
			o.ana.WriteString(uniDigit)
			o.bt.WriteString(uniDigit)
		} else {
			o.all(`\p{Nd}`)
		}
		return 2, nil
	case 'w':
		// Go's parser reads the sorted ranges faster (uniWordRanges)
		if inClass {
			o.g.WriteString(uniWordRanges)
			o.ana.WriteString(uniWordRanges)
			o.bt.WriteString(uniWord)
		} else {
			o.g.WriteString("[" + uniWordRanges + "]")
			o.ana.WriteString("[" + uniWordRanges + "]")
			o.bt.WriteString("[" + uniWord + "]")
		}
		return 2, nil
	case 's':
		if inClass {
			o.g.WriteString(uniSpace)
			o.ana.WriteString(uniSpace)
			o.bt.WriteString(btSpace)
		} else {
			o.g.WriteString("[" + uniSpace + "]")
			o.ana.WriteString("[" + uniSpace + "]")
			o.bt.WriteString("[" + btSpace + "]")
		}
		return 2, nil
	case 'D', 'W', 'S':
		if inClass {
			// A negated class inside a class has no RE2 spelling: keep the
			// engine's own (ASCII in Go) form.
			o.all(s[:2])
			return 2, nil
		}
		switch c {
		case 'D':
			o.all(`\P{Nd}`)
		case 'W':
			o.g.WriteString("[^" + uniWordRanges + "]")
			o.ana.WriteString("[^" + uniWordRanges + "]")
			o.bt.WriteString("[^" + uniWord + "]")
		case 'S':
			o.g.WriteString("[^" + uniSpace + "]")
			o.ana.WriteString("[^" + uniSpace + "]")
			o.bt.WriteString("[^" + btSpace + "]")
		}
		return 2, nil
	case 'A':
		if inClass {
			return 0, fmt.Errorf(`bad escape \A in class`)
		}
		o.all(`\A`)
		return 2, nil
	case 'Z':
		if inClass {
			return 0, fmt.Errorf(`bad escape \Z in class`)
		}
		o.all(`\z`)
		return 2, nil
	case 'b':
		if inClass {
			o.all(`\x08`)
		} else {
			o.all(`\b`)
		}
		return 2, nil
	case 'B':
		if inClass {
			return 0, fmt.Errorf(`bad escape \B in class`)
		}
		o.all(`\B`)
		return 2, nil
	case 'n', 't', 'r', 'f', 'v', 'a':
		o.all(s[:2])
		return 2, nil
	case 'x':
		if len(s) < 4 {
			return 0, fmt.Errorf(`incomplete escape \x`)
		}
		r, ok := hexVal(s[2:4])
		if !ok {
			return 0, fmt.Errorf(`incomplete escape %s`, s[:4])
		}
		o.literal(r, inClass)
		return 4, nil
	case 'u', 'U':
		n := 4
		if c == 'U' {
			n = 8
		}
		if len(s) < 2+n {
			return 0, fmt.Errorf(`incomplete escape \%c`, c)
		}
		r, ok := hexVal(s[2 : 2+n])
		if !ok {
			return 0, fmt.Errorf(`bad escape %s`, s[:2+n])
		}
		o.literal(r, inClass)
		return 2 + n, nil
	case '0':
		// octal: \0, \0o, \0oo
		j := 2
		for j < len(s) && j < 4 && isOct(s[j]) {
			j++
		}
		v, _ := strconv.ParseUint("0"+s[2:j], 8, 32)
		o.literal(rune(v), inClass)
		return j, nil
	}
	if c >= '1' && c <= '9' {
		if len(s) >= 4 && isOct(c) && isOct(s[2]) && isOct(s[3]) {
			v, _ := strconv.ParseUint(s[1:4], 8, 32)
			if v > 0o377 {
				return 0, fmt.Errorf(`octal escape value %s outside of range 0-0o377`, s[:4])
			}
			o.literal(rune(v), inClass)
			return 4, nil
		}
		if inClass {
			return 0, fmt.Errorf(`bad escape %s`, s[:2])
		}
		j := 2
		if len(s) > 2 && s[2] >= '0' && s[2] <= '9' {
			j = 3
		}
		o.noGo("back-reference", `(?:\`+s[1:j]+`)`, `(?s:.*)`)
		return j, nil
	}
	if c < utf8.RuneSelf {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			return 0, fmt.Errorf(`bad escape \%c`, c)
		}
		o.literal(rune(c), inClass)
		return 2, nil
	}
	r, n := utf8.DecodeRuneInString(s[1:])
	o.literal(r, inClass)
	return 1 + n, nil
}

// class handles a character class starting at s[0] == '['.
func (o *out) class(s string) (int, error) {
	o.all("[")
	i := 1
	if i < len(s) && s[i] == '^' {
		o.all("^")
		i++
	}
	first := true
	for i < len(s) {
		c := s[i]
		switch {
		case c == ']' && !first:
			o.all("]")
			return i + 1, nil
		case c == ']':
			o.all(`\]`)
			i++
		case c == '\\':
			n, err := o.escape(s[i:], true)
			if err != nil {
				return 0, err
			}
			i += n
		case c == '[':
			o.all(`\[`)
			i++
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == '-' || r >= 0x20 && r != 0x7f {
				o.all(s[i : i+n])
			} else {
				o.literal(r, true)
			}
			i += n
		}
		first = false
	}
	return 0, fmt.Errorf("unterminated character set")
}

package filter

import "unsafe"

// Field ids: every group name of a filter's regexes gets a small integer,
// so a line's groups live in a slice instead of a map. The names fail2ban
// gives a meaning come first, at fixed ids.
const (
	fidMLFID = iota
	fidNoFail
	fidMLFGained
	fidMLFForget
	fidUser
	fidFID
	fidIP4
	fidIP6
	fidDNS
	fidIP
	fidContent
	numFixedFields
)

var fixedFieldNames = [numFixedFields]string{"mlfid", "nofail", "mlfgained", "mlfforget", "user", "fid", "ip4", "ip6", "dns", "ip", "content"}

// fieldNames assigns ids to group names (used while a filter is built).
type fieldNames struct {
	names []string
	ids   map[string]int
}

func newFieldNames() *fieldNames {
	fn := &fieldNames{names: append([]string(nil), fixedFieldNames[:]...), ids: map[string]int{}}
	for i, n := range fn.names {
		fn.ids[n] = i
	}
	return fn
}

func (fn *fieldNames) id(name string) int {
	if id, ok := fn.ids[name]; ok {
		return id
	}
	fn.ids[name] = len(fn.names)
	fn.names = append(fn.names, name)
	return len(fn.names) - 1
}

// fieldVal is one field: ok is false when the key is absent (fail2ban's
// None, or never set).
type fieldVal struct {
	s  string
	ok bool
}

// fieldSet is fail2ban's dict of a match's named groups, indexed by id.
type fieldSet []fieldVal

func newFieldSet(n int) fieldSet { return make(fieldSet, n) }

func (fs fieldSet) get(id int) (string, bool) { return fs[id].s, fs[id].ok }

// truthy is Python's bool(d.get(k)).
func (fs fieldSet) truthy(id int) bool { return fs[id].s != "" && fs[id].ok }

func (fs fieldSet) set(id int, s string) { fs[id] = fieldVal{s, true} }

func (fs fieldSet) del(id int) { fs[id] = fieldVal{} }

func (fs fieldSet) clear() { clear(fs) }

// scratch tells whether strings point into the filter's reused buffers,
// and copies them out when they must outlive the line.
type scratch struct {
	a, b   []byte // buffers a field may point into
	ca, cb string // each copied once per line (lazily)
}

// reset starts a line: a and b are the buffers fields may point into.
func (s *scratch) reset(a, b []byte) {
	s.a, s.b, s.ca, s.cb = a, b, "", ""
}

// keep returns v in memory that outlives the line: a substring of a copy
// of the buffer v points into (one copy per buffer and line), or v itself.
func (s *scratch) keep(v string) string {
	if v == "" {
		return ""
	}
	p := uintptr(unsafe.Pointer(unsafe.StringData(v)))
	if in(p, len(v), s.a) {
		if s.ca == "" {
			s.ca = string(s.a)
		}
		off := int(p - uintptr(unsafe.Pointer(unsafe.SliceData(s.a))))
		return s.ca[off : off+len(v)]
	}
	if in(p, len(v), s.b) {
		if s.cb == "" {
			s.cb = string(s.b)
		}
		off := int(p - uintptr(unsafe.Pointer(unsafe.SliceData(s.b))))
		return s.cb[off : off+len(v)]
	}
	return v
}

// in reports whether [p, p+n) lies in b.
func in(p uintptr, n int, b []byte) bool {
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return len(b) > 0 && p >= lo && p+uintptr(n) <= lo+uintptr(len(b))
}

package firewall

import (
	"fmt"
	"hash/fnv"
	"strings"
	"testing"
)

func TestCheckJailName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"sshd", true},
		{"web@x", true},
		{"mail:smtp", true},
		{"nginx-http-auth", true},
		{"a.b_c", true},
		{strings.Repeat("x", MaxJailName), true},
		{strings.Repeat("x", MaxJailName+1), false},
		{"", false},
		{"bad name", false},
		{"semi;colon", false},
		{"quote'", false},
		{"slash/", false},
		{"ünï", false},
	} {
		if err := CheckJailName(tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckJailName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestObjectName(t *testing.T) {
	long := strings.Repeat("j", 40)
	seen := map[string]string{}
	for _, tc := range []struct {
		jail string
		max  int
		want string // "" = mapped (checked for shape and uniqueness)
	}{
		{"sshd", 24, "sshd"},
		{"nginx-http-auth", 24, "nginx-http-auth"},
		{"web@x", 64, ""},
		{"web_x", 64, "web_x"},
		{"mail:smtp", 64, ""},
		{long + "a", 24, ""},
		{long + "b", 24, ""},
		{long, 64, long},
	} {
		got := ObjectName(tc.jail, tc.max)
		if tc.want != "" && got != tc.want {
			t.Errorf("ObjectName(%q, %d) = %q, want %q", tc.jail, tc.max, got, tc.want)
		}
		if len(got) > tc.max {
			t.Errorf("ObjectName(%q, %d) = %q: longer than %d", tc.jail, tc.max, got, tc.max)
		}
		for i := 0; i < len(got); i++ {
			if !objectChar(got[i]) {
				t.Errorf("ObjectName(%q) = %q holds %q", tc.jail, got, got[i])
			}
		}
		if prev, dup := seen[got]; dup && prev != tc.jail {
			t.Errorf("%q and %q both map to %q", prev, tc.jail, got)
		}
		seen[got] = tc.jail
	}
	// ipset's earlier long-name form is kept: the first 16 characters and
	// the FNV-1a hash.
	h := fnv.New32a()
	h.Write([]byte(long))
	if got, want := ObjectName(long, 24), fmt.Sprintf("%s%08x", long[:16], h.Sum32()); got != want {
		t.Errorf("long name form changed: %q, want %q", got, want)
	}
}

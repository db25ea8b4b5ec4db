package sysexec

import (
	"slices"
	"testing"
)

func TestSplitArgs(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "", want: nil},
		{in: "  /bin/true  ", want: []string{"/bin/true"}},
		{in: "cmd -a\t--b=c\r\nd", want: []string{"cmd", "-a", "--b=c", "d"}},
		{in: `cmd 'a b' "c d"`, want: []string{"cmd", "a b", "c d"}},
		{in: `cmd 'it''s'`, want: []string{"cmd", "its"}},
		{in: `cmd "say \"hi\" \$x \\ \n"`, want: []string{"cmd", `say "hi" $x \ \n`}},
		{in: `cmd a\ b`, want: []string{"cmd", "a b"}},
		{in: `cmd "x|y" 'a;b' 'c&d' '$(e)'`, want: []string{"cmd", "x|y", "a;b", "c&d", "$(e)"}},
		{in: `cmd ""`, want: []string{"cmd", ""}},
		{in: "cmd | tee", wantErr: true},
		{in: "cmd; rm", wantErr: true},
		{in: "cmd && rm", wantErr: true},
		{in: "cmd `id`", wantErr: true},
		{in: "cmd $(id)", wantErr: true},
		{in: "cmd 'open", wantErr: true},
		{in: `cmd "open`, wantErr: true},
		{in: `cmd \`, wantErr: true},
	}
	for _, tc := range tests {
		got, err := SplitArgs(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("SplitArgs(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("SplitArgs(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

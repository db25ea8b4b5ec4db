package firewall

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testServices = `# comment line
ssh		22/tcp				# SSH Remote Login Protocol
http		80/tcp		www		# WorldWideWeb HTTP
https		443/tcp
https		443/udp
domain		53/tcp
domain		53/udp
ms-sql-s	1433/tcp
bogus		notaport/tcp
short
imaps		993/tcp
`

func TestParsePorts(t *testing.T) {
	svc, err := ParseServices(strings.NewReader(testServices))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		spec, proto string
		want        []PortRange
		wantErr     string
	}{
		{spec: "ssh", proto: "tcp", want: []PortRange{{22, 22}}},
		{spec: "http,https", proto: "tcp", want: []PortRange{{80, 80}, {443, 443}}},
		{spec: "www", proto: "tcp", want: []PortRange{{80, 80}}},
		{spec: "ssh,2222,8000:8100", proto: "tcp", want: []PortRange{{22, 22}, {2222, 2222}, {8000, 8100}}},
		{spec: " ssh , 2222 ", proto: "tcp", want: []PortRange{{22, 22}, {2222, 2222}}},
		{spec: "8000-8100", proto: "tcp", want: []PortRange{{8000, 8100}}},
		{spec: "ms-sql-s", proto: "tcp", want: []PortRange{{1433, 1433}}},
		{spec: "ssh:http", proto: "tcp", want: []PortRange{{22, 80}}},
		{spec: "10:20,15:30,31,5", proto: "tcp", want: []PortRange{{5, 5}, {10, 31}}},
		{spec: "0:65535", proto: "tcp", want: nil},
		{spec: "1:65535", proto: "tcp", want: nil},
		{spec: "all", proto: "tcp", want: nil},
		{spec: "", proto: "tcp", want: nil},
		{spec: "domain", proto: "udp", want: []PortRange{{53, 53}}},
		{spec: "domain", proto: "all", want: []PortRange{{53, 53}}},
		{spec: "SSH", proto: "tcp", want: []PortRange{{22, 22}}},
		{spec: "ssh", proto: "udp", wantErr: `item "ssh": unknown service name "ssh"`},
		{spec: "ssh,nosuch", proto: "tcp", wantErr: `item "nosuch": unknown service name`},
		{spec: "70000", proto: "tcp", wantErr: `item "70000": port 70000 out of range`},
		{spec: "100:50", proto: "tcp", wantErr: `item "100:50": range start 100 is above its end 50`},
		{spec: "22,,80", proto: "tcp", wantErr: "empty item"},
		{spec: "22:", proto: "tcp", wantErr: `item "22:": missing port`},
		{spec: "ssh;reboot", proto: "tcp", wantErr: `invalid character ';'`},
		{spec: "22 80", proto: "tcp", wantErr: `item "22 80": unexpected space`},
		{spec: "bogus", proto: "tcp", wantErr: `unknown service name "bogus"`},
	}
	for _, tt := range tests {
		t.Run(tt.spec+"/"+tt.proto, func(t *testing.T) {
			got, err := ParsePorts(tt.spec, tt.proto, svc)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePorts(%q) error = %v, want containing %q", tt.spec, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePorts(%q): %v", tt.spec, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParsePorts(%q) (-want +got):\n%s", tt.spec, diff)
			}
		})
	}
}

func TestParsePortsNoServices(t *testing.T) {
	if got, err := ParsePorts("22,80", "tcp", nil); err != nil || len(got) != 2 {
		t.Fatalf("numbers without services: %v, %v", got, err)
	}
	if _, err := ParsePorts("ssh", "tcp", nil); err == nil {
		t.Fatal("service name resolved without a services table")
	}
}

func TestLoadServices(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "services"), []byte(testServices), 0o644); err != nil {
		t.Fatal(err)
	}
	svc, err := LoadServices(filepath.Join(root, "etc", "services"))
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := svc.Lookup("imaps", "tcp"); !ok || p != 993 {
		t.Errorf("imaps/tcp = %d, %v", p, ok)
	}
	if _, err := LoadServices(filepath.Join(root, "missing")); err == nil {
		t.Error("missing services file gave no error")
	}
}

func TestFormatPorts(t *testing.T) {
	tests := []struct {
		in   []PortRange
		want string
	}{
		{nil, "0:65535"},
		{[]PortRange{{22, 22}}, "22"},
		{[]PortRange{{22, 22}, {8000, 8100}}, "22,8000:8100"},
	}
	for _, tt := range tests {
		if got := FormatPorts(tt.in); got != tt.want {
			t.Errorf("FormatPorts(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParsePorts(f *testing.F) {
	svc, _ := ParseServices(strings.NewReader(testServices))
	for _, s := range []string{"ssh", "http,https", "0:65535", "1-2", "a:b", ",", "65536"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParsePorts(s, "tcp", svc)
		if err != nil {
			return
		}
		for i, r := range rs {
			if r.From > r.To {
				t.Fatalf("inverted range %v", r)
			}
			if i > 0 && uint32(rs[i-1].To)+1 >= uint32(r.From) {
				t.Fatalf("unmerged ranges %v", rs)
			}
		}
	})
}

func TestGroupPorts(t *testing.T) {
	r := func(a, b uint16) PortRange { return PortRange{From: a, To: b} }
	single := make([]PortRange, 16)
	for i := range single {
		single[i] = r(uint16(1000+i), uint16(1000+i))
	}
	tests := []struct {
		name string
		in   []PortRange
		want []int // sizes of the groups
	}{
		{"empty", nil, nil},
		{"one", []PortRange{r(22, 22)}, []int{1}},
		{"fifteen singles fit", single[:15], []int{15}},
		{"sixteen singles split", single, []int{15, 1}},
		{"ranges count two", []PortRange{r(1, 2), r(3, 4), r(5, 6), r(7, 8), r(9, 10), r(11, 12), r(13, 14), r(15, 15), r(16, 17)}, []int{8, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := GroupPorts(tc.in, 15)
			var sizes []int
			n := 0
			for _, g := range got {
				sizes = append(sizes, len(g))
				n += len(g)
			}
			if !slices.Equal(sizes, tc.want) || n != len(tc.in) {
				t.Fatalf("GroupPorts sizes %v, want %v", sizes, tc.want)
			}
		})
	}
}

package detect

import (
	"errors"
	"strings"
	"testing"

	"github.com/palisade-project/palisade/internal/firewall/nstest"
	"github.com/palisade-project/palisade/internal/sysexec"
)

func TestChoose(t *testing.T) {
	nftOK := func(int) error { return nil }
	nftBad := func(int) error { return errors.New("protocol not supported") }
	have := func(progs ...string) func(string) (string, error) {
		return func(p string) (string, error) {
			for _, h := range progs {
				if h == p {
					return "/usr/sbin/" + p, nil
				}
			}
			return "", errors.New("not found")
		}
	}
	tests := []struct {
		want     string
		nft      func(int) error
		progs    []string
		kind     string
		errMatch string
	}{
		{"", nftOK, nil, Nftables, ""},
		{"auto", nftBad, []string{"ipset", "iptables", "ip6tables", "ufw"}, Ipset, ""},
		{"auto", nftBad, []string{"iptables", "ip6tables", "ufw"}, UFW, ""},
		{"auto", nftBad, []string{"iptables"}, "", "no usable firewall backend"},
		{"nftables", nftBad, nil, "", "nftables requested but unusable: protocol not supported"},
		{"nft", nftOK, nil, Nftables, ""},
		{"iptables", nftOK, []string{"ipset", "iptables", "ip6tables"}, Ipset, ""},
		{"iptables", nftOK, []string{"iptables", "ip6tables"}, "", "ipset not found"},
		{"ufw", nftOK, []string{"ufw"}, UFW, ""},
		{"pf", nftOK, nil, "", "unknown firewall backend"},
	}
	for _, tt := range tests {
		kind, reason, err := Choose(tt.want, Deps{NftAvailable: tt.nft, LookPath: have(tt.progs...)})
		if tt.errMatch != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errMatch) {
				t.Errorf("Choose(%q) error = %v, want containing %q", tt.want, err, tt.errMatch)
			}
			continue
		}
		if err != nil || kind != tt.kind || reason == "" {
			t.Errorf("Choose(%q) = %q, %q, %v; want %q", tt.want, kind, reason, err, tt.kind)
		}
	}
}

// TestKernelDetectsNftables probes a fresh namespace for real.
func TestKernelDetectsNftables(t *testing.T) {
	ns := nstest.New(t)
	kind, reason, err := Choose("auto", Deps{NetNSFd: ns.Fd()})
	if err != nil || kind != Nftables {
		t.Fatalf("Choose(auto) in a namespace = %q, %q, %v; want nftables", kind, reason, err)
	}
	b, err := New(kind, Deps{NetNSFd: ns.Fd(), Runner: sysexec.NewExec(0)})
	if err != nil || b.Name() != "nftables" {
		t.Fatalf("New(nftables) = %v, %v", b, err)
	}
	if c, ok := b.(interface{ Close() error }); ok {
		t.Cleanup(func() { c.Close() })
	}
	if _, err := New(Auto, Deps{}); err == nil {
		t.Error("New(auto) succeeded")
	}
}

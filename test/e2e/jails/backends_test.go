package jails

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/palisade-project/palisade/internal/firewall/nstest"
)

// backendCase is one firewall backend the scenario runs against.
type backendCase struct {
	name      string // subtest name; the [firewall] backend value
	reported  string // the backend name `palisade status --json` reports
	banaction string // the fail2ban banaction a user of that backend has in jail.local
	programs  []string
	// prepare readies the server namespace before the daemon starts.
	prepare func(t *testing.T, srv *nstest.NS)
	// inventory lists what palisade holds in the kernel (or ufw) now.
	inventory func(t *testing.T, srv *nstest.NS) inventory
}

// inventory is palisade's firewall state: its rules (one string each,
// without handles or counters) and its banned elements ("SET ADDRESS",
// without timeouts).
type inventory struct {
	rules []string
	elems []string
}

func (iv inventory) sorted() inventory {
	r, e := slices.Clone(iv.rules), slices.Clone(iv.elems)
	slices.Sort(r)
	slices.Sort(e)
	return inventory{r, e}
}

// duplicates lists the rules and elements present more than once.
func (iv inventory) duplicates() []string {
	var dup []string
	seen := map[string]int{}
	for _, s := range append(slices.Clone(iv.rules), iv.elems...) {
		seen[s]++
		if seen[s] == 2 {
			dup = append(dup, s)
		}
	}
	return dup
}

// holding lists the elements that ban address a.
func (iv inventory) holding(a string) []string {
	var out []string
	for _, e := range iv.elems {
		if f := strings.Fields(e); len(f) == 2 && f[1] == a {
			out = append(out, e)
		}
	}
	return out
}

func backends() []backendCase {
	return []backendCase{
		{name: "nftables", reported: "nftables", banaction: "nftables-multiport", programs: []string{"nft"}, inventory: nftInventory},
		{name: "iptables", reported: "ipset", banaction: "iptables-ipset-proto6", programs: []string{"ipset", "iptables", "ip6tables"}, inventory: ipsetInventory},
		{name: "ufw", reported: "ufw", banaction: "ufw", programs: []string{"ufw", "iptables", "ip6tables"}, prepare: privateUFW, inventory: ufwInventory},
	}
}

// inNS runs a program in the namespace and returns its output.
func inNS(t *testing.T, ns *nstest.NS, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%v in %s: %v %s", args, ns.Name, err, msg)
	}
	return string(out)
}

func nftInventory(t *testing.T, srv *nstest.NS) inventory {
	t.Helper()
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	out := inNS(t, srv, "nft", "-j", "list", "table", "inet", "palisade")
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j: %v\n%s", err, out)
	}
	var iv inventory
	for _, obj := range doc.Nftables {
		if raw, ok := obj["rule"]; ok {
			var r struct {
				Chain string          `json:"chain"`
				Expr  json.RawMessage `json:"expr"`
			}
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatal(err)
			}
			iv.rules = append(iv.rules, r.Chain+" "+string(r.Expr))
		}
		if raw, ok := obj["set"]; ok {
			var s struct {
				Name string            `json:"name"`
				Elem []json.RawMessage `json:"elem"`
			}
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatal(err)
			}
			for _, e := range s.Elem {
				iv.elems = append(iv.elems, s.Name+" "+nftElem(e))
			}
		}
	}
	return iv
}

// nftElem is an element's value: a plain address, or the val of an
// element carrying a timeout, or a prefix written ADDR/LEN.
func nftElem(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var wrapped struct {
		Elem struct {
			Val json.RawMessage `json:"val"`
		} `json:"elem"`
	}
	if json.Unmarshal(raw, &wrapped) == nil && wrapped.Elem.Val != nil {
		return nftElem(wrapped.Elem.Val)
	}
	var p struct {
		Prefix struct {
			Addr string `json:"addr"`
			Len  int    `json:"len"`
		} `json:"prefix"`
	}
	if json.Unmarshal(raw, &p) == nil && p.Prefix.Addr != "" {
		return p.Prefix.Addr + "/" + strconv.Itoa(p.Prefix.Len)
	}
	return string(raw)
}

// iptablesRules are the "-A" rules of both families that mention filter
// chains matching keep.
func iptablesRules(t *testing.T, srv *nstest.NS, keep func(string) bool) []string {
	t.Helper()
	var rules []string
	for _, fam := range []string{"iptables", "ip6tables"} {
		for _, l := range strings.Split(inNS(t, srv, fam, "-w", "-S"), "\n") {
			if strings.HasPrefix(l, "-A ") && keep(l) {
				rules = append(rules, fam+" "+l)
			}
		}
	}
	return rules
}

func ipsetInventory(t *testing.T, srv *nstest.NS) inventory {
	t.Helper()
	iv := inventory{rules: iptablesRules(t, srv, func(l string) bool {
		return strings.Contains(l, "palisade") || strings.Contains(l, "pal_")
	})}
	for _, l := range strings.Split(inNS(t, srv, "ipset", "save"), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == "add" && strings.HasPrefix(f[1], "pal_") {
			iv.elems = append(iv.elems, f[1]+" "+strings.TrimSuffix(f[2], "/128"))
		}
	}
	return iv
}

func ufwInventory(t *testing.T, srv *nstest.NS) inventory {
	t.Helper()
	iv := inventory{rules: iptablesRules(t, srv, func(l string) bool {
		return strings.HasPrefix(l, "-A ufw-user-input ") || strings.HasPrefix(l, "-A ufw6-user-input ")
	})}
	for _, l := range strings.Split(inNS(t, srv, "ufw", "show", "added"), "\n") {
		if !strings.Contains(l, "palisade:") {
			continue
		}
		iv.rules = append(iv.rules, "ufw "+l)
		f := strings.Fields(l)
		if i := slices.Index(f, "from"); i >= 0 && i+1 < len(f) {
			iv.elems = append(iv.elems, "ufw "+f[i+1])
		}
	}
	return iv
}

// privateUFW gives the server namespace its own enabled ufw (for the test
// and for the daemon started there).
func privateUFW(t *testing.T, srv *nstest.NS) { nstest.PrivateUFW(t, srv) }

package actionexec

import (
	"strings"

	"github.com/palisade-project/palisade/internal/firewall"
)

// Native backend kinds that fail2ban banaction names map to.
const (
	KindNftables = "nftables"
	KindIpset    = "ipset" // iptables + ipset
	KindUFW      = "ufw"
)

// MapBanAction maps a fail2ban banaction name (and its arguments, as in
// "nftables[type=allports]") to a native palisade backend. allPorts says
// the action blocks every port whatever the jail's port option. ok is false
// for actions without a native equivalent: those run through this
// package's exec Backend.
func MapBanAction(name string, args map[string]string) (kind string, allPorts bool, ok bool) {
	name = strings.ToLower(strings.TrimSpace(name))
	name = strings.TrimSuffix(name, ".conf")
	name = strings.TrimSuffix(name, ".local")
	typ := strings.ToLower(strings.TrimSpace(args["type"]))
	switch name {
	case "nftables", "nftables-multiport":
		return KindNftables, typ == "allports", true
	case "nftables-allports":
		return KindNftables, true, true
	case "iptables", "iptables-multiport", "iptables-new", "iptables-ipset", "iptables-ipset-proto4", "iptables-ipset-proto6":
		return KindIpset, typ == "allports", true
	case "iptables-allports", "iptables-ipset-proto6-allports":
		return KindIpset, true, true
	case "ufw":
		return KindUFW, false, true
	}
	return "", false, false
}

// BlockFromOption maps a fail2ban blocktype option ("REJECT --reject-with
// icmp-port-unreachable", "reject", "DROP", "drop", ...) to a block type;
// anything that is not a drop rejects.
func BlockFromOption(blocktype string) firewall.Block {
	f := strings.Fields(strings.ToLower(blocktype))
	if len(f) > 0 && (f[0] == "drop" || f[0] == "deny") {
		return firewall.Drop
	}
	return firewall.Reject
}

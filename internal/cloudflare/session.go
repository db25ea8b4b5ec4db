package cloudflare

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/palisade-project/palisade/internal/firewall"
)

// webServices are the port names a lock's port list may use.
var webServices = firewall.Services{"http/tcp": 80, "https/tcp": 443, "http-alt/tcp": 8080}

// ParsePorts parses a lock's port list: TCP ports and ranges ("80,443",
// "8000-8100" or "8000:8100"; http, https and http-alt by name). Every port
// and port 22 (SSH) are refused: the lock is for web ports.
func ParsePorts(spec string) ([]firewall.PortRange, error) {
	ports, err := firewall.ParsePorts(spec, "tcp", webServices)
	if err != nil {
		return nil, err
	}
	if ports == nil {
		return nil, fmt.Errorf("%q covers every port: the lock takes a list of web ports (such as 80,443)", spec)
	}
	for _, r := range ports {
		if r.From <= 22 && 22 <= r.To {
			return nil, fmt.Errorf("%q covers port 22 (SSH): the lock is for web ports", spec)
		}
	}
	return ports, nil
}

// CheckSession refuses a lock that would cut the SSH session running the
// command: sshConnection is $SSH_CONNECTION ("CLIENT CPORT SERVER SPORT");
// the session is cut when its server port is locked and its client is in
// neither the allow list nor the list to apply.
func CheckSession(sshConnection string, ports []firewall.PortRange, allow, ranges []netip.Prefix) error {
	f := strings.Fields(sshConnection)
	if len(f) != 4 {
		return nil
	}
	client, err := netip.ParseAddr(f[0])
	if err != nil {
		return nil
	}
	client = client.Unmap().WithZone("")
	port, err := strconv.ParseUint(f[3], 10, 16)
	if err != nil {
		return nil
	}
	locked := false
	for _, r := range ports {
		if uint64(r.From) <= port && port <= uint64(r.To) {
			locked = true
		}
	}
	if !locked {
		return nil
	}
	for _, p := range append(append([]netip.Prefix(nil), allow...), ranges...) {
		if p.Contains(client) {
			return nil
		}
	}
	return fmt.Errorf("your SSH session (from %s to port %d) uses a port the lock would close to you: add allow = %s to [cloudflare], lock other ports, or use --force", client, port, client)
}

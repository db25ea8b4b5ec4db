package daemon

import (
	"bufio"
	"context"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/palisade-project/palisade/internal/control"
)

// TestManualBanTargets drives manual bans and unbans through the control
// socket: a network in CIDR form, the jail's ipv6prefix/ipv4prefix applied
// to an address, a network covering an ignoreip address refused, unban
// without a jail lifting the address in every jail, and addresses that
// can never be an attacker's refused as bad requests by the daemon itself
// (a raw request, past the client's own check).
func TestManualBanTargets(t *testing.T) {
	e := newAgreeEnv(t)
	e.write("[DEFAULT]\nignoreip = 203.0.113.5\n\n" + agreeBase + "ipv6prefix = 64\nipv4prefix = 24\n\n" +
		"[web]\nenabled = true\nfilter = sshd\nlogpath = LOG\n")
	if _, err := e.run(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := control.NewClient(e.opts.Socket)
	bans := []struct{ jail, target, want, err string }{
		{"sshd", "2001:db8:1:2::5", "2001:db8:1:2::/64", ""},
		{"sshd", "198.51.100.77", "198.51.100.0/24", ""},
		{"web", "198.51.100.77", "198.51.100.77", ""}, // web aggregates nothing
		{"web", "192.0.2.128/25", "192.0.2.128/25", ""},
		{"sshd", "203.0.113.9", "203.0.113.9", ""}, // its /24 holds the exempt 203.0.113.5
		{"sshd", "203.0.113.0/28", "", "covers an address exempt in jail sshd"},
		{"web", "203.0.113.5", "", "exempt in jail web"},
	}
	for _, b := range bans {
		r, err := c.Ban(ctx, b.jail, b.target, "")
		switch {
		case b.err != "" && (err == nil || !strings.Contains(err.Error(), b.err)):
			t.Errorf("ban %s %s: %+v, %v; want error %q", b.jail, b.target, r, err, b.err)
		case b.err == "" && (err != nil || r.Ban.IP != b.want):
			t.Errorf("ban %s %s: %+v, %v; want %s", b.jail, b.target, r.Ban, err, b.want)
		}
	}
	// An address inside the /24 lifts it in every jail that holds it.
	r, err := c.Unban(ctx, "", "198.51.100.77")
	if err != nil || r.Removed != 2 {
		t.Errorf("unban 198.51.100.77 (no jail): %+v, %v; want 2 lifted", r, err)
	}
	// A network lifts exactly that network's ban.
	if r, err := c.Unban(ctx, "web", "192.0.2.0/24"); err != nil || r.Removed != 0 {
		t.Errorf("unban web 192.0.2.0/24: %+v, %v; want 0", r, err)
	}
	if r, err := c.Unban(ctx, "web", "192.0.2.128/25"); err != nil || r.Removed != 1 {
		t.Errorf("unban web 192.0.2.128/25: %+v, %v; want 1", r, err)
	}
	left := e.bansList()
	if strings.Join(left, " ") != "sshd 2001:db8:1:2::/64 sshd 203.0.113.9/32" {
		t.Errorf("bans left: %v", left)
	}
	for _, ip := range []string{"127.0.0.1", "::", "ff02::1", "255.255.255.255", "fe80::1", "0.0.0.0/0"} {
		reply := rawRequest(t, e.opts.Socket, `{"verb":"ban","jail":"sshd","ip":"`+ip+`"}`)
		if !strings.Contains(reply, `"ok":false`) || !strings.Contains(reply, "bad request: refusing to ban") {
			t.Errorf("raw ban %s: %s", ip, reply)
		}
	}
}

// bansList lists the daemon's bans as "jail prefix", sorted.
func (e *agreeEnv) bansList() []string {
	c := control.NewClient(e.opts.Socket)
	r, err := c.Banned(context.Background(), "")
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, b := range r.Bans {
		p := b.IP
		if !strings.Contains(p, "/") {
			if strings.Contains(p, ":") {
				p += "/128"
			} else {
				p += "/32"
			}
		}
		out = append(out, b.Jail+" "+p)
	}
	slices.Sort(out)
	return out
}

// rawRequest sends one request line to the socket and returns the reply.
func rawRequest(t *testing.T, socket, line string) string {
	t.Helper()
	conn, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("reply: %v", err)
	}
	return reply
}

package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/fleet"
	"github.com/palisade-project/palisade/internal/fleet/fleettest"
)

// fleetTree is a --root tree with a [fleet] section naming this server web1.
func fleetTree(t *testing.T, extra string) (root, etc string) {
	t.Helper()
	root = t.TempDir()
	etc = filepath.Join(root, "etc", "palisade")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, etc, "palisade.local", "[fleet]\nenabled = true\nname = web1\n"+extra)
	return root, etc
}

func TestFleetKeygenAndTrust(t *testing.T) {
	root, etc := fleetTree(t, "")
	sock := filepath.Join(t.TempDir(), "none.sock") // no daemon
	base := []string{"--root", root, "--socket", sock}
	cli := func(args ...string) (int, string, string) {
		return runCLI(t, append(append(append([]string{}, base...), args...), "--config-dir", etc)...)
	}
	code, out, errb := cli("fleet", "keygen")
	if code != 0 || !strings.HasPrefix(out, "web1 ed25519:") || !strings.Contains(errb, "palisade fleet trust add web1 ed25519:") {
		t.Fatalf("keygen: %d %q %q", code, out, errb)
	}
	keyPath := filepath.Join(root, "etc/palisade/fleet.key")
	if _, err := fleet.ReadKey(keyPath); err != nil {
		t.Fatalf("key: %v", err)
	}
	if code, _, errb := cli("fleet", "keygen"); code != 1 || !strings.Contains(errb, "exists") {
		t.Fatalf("second keygen: %d %q", code, errb)
	}
	pub := strings.Fields(out)[1]
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"fleet", "trust", "add", "web2", pub}, 0, "trusted web2\nno daemon is running"},
		{[]string{"fleet", "trust", "add", "web.2", pub}, 2, "invalid origin name"},
		{[]string{"fleet", "trust", "add", "web3", "ssh-ed25519 AAAA"}, 2, "public key"},
		{[]string{"fleet", "trust", "list"}, 0, "web2 " + pub},
		{[]string{"fleet", "trust", "remove", "web9"}, 1, "web9 is not in"},
		{[]string{"fleet", "trust", "remove", "web2"}, 0, "removed web2"},
		{[]string{"fleet", "trust", "list"}, 0, "no trusted origin"},
		{[]string{"fleet", "status"}, 1, "not running"},
		{[]string{"fleet", "init", "--print-only"}, 0, `user: "web1"`},
		{[]string{"fleet", "init", "--replicas", "9"}, 2, "--replicas"},
	} {
		code, out, errb := cli(c.args...)
		if code != c.code || !strings.Contains(out+errb, c.want) {
			t.Errorf("%v: exit %d (want %d)\n%s%s\nwant %q", c.args, code, c.code, out, errb, c.want)
		}
	}
	// A broken [fleet] section is a usage error naming the file and line.
	writeFile(t, etc, "palisade.local", "[fleet]\nname = a.b\n")
	if code, _, errb := cli("fleet", "trust", "list"); code != 2 || !strings.Contains(errb, "palisade.local:2") {
		t.Fatalf("broken config: %d %q", code, errb)
	}
}

func TestFleetInitCreatesTheStream(t *testing.T) {
	srv := fleettest.Start(t, fleettest.Options{Users: []fleettest.User{{Name: "admin", Password: "pw", Admin: true}, {Name: "web1", Password: "w"}}})
	root, etc := fleetTree(t, "servers = "+srv.URL()+"\nuser = web1\npassword = w\n")
	// The member's own account cannot create the stream.
	code, _, errb := runCLI(t, "--root", root, "fleet", "init", "--config-dir", etc)
	if code != 1 || !strings.Contains(errb, "create stream") {
		t.Fatalf("init as the member: %d %q", code, errb)
	}
	code, out, errb := runCLI(t, "--root", root, "fleet", "init", "--config-dir", etc, "--user", "admin", "--password", "pw", "--json")
	if code != 0 {
		t.Fatalf("init: %d %s %s", code, out, errb)
	}
	var res struct {
		Created     bool                   `json:"created"`
		Info        fleet.StreamInfo       `json:"info"`
		Permissions map[string]fleet.Perms `json:"permissions"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Info.MaxMsgsPerSubject != 1 || !res.Info.AllowMsgTTL || res.Info.Problem != "" ||
		res.Permissions["web1"].Publish[0] != "palisade.bans.web1.>" {
		t.Fatalf("init reply %+v", res)
	}
	code, out, _ = runCLI(t, "--root", root, "fleet", "init", "--config-dir", etc, "--user", "admin", "--password", "pw")
	if code != 0 || !strings.Contains(out, "stream palisade-bans updated") {
		t.Fatalf("second init: %d %s", code, out)
	}
}

func TestFleetStatusOutput(t *testing.T) {
	sock := serveFake(t, control.HandlerFunc(func(_ context.Context, req control.Request) (any, error) {
		st := fleet.Status{Name: "web2", Connected: true, Server: "nats://127.0.0.1:4222", CaughtUp: true, Replays: 1, ReplayTook: "12ms",
			Jail: "fleet", RemoteBans: 3, Quorum: 1, Trusted: 2, Daemon: true,
			Stream:  fleet.StreamInfo{Name: "palisade-bans", Messages: 4, Replicas: 1},
			Refused: map[string]uint64{"exempt": 1},
			Peers:   []fleet.Peer{{Origin: "web1", Trusted: true, Received: 4, Applied: 3, Active: 3, Refused: map[string]uint64{"exempt": 1}}}}
		return st, nil
	}))
	code, out, errb := runCLI(t, "--socket", sock, "fleet", "status")
	for _, want := range []string{"web2, connected to nats://127.0.0.1:4222", "palisade-bans, 4 record(s)", "3 ban(s) in force in jail fleet", "exempt 1", "web1"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status: %d %q %q; want %q", code, out, errb, want)
		}
	}
	code, out, _ = runCLI(t, "--socket", sock, "fleet", "status", "--json")
	var st fleet.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.RemoteBans != 3 || st.Peers[0].Applied != 3 {
		t.Fatalf("status --json: %d %s", code, out)
	}
}

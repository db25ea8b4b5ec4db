package daemon

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	defaults "github.com/palisade-project/palisade/config"
	"github.com/palisade-project/palisade/filters"
	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/firewall"
)

// writeConf writes files (relative path → text) under a new config dir.
func writeConf(t *testing.T, files map[string]string) string {
	t.Helper()
	etc := filepath.Join(t.TempDir(), "etc")
	for name, text := range files {
		p := filepath.Join(etc, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return etc
}

// checkOpts are the options of a config check or daemon over etc; every
// firewall backend kind counts as usable.
func checkOpts(etc string) Options {
	return Options{ConfigDir: etc, Builtin: defaults.FS(), Filters: filters.FS(), Probe: func(string) error { return nil }, AllowUID: testerUID()}
}

// testerUID lets the user running the tests through the control socket's
// peer check when that user is not root, so in-process daemon tests run
// for a non-root developer too.
func testerUID() func(uint32) bool {
	me := uint32(os.Geteuid())
	return func(uid uint32) bool { return uid == me }
}

func TestChooseRoute(t *testing.T) {
	const touchAction = "[Definition]\nactionban = touch /tmp/none/<ip>\n"
	cases := []struct {
		name     string
		jail     string // the [sshd] section body after enabled/logpath
		palisade string // palisade.local
		want     string // Route.String()
		allPorts bool
		ignored  int
	}{
		{name: "ufw", jail: "banaction = ufw\n", want: "ufw"},
		{name: "iptables-ipset-proto6", jail: "banaction = iptables-ipset-proto6\n", want: "ipset"},
		{name: "nftables allports", jail: "banaction = nftables-allports\n", want: "nftables", allPorts: true},
		{name: "iptables allports argument", jail: "banaction = iptables-multiport\naction = %(banaction)s[type=allports, port=\"%(port)s\"]\n", want: "ipset", allPorts: true},
		{name: "builtin default", jail: "", want: "nftables"},
		{name: "action lines, native first", jail: "banaction = ufw\naction = %(banaction)s[port=\"%(port)s\"]\n         mytouch[x=1]\n", want: "ufw", ignored: 1},
		{name: "action.d file", jail: "action = mytouch\n", want: "exec:mytouch"},
		{name: "jail-provided tags", jail: "action = named\n", want: "exec:named"},
		{name: "action.d then native", jail: "action = mytouch\n         nftables[port=22]\n", want: "nftables", ignored: 1},
		{name: "forced backend wins", jail: "banaction = ufw\n", palisade: "[firewall]\nbackend = iptables\n", want: "default"},
		{name: "forced backend keeps allports", jail: "banaction = nftables-allports\n", palisade: "[firewall]\nbackend = ufw\n", want: "default", allPorts: true},
		{name: "auto is not forced", jail: "banaction = ufw\n", palisade: "[firewall]\nbackend = auto\n", want: "ufw"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{
				"jail.local":            "[sshd]\nenabled = true\nlogpath = /dev/null\n" + tc.jail,
				"action.d/mytouch.conf": touchAction,
				"action.d/named.conf":   "[Definition]\nactionban = touch /tmp/none/<actname>-<name>-<port>-<protocol>-<ip>\n",
			}
			if tc.palisade != "" {
				files["palisade.local"] = tc.palisade
			}
			etc := writeConf(t, files)
			_, plans, err := Build(checkOpts(etc))
			if err != nil {
				t.Fatal(err)
			}
			rt := plans[0].Route
			if rt.String() != tc.want || rt.AllPorts != tc.allPorts || len(rt.Ignored) != tc.ignored {
				t.Fatalf("route %s allports=%v ignored=%v (%s); want %s allports=%v ignored=%d",
					rt, rt.AllPorts, rt.Ignored, rt.Why, tc.want, tc.allPorts, tc.ignored)
			}
			rep := Check(checkOpts(etc))
			if !rep.OK || len(rep.Jails) != 1 || rep.Jails[0].Firewall != tc.want {
				t.Fatalf("check: %+v", rep)
			}
		})
	}
}

func TestCheckRefusesBadActions(t *testing.T) {
	cases := []struct {
		name   string
		action string // action.d/bad.conf ("" = no file)
		want   []string
	}{
		{name: "refused tag", action: "[Definition]\nactionban = touch /tmp/x/<ip>\n   logger <matches>\n", want: []string{"bad.conf:2", "<matches>"}},
		{name: "refused F- tag", action: "[Definition]\n\nactionban = logger <F-USER> <ip>\n", want: []string{"bad.conf:3", "<F-USER>"}},
		{name: "shell syntax", action: "[Definition]\nactionban = touch /tmp/x/<ip> && rm -rf /\n", want: []string{"bad.conf:2", "actionban"}},
		{name: "missing file", action: "", want: []string{"jail.local:2", "bad"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"jail.local": "[sshd]\nenabled = true\nlogpath = /dev/null\naction = bad\n"}
			if tc.action != "" {
				files["action.d/bad.conf"] = tc.action
			}
			rep := Check(checkOpts(writeConf(t, files)))
			if rep.OK || len(rep.Errors) != 1 {
				t.Fatalf("check passed or wrong errors: %+v", rep)
			}
			msg := rep.Errors[0].Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Fatalf("error %q does not name %q", msg, w)
				}
			}
			if rep.Jails[0].Error == "" {
				t.Fatal("the jail's error is empty")
			}
		})
	}
}

// TestActionFileEnforcesJail runs a daemon with one jail enforced by an
// action.d file and another by the given backend: a manual ban runs the
// action's command with the address, and the other jail's ban reaches the
// backend only.
func TestActionFileEnforcesJail(t *testing.T) {
	touch, err := exec.LookPath("touch")
	if err != nil {
		t.Skip("touch not installed")
	}
	dir := t.TempDir()
	marks := filepath.Join(dir, "marks")
	if err := os.Mkdir(marks, 0o755); err != nil {
		t.Fatal(err)
	}
	etc := writeConf(t, map[string]string{
		"jail.local": "[sshd]\nenabled = true\nlogpath = /dev/null\n\n" +
			"[custom]\nenabled = true\nfilter = sshd\nlogpath = /dev/null\naction = mark[dir=" + marks + "]\n",
		"action.d/mark.conf": "[Definition]\nactionban = " + touch + " <dir>/<ip>\nactionunban = rm -f <dir>/<ip>\n[Init]\ndir = /nonexistent\n",
	})
	fw := firewall.NewFake()
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer devnull.Close()
	opts := checkOpts(etc)
	opts.Socket = filepath.Join(dir, "p.sock")
	opts.DB = filepath.Join(dir, "p.db")
	opts.Backend = fw
	opts.Stderr = devnull
	opts.Notify = func(string) {}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := New(ctx, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	c := control.NewClient(opts.Socket)
	if _, err := c.Ban(ctx, "custom", "192.0.2.7", "1h"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ban(ctx, "sshd", "198.51.100.8", "1h"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(marks, "192.0.2.7")); err != nil {
		t.Fatalf("the action did not run with the banned address: %v", err)
	}
	bans, _ := fw.List(ctx)
	if len(bans) != 1 || bans[0].Jail != "sshd" {
		t.Fatalf("fake backend holds %+v, want only the sshd ban", bans)
	}
	if _, ok := fw.Jails()["custom"]; ok {
		t.Fatal("the action jail was set up in the fake backend")
	}
	st, err := c.Status(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if st.Backend != "fake+exec:mark" {
		t.Fatalf("status backend %q", st.Backend)
	}
	// Reconcile keeps the action's ban (the action cannot list) and the
	// fake's.
	if _, err := d.bans.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unban(ctx, "custom", "192.0.2.7"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(marks, "192.0.2.7")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("actionunban did not run: %v", err)
	}
}

func TestRouter(t *testing.T) {
	ctx := context.Background()
	a, b := firewall.NewFake(), firewall.NewFake()
	r := newRouter(ctx, a)
	r.route(ctx, "web", b)
	specs := []firewall.JailSpec{{Name: "sshd"}, {Name: "web"}}
	if err := r.Setup(ctx, specs); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Jails()["sshd"]; !ok || len(a.Jails()) != 1 {
		t.Fatalf("default backend jails %v", a.Jails())
	}
	if _, ok := b.Jails()["web"]; !ok || len(b.Jails()) != 1 {
		t.Fatalf("routed backend jails %v", b.Jails())
	}
	p1, p2 := netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("2001:db8::1/128")
	exp := time.Now().Add(time.Hour)
	bans := []firewall.Ban{{Jail: "sshd", Prefix: p1, Expires: exp}, {Jail: "web", Prefix: p2, Expires: exp}, {Jail: "web", Prefix: p1}}
	if err := r.Add(ctx, bans); err != nil {
		t.Fatal(err)
	}
	if l, _ := a.List(ctx); len(l) != 1 || l[0].Jail != "sshd" {
		t.Fatalf("default backend bans %+v", l)
	}
	if l, _ := b.List(ctx); len(l) != 2 {
		t.Fatalf("routed backend bans %+v", l)
	}
	all, err := r.List(ctx)
	if err != nil || len(all) != 3 {
		t.Fatalf("router lists %+v, %v; want 3 bans", all, err)
	}
	// A failing backend fails the call but the other still gets its bans.
	b.FailNext = errors.New("boom")
	if err := r.Remove(ctx, bans); err == nil {
		t.Fatal("remove hid the routed backend's error")
	}
	if l, _ := a.List(ctx); len(l) != 0 {
		t.Fatalf("default backend kept %+v", l)
	}
	if err := r.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if l, _ := b.List(ctx); len(l) != 0 || len(b.Jails()) != 0 {
		t.Fatal("teardown skipped the routed backend")
	}
	if n := r.Name(); n != "fake+fake" {
		t.Fatalf("name %q", n)
	}
}

// unlistable is a Fake that cannot list, like the action.d backend.
type unlistable struct{ *firewall.Fake }

func (unlistable) Name() string { return "exec:x" }
func (unlistable) List(context.Context) ([]firewall.Ban, error) {
	return nil, firewall.ErrNotListable
}

func TestRouterNotListablePerBackend(t *testing.T) {
	ctx := context.Background()
	a, x := firewall.NewFake(), unlistable{firewall.NewFake()}
	p := netip.MustParsePrefix("203.0.113.5/32")

	// Alone, a backend that cannot list keeps ErrNotListable.
	only := newRouter(ctx, x)
	if _, err := only.List(ctx); !errors.Is(err, firewall.ErrNotListable) {
		t.Fatalf("List = %v, want ErrNotListable", err)
	}

	r := newRouter(ctx, a)
	r.route(ctx, "act", x)
	x.FailNext = errors.New("refused")
	if err := r.Add(ctx, []firewall.Ban{{Jail: "act", Prefix: p}}); err == nil {
		t.Fatal("refused add not reported")
	}
	if l, err := r.List(ctx); err != nil || len(l) != 0 {
		t.Fatalf("a refused ban is listed: %+v, %v", l, err)
	}
	if err := r.Add(ctx, []firewall.Ban{{Jail: "act", Prefix: p}, {Jail: "sshd", Prefix: p}}); err != nil {
		t.Fatal(err)
	}
	l, err := r.List(ctx)
	if err != nil || len(l) != 2 {
		t.Fatalf("List = %+v, %v; want the fake's ban and the added action ban", l, err)
	}
	if err := r.Remove(ctx, []firewall.Ban{{Jail: "act", Prefix: p}}); err != nil {
		t.Fatal(err)
	}
	if l, _ := r.List(ctx); len(l) != 1 || l[0].Jail != "sshd" {
		t.Fatalf("after remove: %+v", l)
	}
}

package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	defaults "github.com/palisade-project/palisade/config"
	"github.com/palisade-project/palisade/filters"
	"github.com/palisade-project/palisade/internal/firewall/nft"
	"github.com/palisade-project/palisade/internal/firewall/nstest"
)

// The guard repairs the nft backend's table (here in a namespace of its
// own, found by the periodic check: the event watcher listens in the
// test's namespace) and puts every ban back when the sets were lost.
func TestGuardRestoresFlushedTable(t *testing.T) {
	ns := nstest.New(t)
	nstest.RequireProgram(t, "nft")
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc")
	logf := filepath.Join(dir, "auth.log")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "jail.local"), []byte("[sshd]\nenabled = true\nport = 22\nlogpath = "+logf+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	be, err := nft.New(nft.Options{NetNSFd: ns.Fd()})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer devnull.Close()
	opts := Options{
		ConfigDir: etc, Socket: filepath.Join(dir, "run", "p.sock"), DB: filepath.Join(dir, "p.db"), Root: dir,
		Builtin: defaults.FS(), Filters: filters.FS(),
		Backend: be, Stderr: devnull, Notify: func(string) {},
	}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = d.Serve(ctx) }()
	defer func() { cancel(); wg.Wait() }()
	for _, ip := range []string{"203.0.113.7", "2001:db8::7"} {
		a := netip.MustParseAddr(ip)
		if _, err := d.bans.Ban(ctx, "sshd", netip.PrefixFrom(a, a.BitLen()), time.Hour, "test"); err != nil {
			t.Fatal(err)
		}
	}
	for _, damage := range [][]string{{"flush", "table", "inet", "palisade"}, {"delete", "table", "inet", "palisade"}} {
		if out, err := exec.Command("ip", append([]string{"netns", "exec", ns.Name, "nft"}, damage...)...).CombinedOutput(); err != nil {
			t.Fatalf("nft %v: %v %s", damage, err, out)
		}
		if be.Intact(ctx) == nil {
			t.Fatalf("nft %v did no damage", damage)
		}
		nstest.Eventually(t, 10*time.Second, "table repaired after nft "+damage[0], func() error {
			if err := be.Intact(ctx); err != nil {
				return err
			}
			got, err := be.List(ctx)
			if err != nil {
				return err
			}
			if len(got) != 2 {
				return fmt.Errorf("%d bans in the kernel", len(got))
			}
			return nil
		})
	}
}

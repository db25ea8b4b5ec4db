package daemon

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/firewall"
)

// TestFail2banConfDrivesDaemon starts the daemon on a fail2ban tree whose
// fail2ban.conf (settings in [DEFAULT], as Debian ships it) and
// fail2ban.local name the log target, log level, socket and database: the
// daemon listens on that socket, keeps its bans in that file, writes
// fail2ban's ban lines to that log at that level, and the recidive jail
// reading that log bans an address banned twice elsewhere, ignoring the
// unban between and its own ban line.
func TestFail2banConfDrivesDaemon(t *testing.T) {
	dir := t.TempDir()
	logf := filepath.Join(dir, "log", "fail2ban.log")
	sock := filepath.Join(dir, "run", "fail2ban.sock")
	db := filepath.Join(dir, "lib", "fail2ban.db")
	auth := filepath.Join(dir, "auth.log")
	etc := writeConf(t, map[string]string{
		"fail2ban.conf": "[DEFAULT]\nloglevel = INFO\nlogtarget = " + logf + "\nsocket = " + sock +
			"\ndbfile = " + db + "\ndbpurgeage = 1d\n\n[Definition]\n\n[Thread]\n",
		"fail2ban.local": "[Definition]\nloglevel = DEBUG\n",
		"jail.local": "[sshd]\nenabled = true\nlogpath = " + auth + "\n\n" +
			"[recidive]\nenabled = true\nlogpath = " + logf + "\nmaxretry = 2\nfindtime = 1d\nbantime = 1w\n",
	})
	if err := os.WriteFile(auth, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	opts := checkOpts(etc)
	opts.RequireConfigDir = true
	fw := firewall.NewFake()
	opts.Backend = fw
	opts.Stderr = &strings.Builder{} // nothing may land here: the log target is the file
	opts.Notify = func(string) {}
	opts.PollInterval = 20 * time.Millisecond
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
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("daemon did not stop")
		}
	}()

	c := control.NewClient(sock)
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("fail2ban.conf socket %s: %v", sock, err)
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("fail2ban.conf dbfile not used: %v", err)
	}
	const ip = "198.51.100.7"
	for i, call := range []func() error{
		func() error { _, err := c.Ban(ctx, "sshd", ip, ""); return err },
		func() error { _, err := c.Unban(ctx, "sshd", ip); return err },
		func() error { _, err := c.Ban(ctx, "sshd", ip, ""); return err },
	} {
		if err := call(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	b := waitBanned(t, d, "recidive", ip)
	if b.Permanent || b.Expires == nil || b.Expires.Sub(b.Since) != 7*24*time.Hour {
		t.Errorf("recidive ban %+v, want one week", b)
	}
	// recidive's own ban line is in the log, and is not counted again.
	eventually(t, "recidive's ban line", func() bool {
		text, _ := os.ReadFile(logf)
		return strings.Contains(string(text), "NOTICE  [recidive] Ban "+ip)
	})
	time.Sleep(100 * time.Millisecond)
	if n := len(d.bans.List("recidive")); n != 1 {
		t.Errorf("recidive holds %d bans, want 1", n)
	}
	text, err := os.ReadFile(logf)
	if err != nil {
		t.Fatal(err)
	}
	banLine := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} fail2ban\.actions {8}\[\d+\]: NOTICE  \[sshd\] (Un)?[Bb]an 198\.51\.100\.7$`)
	if n := len(banLine.FindAllString(string(text), -1)); n != 3 {
		t.Errorf("%d fail2ban ban/unban lines for sshd, want 3:\n%s", n, text)
	}
	if !strings.Contains(string(text), "]: DEBUG   ") {
		t.Errorf("fail2ban.local loglevel = DEBUG not applied:\n%s", text)
	}
	if s := opts.Stderr.(*strings.Builder).String(); s != "" {
		t.Errorf("stderr got log lines with a file log target:\n%s", s)
	}
}

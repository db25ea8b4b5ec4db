package sshd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/harden/ports"
	"github.com/palisade-project/palisade/internal/sysexec"
)

// TestAuditRootIncludes: under --root, Include lines written for the real
// host (absolute /etc/ssh/..., or relative to /etc/ssh) name files inside
// the root for sshd too, and the audit's file:line agrees with sshd -T.
func TestAuditRootIncludes(t *testing.T) {
	for _, inc := range []string{"/etc/ssh/sshd_config.d/*.conf", "sshd_config.d/*.conf"} {
		t.Run(inc, func(t *testing.T) {
			r := newRoot(t, "Include "+inc+"\nUsePAM no\nHostKey /etc/ssh/ssh_host_ed25519_key\nPidFile {ROOT}/run/sshd.pid\n")
			// Values no real host has: only this root's drop-in sets them.
			r.Write("/etc/ssh/sshd_config.d/20-odd.conf", "MaxAuthTries 7\nLoginGraceTime 17\n")
			a := &Auditor{Daemon: NewDaemon(sysexec.NewExec(30*time.Second), r.Dir), Root: r.Dir}
			rep, err := a.Audit(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			f := findings(rep)
			mt := f["max-auth-tries"]
			if mt.Value != "7" || mt.Where != r.Path("/etc/ssh/sshd_config.d/20-odd.conf")+":1" {
				t.Errorf("max-auth-tries = %+v: want sshd's value 7 traced to the root's drop-in", mt)
			}
			eff, err := a.Daemon.Effective(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if eff.Get("logingracetime") != "17" {
				t.Errorf("sshd -T logingracetime = %q, want 17 (from the root's drop-in)", eff.Get("logingracetime"))
			}
		})
	}
}

// TestSSHDErrorNamesRealFiles: sshd's own complaint is shown, with the
// root's paths (not the temporary copy's) and its line number.
func TestSSHDErrorNamesRealFiles(t *testing.T) {
	r := newRoot(t, "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM no\n")
	r.Write("/etc/ssh/sshd_config.d/30-typo.conf", "\n\nPasswordAuthentcation no\n")
	d := NewDaemon(sysexec.NewExec(30*time.Second), r.Dir)
	for _, run := range []func() error{
		func() error { return d.Test(context.Background()) },
		func() error { _, err := d.Effective(context.Background(), nil); return err },
	} {
		err := run()
		var se *SSHDError
		if !errors.As(err, &se) {
			t.Fatalf("err = %v, want an *SSHDError", err)
		}
		want := r.Path("/etc/ssh/sshd_config.d/30-typo.conf") + ": line 3: Bad configuration option: PasswordAuthentcation"
		if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "palisade-sshd-") {
			t.Errorf("error %q\nwant sshd's words with the real path: %q", err, want)
		}
		if strings.Count(err.Error(), "sshd -") != 1 {
			t.Errorf("error %q names the command more than once", err)
		}
	}
}

// TestHardenSymlinkedConfig: a symlinked sshd_config (absolute target,
// inside the root) stays a symlink: harden writes its target, sshd
// verifies the result, and rollback restores target and link as they
// were.
func TestHardenSymlinkedConfig(t *testing.T) {
	r := newRoot(t, "")
	body := "Include /etc/ssh/sshd_config.d/*.conf\n\nPasswordAuthentication yes\nUsePAM no\nPidFile {ROOT}/run/sshd.pid\n"
	r.Write("/srv/ssh/sshd_config", body)
	link := r.Path("/etc/ssh/sshd_config")
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/srv/ssh/sshd_config", link); err != nil {
		t.Fatal(err)
	}
	r.User("admin", "1000", "/bin/bash", r.Keygen("/keys/admin"))
	before := r.Read("/srv/ssh/sshd_config")
	h, _ := newHardener(r, sysexec.NewExec(30*time.Second), map[string]string{"SUDO_USER": "admin"})
	h.Firewall = ports.None{}
	ctx := context.Background()
	res, err := h.Harden(ctx, Options{Settings: Settings{KeysOnly: true}, ConfirmWithin: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(link); err != nil || target != "/srv/ssh/sshd_config" {
		t.Fatalf("after harden %s is %q, %v: want the symlink kept", link, target, err)
	}
	if got := r.Read("/srv/ssh/sshd_config"); !strings.Contains(got, "PasswordAuthentication no") || strings.Contains(got, "PasswordAuthentication yes") {
		t.Errorf("target after harden:\n%s", got)
	}
	if eff, _ := h.Daemon.Effective(ctx, nil); eff.Get("passwordauthentication") != "no" {
		t.Errorf("sshd -T passwordauthentication = %q", eff.Get("passwordauthentication"))
	}
	if !slices.Contains(res.Files, link) {
		t.Errorf("changed files %q, want the link's path", res.Files)
	}
	// An editor replaced the link by a plain file meanwhile: rollback puts
	// back the link and the old text.
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	r.Write("/etc/ssh/sshd_config", "Port 22\n")
	if _, _, err := h.Rollback(ctx, false, ""); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(link); err != nil || target != "/srv/ssh/sshd_config" {
		t.Errorf("after rollback %s is %q, %v: want the symlink back", link, target, err)
	}
	if got := r.Read("/srv/ssh/sshd_config"); got != before {
		t.Errorf("target after rollback:\n%s\nwant:\n%s", got, before)
	}
}

// sshdScript fakes sshd: its first run says the privilege separation
// directory is missing unless it exists, then sshd -T prints a config.
type sshdScript struct {
	privsep string
	calls   int
}

func (s *sshdScript) Run(_ context.Context, c sysexec.Cmd) (sysexec.Result, error) {
	s.calls++
	if _, err := os.Stat(s.privsep); err != nil {
		msg := privsepMissing + s.privsep + "\n"
		return sysexec.Result{Stderr: []byte(msg), ExitCode: 255}, &sysexec.ExitError{Cmd: c.String(), ExitCode: 255, Stderr: msg}
	}
	return sysexec.Result{Stdout: []byte("port 22\npasswordauthentication no\n")}, nil
}

// TestPrivsepDirCreated: on a host where sshd never ran, the privilege
// separation directory sshd names is created (0755) and sshd run again.
func TestPrivsepDirCreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "sshd")
	s := &sshdScript{privsep: dir}
	d := &Daemon{Runner: s, Binary: "sshd", Config: "/etc/ssh/sshd_config"}
	eff, err := d.Effective(context.Background(), nil)
	if err != nil || eff.Get("port") != "22" {
		t.Fatalf("Effective = %v, %v", eff, err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
		t.Errorf("privilege separation directory: %v, %v", fi, err)
	}
	if s.calls != 2 {
		t.Errorf("sshd ran %d times, want 2", s.calls)
	}
	// A directory that cannot be made: sshd's own words come back.
	s2 := &sshdScript{privsep: "/proc/palisade-cannot-exist/sshd"}
	d.Runner = s2
	err = d.Test(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Missing privilege separation directory: /proc/palisade-cannot-exist/sshd") {
		t.Errorf("err = %v", err)
	}
}

package jails

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall/nstest"
)

// testUser is the account the clients log in to.
type testUser struct {
	name, password string
	key            string // private key file of the admin
	authorized     string // authorized_keys file given to sshd
}

// userName differs from test/e2e's user: the packages may run in parallel.
const userName = "palisade-jails"

// lockUser holds an exclusive lock on the test account's name until the
// test ends, so that two runs of these tests on one machine (two checkouts)
// take turns instead of resetting each other's account.
func lockUser(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), userName+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("lock the test account: %v", err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}

// newUser creates the local account (useradd, chpasswd) and a key pair;
// the account is removed when the test ends.
func newUser(t *testing.T) *testUser {
	t.Helper()
	// sshd reads authorized_keys as the user: the directory must be
	// searchable by everyone (t.TempDir is 0700).
	dir, err := os.MkdirTemp("", "palisade-e2e-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lockUser(t)
	// A leftover from an interrupted run is removed first.
	if exec.Command("id", userName).Run() == nil {
		if out, err := exec.Command("userdel", userName).CombinedOutput(); err != nil {
			t.Fatalf("remove stale user %s: %v\n%s", userName, err, out)
		}
	}
	if out, err := exec.Command("useradd", "--no-create-home", "--home-dir", "/nonexistent",
		"--shell", "/bin/sh", "--comment", "palisade e2e test", userName).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", userName).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", userName, err, out)
		}
	})
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	u := &testUser{name: userName, password: "Pw-" + hex.EncodeToString(rnd[:]),
		key: filepath.Join(dir, "admin_ed25519"), authorized: filepath.Join(dir, "authorized_keys")}
	cmd := exec.Command("chpasswd")
	cmd.Stdin = strings.NewReader(u.name + ":" + u.password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v\n%s", err, out)
	}
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "palisade-e2e-admin", "-f", u.key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(u.key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(u.authorized, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return u
}

// sshd is an OpenSSH server running in the server namespace. It logs with
// -e to stderr; the test turns each line into the classic syslog form
// ("Nov 24 20:14:48 host sshd[PID]: message") appended to authLog, the
// file the daemon watches.
type sshd struct {
	authLog string
	cmd     *exec.Cmd
	done    chan struct{}
}

func startSSHD(t *testing.T, l *lab, u *testUser, dir string) *sshd {
	t.Helper()
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	// sshd refuses to start without its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "sshd_config")
	text := strings.Join([]string{
		"Port 22",
		"ListenAddress 0.0.0.0",
		"ListenAddress ::",
		"HostKey " + hostKey,
		"PidFile none",
		// No PAM: no per-failure PAM delay, passwords checked by sshd itself.
		"UsePAM no",
		"PasswordAuthentication yes",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		"AuthorizedKeysFile " + u.authorized,
		"StrictModes no",
		"PermitRootLogin no",
		"UseDNS no",
		"LogLevel INFO",
		"MaxStartups 100:30:200",
		"LoginGraceTime 30",
		"",
	}, "\n")
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &sshd{authLog: filepath.Join(dir, "auth.log"), done: make(chan struct{})}
	logf, err := os.OpenFile(s.authLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	// sshd's per-connection children inherit stderr: the test owns the
	// pipe so that a child still alive at the end cannot hold it open.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command("ip", "netns", "exec", l.srv.Name, "/usr/sbin/sshd", "-D", "-e", "-f", conf)
	s.cmd.Stderr = w
	err = s.cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		logf.Close()
		t.Fatalf("start sshd: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(exited) }()
	pid := s.cmd.Process.Pid
	go func() {
		defer close(s.done)
		defer logf.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			msg := strings.TrimRight(sc.Text(), "\r")
			line := fmt.Sprintf("%s palisade-e2e sshd[%d]: %s\n", time.Now().Format(time.Stamp), pid, msg)
			_, _ = logf.WriteString(line) // one write per line: the tailer never sees half a line
		}
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-exited
		}
		killAll(t, l.srv) // connection children left behind
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Errorf("sshd's stderr still open after every process of %s was killed", l.srv.Name)
		}
		r.Close()
		<-s.done
		if t.Failed() {
			if b, err := os.ReadFile(s.authLog); err == nil {
				t.Logf("auth.log:\n%s", tail(b, 80))
			}
		}
	})
	nstest.Eventually(t, 10*time.Second, "sshd listening", func() error {
		b, _ := os.ReadFile(s.authLog)
		if !bytes.Contains(b, []byte("Server listening on :: port 22")) || !bytes.Contains(b, []byte("Server listening on 0.0.0.0 port 22")) {
			return errors.New("no 'Server listening' lines yet")
		}
		if o := l.reach(t, adminIP); o != nstest.Connected {
			return fmt.Errorf("admin connection: %s", o)
		}
		return nil
	})
	return s
}

// tail is the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// sshArgs are the client options every login uses: no configuration
// files, no host key checks, one authentication method.
func sshArgs(from string) []string {
	return []string{"ssh", "-F", "/dev/null",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "-o", "GSSAPIAuthentication=no",
		"-b", from}
}

// loginKey logs in from address from with the admin's key and runs true.
func (l *lab) loginKey(u *testUser, from string) error {
	args := append(sshArgs(from), "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey",
		"-o", "IdentitiesOnly=yes", "-i", u.key, "-l", u.name, sshPort(from).Addr().String(), "true")
	return l.run(from, args, "")
}

// loginPassword logs in from address from as user with password (through
// sshpass) and runs true; one password prompt per connection, so a wrong
// password costs exactly one "Failed password" line (two for an unknown
// user: "Invalid user" and "Failed password").
func (l *lab) loginPassword(user, password, from string) error {
	args := append([]string{"sshpass", "-e"}, sshArgs(from)...)
	args = append(args, "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
		"-o", "NumberOfPasswordPrompts=1", "-l", user, sshPort(from).Addr().String(), "true")
	return l.run(from, args, password)
}

func (l *lab) run(from string, args []string, password string) error {
	full := append([]string{"netns", "exec", l.nsOf(from).Name}, args...)
	cmd := exec.Command("ip", full...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/nonexistent"}
	if password != "" {
		cmd.Env = append(cmd.Env, "SSHPASS="+password)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(out.String()))
		}
		return nil
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("ssh from %s hung: %s", from, out.String())
	}
}

package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/firewall/nstest"
)

const e2ePassword = "Corr3ct-Horse-e2e"

// e2eUserName is a per-run account name, so concurrent runs of the
// package (several developers' or helpers' test runs) never share a user.
func e2eUserName() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "pal-e2e-" + hex.EncodeToString(b[:])
}

// sshLab is a real sshd in the server namespace with a test user who has
// both a password and a key.
type sshLab struct {
	t    *testing.T
	user string
	net  *pair
	root string // the --root tree holding sshd's configuration
	key  string // the client's private key
	sshd *exec.Cmd
}

func newSSHLab(t *testing.T) *sshLab {
	t.Helper()
	palisadeBin(t)
	requirePrograms(t, "sshd", "ssh", "sshpass", "ssh-keygen", "useradd", "userdel", "chpasswd", "ip", "nft")
	lab := &sshLab{t: t, user: e2eUserName(), net: newPair(t)}
	e2eUser := lab.user

	// The root must be traversable by the test user (sshd reads
	// authorized_keys with the user's privileges), so not t.TempDir (0700).
	root, err := os.MkdirTemp("", "palisade-e2e-ssh-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	lab.root = root
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}

	// The test user, removed again even when the test fails.
	home := filepath.Join(root, "home", e2eUser)
	if r := runIn(nil, 10*time.Second, nil, "useradd", "-M", "-d", home, "-s", "/bin/sh", e2eUser); r.Code != 0 {
		t.Fatalf("useradd: %s", r.Out)
	}
	t.Cleanup(func() { runIn(nil, 10*time.Second, nil, "userdel", e2eUser) })
	if r := runChpasswd(e2eUser + ":" + e2ePassword); r.Code != 0 {
		t.Fatalf("chpasswd: %s", r.Out)
	}
	u, err := user.Lookup(e2eUser)
	if err != nil {
		t.Fatal(err)
	}
	lab.write("/etc/passwd", fmt.Sprintf("root:x:0:0:root:/root:/bin/bash\n%s:x:%s:%s::%s:/bin/sh\n", e2eUser, u.Uid, u.Gid, home))

	// Keys: the server's host key, the client's key in the user's authorized_keys.
	lab.keygen(filepath.Join(root, "etc/ssh/ssh_host_ed25519_key"))
	lab.key = filepath.Join(root, "client/id_ed25519")
	pub := lab.keygen(lab.key)
	lab.write("/home/"+e2eUser+"/.ssh/authorized_keys", pub)
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, p := range []string{home, home + "/.ssh", home + "/.ssh/authorized_keys"} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}

	lab.write("/etc/ssh/sshd_config", fmt.Sprintf(`# e2e sshd_config
Include %[1]s/etc/ssh/sshd_config.d/*.conf

Port 22
HostKey %[1]s/etc/ssh/ssh_host_ed25519_key
PidFile %[1]s/run/sshd.pid
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin no
AllowUsers %[2]s
AuthorizedKeysFile .ssh/authorized_keys
`, root, e2eUser))
	lab.write("/etc/ssh/sshd_config.d/50-cloud-init.conf", "PasswordAuthentication yes\n")
	lab.write("/etc/palisade/jail.local", "[sshd]\nenabled = true\nport = ssh\n")
	if err := os.MkdirAll(filepath.Join(root, "run"), 0o755); err != nil {
		t.Fatal(err)
	}

	sshdPath, err := exec.LookPath("sshd")
	if err != nil {
		t.Fatal(err)
	}
	// sshd re-executes itself on SIGHUP, so it needs its absolute path.
	lab.sshd = startIn(t, lab.net.Server, sshdPath, "-D", "-e", "-f", filepath.Join(root, "etc/ssh/sshd_config"))
	lab.waitListening(22)
	t.Cleanup(lab.stopWatcher)
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(root, "var/lib/palisade/harden/watcher.log"))
			t.Logf("watcher.log:\n%s", log)
		}
	})
	return lab
}

func runChpasswd(line string) result {
	cmd := exec.Command("chpasswd")
	cmd.Stdin = strings.NewReader(line + "\n")
	out, err := cmd.CombinedOutput()
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	return result{Out: string(out), Code: code, Err: err}
}

func (l *sshLab) write(p, content string) {
	l.t.Helper()
	full := filepath.Join(l.root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		l.t.Fatal(err)
	}
}

func (l *sshLab) keygen(path string) string {
	l.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		l.t.Fatal(err)
	}
	if r := runIn(nil, 30*time.Second, nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "palisade-e2e", "-f", path); r.Code != 0 {
		l.t.Fatalf("ssh-keygen: %s", r.Out)
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil {
		l.t.Fatal(err)
	}
	return string(pub)
}

func (l *sshLab) addr(port int) string {
	return net.JoinHostPort(l.net.ServerAddr.String(), strconv.Itoa(port))
}

func (l *sshLab) waitListening(port int) {
	l.t.Helper()
	eventually(l.t, 10*time.Second, fmt.Sprintf("sshd listening on %d", port), func() error {
		o, err := nstest.Dial(l.net.Client, l.addr(port), 500*time.Millisecond)
		if err != nil {
			return err
		}
		if o != nstest.Connected {
			return fmt.Errorf("port %d: %s", port, o)
		}
		return nil
	})
}

var sshOpts = []string{"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"}

// keyLogin logs in with the key and runs "echo ok".
func (l *sshLab) keyLogin(port int) error {
	args := append(append([]string{}, sshOpts...), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", l.key, "-p", strconv.Itoa(port), l.user+"@"+l.net.ServerAddr.String(), "echo", "ok")
	r := runIn(l.net.Client, 15*time.Second, nil, "ssh", args...)
	if r.Code != 0 || !strings.Contains(r.Out, "ok") {
		return fmt.Errorf("key login on %d: exit %d: %s", port, r.Code, r.Out)
	}
	return nil
}

// passwordLogin logs in with the password only.
func (l *sshLab) passwordLogin(port int) result {
	args := append([]string{"-p", e2ePassword, "ssh"}, sshOpts...)
	args = append(args, "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "NumberOfPasswordPrompts=1",
		"-p", strconv.Itoa(port), l.user+"@"+l.net.ServerAddr.String(), "echo", "ok")
	return runIn(l.net.Client, 15*time.Second, nil, "sshpass", args...)
}

// palisade runs the binary in the server namespace under the lab's root,
// as the admin would with sudo.
func (l *sshLab) palisade(args ...string) result {
	args = append([]string{"--root", l.root}, args...)
	return runIn(l.net.Server, 30*time.Second, []string{"SUDO_USER=" + l.user}, binary, args...)
}

func (l *sshLab) state() map[string]any {
	data, err := os.ReadFile(filepath.Join(l.root, "var/lib/palisade/harden/state.json"))
	if err != nil {
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	return m
}

// watcherPID returns the watcher's pid while it runs (0 otherwise).
func (l *sshLab) watcherPID() int {
	st := l.state()
	f, _ := st["watcher_pid"].(float64)
	pid := int(f)
	if pid <= 0 {
		return 0
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !strings.Contains(string(cmdline), l.root) {
		return 0
	}
	return pid
}

func (l *sshLab) stopWatcher() {
	if pid := l.watcherPID(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// allowChain lists palisade's nftables allow chain in the server namespace.
func (l *sshLab) allowChain() string {
	return runIn(l.net.Server, 10*time.Second, nil, "nft", "list", "chain", "inet", "palisade", "allow").Out
}

// hashEtc digests the configuration files under the root's /etc.
func (l *sshLab) hashEtc() string {
	l.t.Helper()
	var entries []string
	err := filepath.WalkDir(filepath.Join(l.root, "etc"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		entries = append(entries, p+" "+hex.EncodeToString(sum[:]))
		return nil
	})
	if err != nil {
		l.t.Fatal(err)
	}
	sort.Strings(entries)
	sum := sha256.Sum256([]byte(strings.Join(entries, "\n")))
	return hex.EncodeToString(sum[:])
}

func (l *sshLab) refused(port int) error {
	o, err := nstest.Dial(l.net.Client, l.addr(port), time.Second)
	if err != nil {
		return err
	}
	if o != nstest.Refused {
		return fmt.Errorf("port %d: %s, want refused", port, o)
	}
	return nil
}

func TestSSHHardenKeysOnlyPortConfirmAndRollback(t *testing.T) {
	lab := newSSHLab(t)

	// Before: password and key logins work on 22.
	if r := lab.passwordLogin(22); r.Code != 0 {
		t.Fatalf("password login before hardening: exit %d: %s", r.Code, r.Out)
	}
	if err := lab.keyLogin(22); err != nil {
		t.Fatal(err)
	}
	// The audit names the drop-in that re-enables passwords.
	r := lab.palisade("ssh", "audit", "--json")
	if r.Code != 0 || !strings.Contains(r.Out, "50-cloud-init.conf:1") {
		t.Fatalf("audit: exit %d: %s", r.Code, r.Out)
	}

	// Refused without changing anything: port in use (sshd's own 22 is
	// ignored, so use a listener of our own), out of range.
	before := lab.hashEtc()
	nstest.Listen(t, lab.net.Server, "0.0.0.0:2300")
	if r := lab.palisade("ssh", "harden", "--keys-only", "--port", "2300"); r.Code != 1 || !strings.Contains(r.Out, "already in use") {
		t.Errorf("port in use: exit %d: %s", r.Code, r.Out)
	}
	if r := lab.palisade("ssh", "harden", "--port", "80"); r.Code != 2 {
		t.Errorf("port 80: exit %d: %s", r.Code, r.Out)
	}
	if lab.hashEtc() != before {
		t.Fatal("a refused harden changed files")
	}

	// Harden: keys only on 2222.
	r = lab.palisade("ssh", "harden", "--keys-only", "--port", "2222", "--confirm-within", "30s", "--firewall", "nftables")
	if r.Code != 0 {
		t.Fatalf("harden: exit %d: %s", r.Code, r.Out)
	}
	if !strings.Contains(r.Out, "+Port 2222") && !strings.Contains(r.Out, "Port 2222") {
		t.Errorf("no diff shown: %s", r.Out)
	}
	lab.waitListening(2222)
	eventually(t, 10*time.Second, "key login on 2222", func() error { return lab.keyLogin(2222) })
	if r := lab.passwordLogin(2222); r.Code == 0 || !strings.Contains(r.Out, "Permission denied") {
		t.Errorf("password login on 2222 after --keys-only: exit %d: %s", r.Code, r.Out)
	}
	if !strings.Contains(lab.allowChain(), "2222") {
		t.Errorf("2222 not opened in palisade's allow chain:\n%s", lab.allowChain())
	}
	if jl, _ := os.ReadFile(filepath.Join(lab.root, "etc/palisade/jail.local")); !strings.Contains(string(jl), "port = 2222") {
		t.Errorf("jail.local:\n%s", jl)
	}
	if lab.watcherPID() == 0 {
		t.Error("no rollback watcher running")
	}

	if r := lab.palisade("ssh", "confirm"); r.Code != 0 {
		t.Fatalf("confirm: exit %d: %s", r.Code, r.Out)
	}
	eventually(t, 5*time.Second, "watcher ends after confirm", func() error {
		if pid := lab.watcherPID(); pid != 0 {
			return fmt.Errorf("watcher %d still running", pid)
		}
		return nil
	})
	if err := lab.refused(22); err != nil {
		t.Errorf("after confirm: %v", err)
	}
	if err := lab.keyLogin(2222); err != nil {
		t.Error(err)
	}
	confirmed := lab.hashEtc()

	// Second change, never confirmed: rolls back by itself.
	r = lab.palisade("ssh", "harden", "--port", "2022", "--no-root-password", "--confirm-within", "5s", "--firewall", "nftables")
	if r.Code != 0 {
		t.Fatalf("second harden: exit %d: %s", r.Code, r.Out)
	}
	lab.waitListening(2022)
	if !strings.Contains(lab.allowChain(), "2022") {
		t.Errorf("2022 not opened:\n%s", lab.allowChain())
	}
	start := time.Now()
	eventually(t, 20*time.Second, "automatic rollback to 2222", func() error {
		st := lab.state()
		if rb, _ := st["rolled_back"].(bool); !rb {
			return fmt.Errorf("not rolled back yet")
		}
		return lab.keyLogin(2222)
	})
	t.Logf("rolled back %v after the change", time.Since(start).Round(100*time.Millisecond))
	if lab.hashEtc() != confirmed {
		t.Error("rollback did not restore the files byte for byte")
	}
	if err := lab.refused(2022); err != nil {
		t.Errorf("after rollback: %v", err)
	}
	if strings.Contains(lab.allowChain(), "2022") {
		t.Errorf("2022 still open after rollback:\n%s", lab.allowChain())
	}
	if r := lab.passwordLogin(2222); r.Code == 0 {
		t.Error("password login works after the rollback (the confirmed keys-only setting was lost)")
	}
	if r := lab.palisade("ssh", "confirm"); r.Code == 0 {
		t.Errorf("confirm after rollback succeeded: %s", r.Out)
	}
}

// TestSSHHardenMovesTheDaemonsJail: a daemon runs a fail2ban-style
// configuration (/etc/fail2ban, a jail ssh-guard with the sshd filter,
// its port set in a jail.d/*.local that wins over jail.local). ssh harden
// --port asks that daemon which configuration it runs, moves ssh-guard's
// port where it is really set, and reloads the daemon: a ban in that jail
// then blocks the new port.
func TestSSHHardenMovesTheDaemonsJail(t *testing.T) {
	lab := newSSHLab(t)
	f2b := filepath.Join(lab.root, "etc/fail2ban")
	lab.write("/etc/fail2ban/jail.conf", "[DEFAULT]\nbantime = 1h\nbackend = polling\n")
	lab.write("/etc/fail2ban/jail.local", "[ssh-guard]\nenabled = true\nfilter = sshd\nport = ssh\nlogpath = "+filepath.Join(lab.root, "var/log/auth.log")+"\n")
	lab.write("/etc/fail2ban/jail.d/zz-port.local", "[ssh-guard]\nport = 22\n")
	lab.write("/var/log/auth.log", "")
	dir := t.TempDir()
	sock := filepath.Join(dir, "palisade.sock")
	startIn(t, lab.net.Server, binary, "daemon", "--config-dir", f2b, "--socket", sock, "--db", filepath.Join(dir, "palisade.db"))
	jailsOn := func(port int) []string {
		r := lab.palisade("--socket", sock, "port", "check", strconv.Itoa(port), "--json")
		var pc struct {
			Jails []string `json:"jails"`
		}
		// stdout and stderr are one stream: decode the JSON object only.
		if err := json.NewDecoder(strings.NewReader(r.Out)).Decode(&pc); err != nil {
			return []string{"error: " + r.Out}
		}
		return pc.Jails
	}
	eventually(t, 10*time.Second, "the daemon answers", func() error {
		if got := jailsOn(22); strings.Join(got, ",") != "ssh-guard" {
			return fmt.Errorf("jails on 22: %q", got)
		}
		return nil
	})
	if got := jailsOn(2222); len(got) != 0 {
		t.Fatalf("jails on 2222 before the move: %q", got)
	}

	r := lab.palisade("--socket", sock, "ssh", "harden", "--port", "2222", "--confirm-within", "60s", "--firewall", "none")
	if r.Code != 0 {
		t.Fatalf("harden: exit %d: %s", r.Code, r.Out)
	}
	if !strings.Contains(r.Out, "--- "+filepath.Join(f2b, "jail.d/zz-port.local")) || strings.Contains(r.Out, "warning: jail") {
		t.Errorf("harden did not move the daemon's jail where its port is set:\n%s", r.Out)
	}
	if got := jailsOn(2222); strings.Join(got, ",") != "ssh-guard" {
		t.Fatalf("jails on 2222 after the move: %q, want the daemon's ssh-guard", got)
	}
	lab.waitListening(2222)
	if err := lab.keyLogin(2222); err != nil {
		t.Fatal(err)
	}
	if r := lab.palisade("--socket", sock, "ban", "ssh-guard", lab.net.ClientAddr.String()); r.Code != 0 {
		t.Fatalf("ban: exit %d: %s", r.Code, r.Out)
	}
	eventually(t, 10*time.Second, "the banned client refused on the new port", func() error { return lab.refused(2222) })
}

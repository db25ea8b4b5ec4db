package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/harden/hardentest"
)

// freshRunEnv carries, to the helper process, the palisade binary and the
// arguments to run it with (a JSON array).
const freshRunEnv = "PALISADE_E2E_FRESH_RUN"

// TestFreshRunHelper is not a test: run by freshRun in a new mount
// namespace, it hides /run behind an empty tmpfs (a host where sshd has
// never started has no /run/sshd), runs palisade, and reports whether
// /run/sshd exists afterwards.
func TestFreshRunHelper(t *testing.T) {
	spec := os.Getenv(freshRunEnv)
	if spec == "" {
		t.Skip("helper process of TestSSHWhereSSHDNeverRan")
	}
	var args []string
	if err := json.Unmarshal([]byte(spec), &args); err != nil || len(args) == 0 {
		t.Fatalf("%s=%q: %v", freshRunEnv, spec, err)
	}
	if err := syscall.Mount("", "/", "", syscall.MS_PRIVATE|syscall.MS_REC, ""); err != nil {
		t.Fatalf("make mounts private: %v", err)
	}
	if err := syscall.Mount("tmpfs", "/run", "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("mount tmpfs on /run: %v", err)
	}
	if _, err := os.Stat("/run/sshd"); err == nil {
		t.Fatal("/run/sshd exists in the fresh /run")
	}
	r := runIn(nil, time.Minute, nil, args[0], args[1:]...)
	_, err := os.Stat("/run/sshd")
	fmt.Printf("EXIT %d\nPRIVSEP %v\nOUTPUT\n%s", r.Code, err == nil, r.Out)
}

// freshRun runs palisade with args where /run is empty, and returns its
// exit code, its output, and whether /run/sshd exists afterwards.
func freshRun(t *testing.T, bin string, args ...string) (int, string, bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFreshRunHelper$")
	spec, err := json.Marshal(append([]string{bin}, args...))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), freshRunEnv+"="+string(spec))
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	text := string(out)
	var code int
	var privsep bool
	if _, serr := fmt.Sscanf(text, "EXIT %d\nPRIVSEP %t\n", &code, &privsep); serr != nil {
		t.Fatalf("helper: %v, %v:\n%s", err, serr, text)
	}
	_, rest, _ := strings.Cut(text, "OUTPUT\n")
	rest, _, _ = strings.Cut(rest, "\nPASS")
	return code, rest, privsep
}

// TestSSHWhereSSHDNeverRan: ssh audit and ssh harden --dry-run work on a
// host where sshd never started (no /run/sshd: sshd -t and -T refuse to
// run without it, and palisade creates it as sshd's unit does), and a
// configuration sshd rejects is reported in sshd's own words.
func TestSSHWhereSSHDNeverRan(t *testing.T) {
	bin := palisadeBin(t)
	requirePrograms(t, "sshd", "ssh-keygen")
	r := hardentest.New(t)
	r.SSHD("Include /etc/ssh/sshd_config.d/*.conf\nUsePAM no\n")
	r.Write("/etc/ssh/sshd_config.d/50-cloud-init.conf", "PasswordAuthentication yes\n")
	r.User("admin", "1000", "/bin/bash", r.Keygen("/keys/admin"))

	code, out, privsep := freshRun(t, bin, "--root", r.Dir, "ssh", "audit", "--json")
	if code != 0 || !privsep {
		t.Fatalf("ssh audit: exit %d, /run/sshd created %v:\n%s", code, privsep, out)
	}
	var rep struct {
		Findings []struct{ ID, Where string } `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("audit output: %v\n%s", err, out)
	}
	found := false
	for _, f := range rep.Findings {
		found = found || (f.ID == "password-auth" && f.Where == r.Path("/etc/ssh/sshd_config.d/50-cloud-init.conf")+":1")
	}
	if !found {
		t.Errorf("audit did not trace password-auth to the drop-in:\n%s", out)
	}

	code, out, privsep = freshRun(t, bin, "--root", r.Dir, "ssh", "harden", "--keys-only", "--dry-run", "--force")
	if code != 0 || !privsep || !strings.Contains(out, "+PasswordAuthentication no") {
		t.Fatalf("ssh harden --dry-run: exit %d, /run/sshd created %v:\n%s", code, privsep, out)
	}

	r.Write("/etc/ssh/sshd_config.d/60-typo.conf", "PermitRootLogn no\n")
	code, out, _ = freshRun(t, bin, "--root", r.Dir, "ssh", "audit")
	want := r.Path("/etc/ssh/sshd_config.d/60-typo.conf") + ": line 1: Bad configuration option: PermitRootLogn"
	if code != 1 || !strings.Contains(out, want) {
		t.Errorf("audit of a broken configuration: exit %d:\n%s\nwant exit 1 and sshd's words %q", code, out, want)
	}
}

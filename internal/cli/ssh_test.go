package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/palisade-project/palisade/internal/harden/hardentest"
	"github.com/palisade-project/palisade/internal/harden/ports"
	"github.com/palisade-project/palisade/internal/harden/sshd"
)

func runHardenCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func sshRoot(t *testing.T) *hardentest.Root {
	t.Helper()
	hardentest.RequireSSHD(t)
	r := hardentest.New(t)
	r.SSHD("Include {ROOT}/etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication no\nUsePAM no\nPidFile {ROOT}/run/sshd.pid\n")
	r.Write("/etc/ssh/sshd_config.d/50-cloud-init.conf", "PasswordAuthentication yes\n")
	r.User("admin", "1000", "/bin/bash", r.Keygen("/keys/admin"))
	r.User("bob", "1001", "/bin/bash", "")
	r.Write("/proc/net/tcp", "  sl  local_address rem_address   st\n   0: 00000000:0016 00000000:0000 0A\n")
	r.Write("/etc/services", "ssh 22/tcp\nmysql 3306/tcp\n")
	return r
}

func TestSSHAuditCommand(t *testing.T) {
	r := sshRoot(t)
	code, out, errOut := runHardenCLI("--root", r.Dir, "ssh", "audit", "--json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep sshd.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	found := false
	for _, f := range rep.Findings {
		if f.ID == "password-auth" {
			found = f.Severity == sshd.High && f.Where == r.Path("/etc/ssh/sshd_config.d/50-cloud-init.conf")+":1" && f.Fix != ""
		}
	}
	if !found {
		t.Errorf("drop-in re-enabling passwords not reported:\n%s", out)
	}
	code, out, _ = runHardenCLI("--root", r.Dir, "ssh", "audit")
	if code != ExitOK || !strings.Contains(out, "[high] password-auth: PasswordAuthentication yes ("+r.Path("/etc/ssh/sshd_config.d/50-cloud-init.conf")+":1)") {
		t.Errorf("text audit:\n%s", out)
	}
}

func TestSSHHardenCommandRefusals(t *testing.T) {
	r := sshRoot(t)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		msg  string
	}{
		{"port out of range", []string{"--keys-only", "--port", "80"}, nil, ExitUsage, "outside 1024-65535"},
		{"port in /etc/services", []string{"--port", "3306"}, nil, ExitFailure, "--force"},
		{"no key for the sudo user", []string{"--keys-only"}, map[string]string{"SUDO_USER": "bob"}, ExitFailure, "you (bob) have no usable key"},
		{"nothing asked", nil, nil, ExitUsage, "nothing to do"},
		{"no watcher, no change", []string{"--keys-only"}, map[string]string{"SUDO_USER": "admin"}, ExitFailure, "rollback watcher"},
		{"bad duration", []string{"--keys-only", "--confirm-within", "soon"}, nil, ExitUsage, "confirm-within"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SUDO_USER", tc.env["SUDO_USER"])
			t.Setenv("SSH_CONNECTION", "")
			before := r.Hash()
			code, _, errOut := runHardenCLI(append([]string{"--root", r.Dir, "ssh", "harden", "--firewall", "none"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.msg) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tc.code, tc.msg)
			}
			if r.Hash() != before {
				t.Error("files changed")
			}
		})
	}
}

func TestSSHHardenDryRun(t *testing.T) {
	r := sshRoot(t)
	t.Setenv("SUDO_USER", "admin")
	before := r.Hash()
	code, out, errOut := runHardenCLI("--root", r.Dir, "ssh", "harden", "--keys-only", "--port", "2222", "--dry-run")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"+PasswordAuthentication no", "+Port 2222", "00-palisade.conf", "jail.local", "dry run: nothing written"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if r.Hash() != before {
		t.Error("dry run changed files")
	}
	if code, _, _ := runHardenCLI("--root", r.Dir, "ssh", "confirm"); code != ExitFailure {
		t.Errorf("confirm with nothing pending: exit %d", code)
	}
	if code, _, _ := runHardenCLI("--root", r.Dir, "ssh", "rollback"); code != ExitFailure {
		t.Errorf("rollback with nothing recorded: exit %d", code)
	}
}

func TestPortCheckCommand(t *testing.T) {
	r := hardentest.New(t)
	r.Write("/proc/net/tcp", "  sl  local_address rem_address   st\n   0: 00000000:0016 00000000:0000 0A\n   1: 00000000:08AE 00000000:0000 0A\n")
	r.Write("/proc/net/tcp6", "  sl  local_address rem_address   st\n")
	r.Write("/etc/services", "ssh 22/tcp\nmysql 3306/tcp\n")
	code, out, _ := runHardenCLI("--root", r.Dir, "port", "check", "2222", "--json")
	var c ports.Check
	if err := json.Unmarshal([]byte(out), &c); err != nil || code != ExitFailure || c.Usable || len(c.Listening) != 1 {
		t.Errorf("2222: exit %d %+v %v\n%s", code, c, err, out)
	}
	if code, out, _ := runHardenCLI("--root", r.Dir, "port", "check", "3306"); code != ExitFailure || !strings.Contains(out, "mysql/tcp") {
		t.Errorf("3306: exit %d\n%s", code, out)
	}
	if code, out, _ := runHardenCLI("--root", r.Dir, "port", "check", "2200"); code != ExitOK || !strings.Contains(out, "usable") {
		t.Errorf("2200: exit %d\n%s", code, out)
	}
	if code, _, _ := runHardenCLI("--root", r.Dir, "port", "check", "http"); code != ExitUsage {
		t.Errorf("non-numeric port: exit %d", code)
	}
}

func TestFTPPortCommand(t *testing.T) {
	if _, err := exec.LookPath("proftpd"); err != nil {
		t.Skip("proftpd is not installed")
	}
	r := hardentest.New(t)
	r.Write("/etc/proftpd/proftpd.conf", "ServerName \"test\"\n# Port 21\nUser nobody\nGroup nogroup\n")
	before := r.Hash()
	code, out, errOut := runHardenCLI("--root", r.Dir, "ftp", "port", "2121", "--dry-run")
	if code != ExitOK || !strings.Contains(out, "+Port 2121") {
		t.Errorf("dry run: exit %d %s\n%s", code, errOut, out)
	}
	if code, _, _ := runHardenCLI("--root", r.Dir, "ftp", "port", "21"); code != ExitUsage {
		t.Errorf("port 21: exit %d", code)
	}
	if r.Hash() != before {
		t.Fatal("files changed")
	}
	code, out, errOut = runHardenCLI("--root", r.Dir, "ftp", "port", "2121", "--firewall", "none")
	if code != ExitOK || !strings.Contains(out, "proftpd moved from port 21 to 2121 (validated: true") {
		t.Errorf("move: exit %d %s\n%s", code, errOut, out)
	}
	if got := r.Read("/etc/proftpd/proftpd.conf"); got != "ServerName \"test\"\nPort 2121\nUser nobody\nGroup nogroup\n" {
		t.Errorf("proftpd.conf:\n%s", got)
	}
}

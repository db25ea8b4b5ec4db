package cli

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palisade-project/palisade/internal/control"
	"github.com/palisade-project/palisade/internal/notify/notifytest"
)

func TestNotifyTest(t *testing.T) {
	srv := notifytest.NewSMTPServer(t, notifytest.SMTPOptions{})
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	dir := t.TempDir()
	conf := "[notify:good]\nserver = " + srv.Addr + "\nfrom = p@example.org\nto = a@example.org\n" +
		"[notify:bad]\nserver = " + deadAddr + "\nfrom = p@example.org\nto = a@example.org\ntimeout = 2s\n"
	if err := os.WriteFile(filepath.Join(dir, "palisade.local"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "notify", "test", "--config-dir", dir)
	if code != ExitFailure || !strings.Contains(out, "good") || !strings.Contains(out, ": ok (") || !strings.Contains(out, "FAILED: ") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if m := srv.Wait(t, 1, 0); !strings.Contains(m[0].Msg.Header.Get("Subject"), "test message") {
		t.Fatalf("subject %q", m[0].Msg.Header.Get("Subject"))
	}
	code, out, _ = runCLI(t, "notify", "test", "good", "--config-dir", dir, "--json")
	var rep notifyTestReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != ExitOK || !rep.OK || len(rep.Results) != 1 || rep.Results[0].Route != "good" {
		t.Fatalf("exit %d %v\n%s", code, err, out)
	}
	if code, _, errs := runCLI(t, "notify", "test", "nope", "--config-dir", dir); code != ExitUsage || !strings.Contains(errs, "bad, good") {
		t.Fatalf("unknown route: exit %d %s", code, errs)
	}
	empty := t.TempDir()
	if code, _, errs := runCLI(t, "notify", "test", "--config-dir", empty); code != ExitUsage || !strings.Contains(errs, "no notification routes") {
		t.Fatalf("no routes: exit %d %s", code, errs)
	}
	if err := os.WriteFile(filepath.Join(empty, "palisade.local"), []byte("[notify:x]\ntls = maybe\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI(t, "notify", "test", "--config-dir", empty); code != ExitUsage || !strings.Contains(errs, "palisade.local:2") {
		t.Fatalf("bad config: exit %d %s", code, errs)
	}
}

func TestStatusHealthText(t *testing.T) {
	var b strings.Builder
	st := control.StatusReply{Healthy: false, Jails: []control.JailStatus{
		{Name: "sshd", Health: control.JailHealth{Problems: []string{"source /var/log/auth.log: missing"}}},
		{Name: "nginx", Health: control.JailHealth{Healthy: true, Problems: []string{}}},
	}}
	writeStatus(&b, st)
	if !strings.Contains(b.String(), "Health:  UNHEALTHY\n  sshd: source /var/log/auth.log: missing\n") {
		t.Errorf("status:\n%s", b.String())
	}
	b.Reset()
	writeJailStatus(&b, st.Jails[0])
	if !strings.Contains(b.String(), "|- Health: UNHEALTHY: source /var/log/auth.log: missing\n") {
		t.Errorf("jail status:\n%s", b.String())
	}
	b.Reset()
	writeStatus(&b, control.StatusReply{Healthy: true})
	if !strings.Contains(b.String(), "Health:  ok\n") {
		t.Errorf("healthy status:\n%s", b.String())
	}
}

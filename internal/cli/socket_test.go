package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClientFindsConfiguredSocket: without --socket, client commands use
// the socket that --config-dir's palisade.conf/palisade.local names, or
// fail2ban.conf's in a fail2ban tree (palisade.local winning); --socket
// still overrides; a missing --config-dir is bad usage.
func TestClientFindsConfiguredSocket(t *testing.T) {
	f, sock := startFake(t)
	write := func(files map[string]string) string {
		dir := t.TempDir()
		for name, text := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	def := "[Definition]\nsocket = " + sock + "\n"
	wrong := "[Definition]\nsocket = " + filepath.Join(t.TempDir(), "nothing.sock") + "\n"
	tests := []struct {
		name  string
		files map[string]string
		args  []string
		code  int
		err   string
	}{
		{name: "palisade.conf", files: map[string]string{"palisade.conf": def}, args: []string{"status"}},
		{name: "palisade.local over palisade.conf", files: map[string]string{"palisade.conf": wrong, "palisade.local": def}, args: []string{"banned"}},
		{name: "fail2ban.conf", files: map[string]string{"fail2ban.conf": "[DEFAULT]\nsocket = " + sock + "\n[Definition]\n"}, args: []string{"ban", "sshd", "192.0.2.4"}},
		{name: "palisade.local over fail2ban.conf", files: map[string]string{"fail2ban.conf": wrong, "palisade.local": def}, args: []string{"unban", "sshd", "192.0.2.4"}},
		{name: "--socket overrides", files: map[string]string{"palisade.conf": wrong}, args: []string{"reload", "--socket", sock}},
		{name: "the configured socket is used", files: map[string]string{"palisade.conf": wrong}, args: []string{"status"}, code: 1, err: "nothing.sock"},
		{name: "explain too", files: map[string]string{"palisade.conf": wrong}, args: []string{"explain", "192.0.2.4"}, code: 1, err: "nothing.sock"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := len(f.requests())
			dir := write(tc.files)
			code, _, errs := runClient(append(tc.args, "--config-dir", dir)...)
			if code != tc.code || !strings.Contains(errs, tc.err) {
				t.Fatalf("exit %d (stderr %q), want %d with %q", code, errs, tc.code, tc.err)
			}
			if got := len(f.requests()) - n; (tc.code == 0) != (got == 1) {
				t.Errorf("%d request(s) reached the daemon", got)
			}
		})
	}
	code, _, errs := runClient("status", "--config-dir", filepath.Join(t.TempDir(), "missing"))
	if code != ExitUsage || !strings.Contains(errs, "--config-dir") {
		t.Errorf("missing --config-dir: exit %d %q, want 2", code, errs)
	}
}

package ban

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBanLogStockRecidive runs fail2ban's own fail2ban-regex with
// Debian's stock filter.d/recidive.conf over ban-log lines as palisade
// writes them: the Ban lines of other jails match, and Unban, Restore Ban
// and the recidive jail's own bans do not.
func TestBanLogStockRecidive(t *testing.T) {
	const stock = "/etc/fail2ban/filter.d/recidive.conf"
	bin, err := exec.LookPath("fail2ban-regex")
	if err != nil {
		t.Skip("fail2ban-regex not installed (Debian package fail2ban)")
	}
	if _, err := os.Stat(stock); err != nil {
		t.Skipf("no stock recidive filter: %v", err)
	}
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	lines := []string{
		BanLogLine(at(0), 4321, "sshd", "Ban", pfx("192.0.2.1")),
		BanLogLine(at(1), 4321, "sshd", "Unban", pfx("192.0.2.1")),
		BanLogLine(at(2), 4321, "recidive", "Ban", pfx("192.0.2.2")),
		BanLogLine(at(3), 4321, "sshd", "Restore Ban", pfx("192.0.2.3")),
		BanLogLine(at(4), 4321, "nginx-http-auth", "Ban", pfx("2001:db8::5")),
		BanLogLine(at(5), 4321, "postfix-sasl", "Ban", pfx("198.51.100.7")),
	}
	log := filepath.Join(t.TempDir(), "palisade.log")
	if err := os.WriteFile(log, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-o", "ip", log, stock).CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-regex: %v\n%s", err, out)
	}
	got := strings.Fields(string(out))
	want := []string{"192.0.2.1", "2001:db8::5", "198.51.100.7"}
	if !slices.Equal(got, want) {
		t.Errorf("stock recidive matched %q, want %q\nlog:\n%s", got, want, strings.Join(lines, ""))
	}
}

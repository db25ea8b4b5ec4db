package cloudflare

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRealIPSnippets(t *testing.T) {
	l, err := ParseAPI([]byte(goodAPI))
	if err != nil {
		t.Fatal(err)
	}
	l.Source, l.Fetched = "https://api.cloudflare.com/client/v4/ips\nset_real_ip_from 0.0.0.0/0;", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	nginx, err := RealIP(ServerNginx, l)
	if err != nil {
		t.Fatal(err)
	}
	wantN := "set_real_ip_from 192.0.2.0/25;\nset_real_ip_from 198.51.100.0/24;\nset_real_ip_from 2001:db8:1::/48;\nset_real_ip_from 2001:db8:2::/48;\nreal_ip_header CF-Connecting-IP;\n"
	if !strings.HasSuffix(nginx, wantN) {
		t.Errorf("nginx snippet:\n%s", nginx)
	}
	apache, err := RealIP(ServerApache, l)
	if err != nil {
		t.Fatal(err)
	}
	wantA := "RemoteIPHeader CF-Connecting-IP\nRemoteIPTrustedProxy 192.0.2.0/25\nRemoteIPTrustedProxy 198.51.100.0/24\nRemoteIPTrustedProxy 2001:db8:1::/48\nRemoteIPTrustedProxy 2001:db8:2::/48\n"
	if !strings.HasSuffix(apache, wantA) {
		t.Errorf("apache snippet:\n%s", apache)
	}
	// Every line that is not a directive is a comment: the source cannot
	// inject configuration.
	for _, out := range []string{nginx, apache} {
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "set_real_ip_from ") && !strings.HasPrefix(line, "real_ip_header ") &&
				!strings.HasPrefix(line, "Remote") {
				t.Errorf("unexpected line %q", line)
			}
			if strings.Contains(line, "0.0.0.0/0") && !strings.HasPrefix(line, "#") {
				t.Errorf("injected line %q", line)
			}
		}
	}
	if _, err := RealIP("iis", l); err == nil {
		t.Error("unknown server accepted")
	}
}

func TestCheckRealIP(t *testing.T) {
	l, _ := ParseAPI([]byte(goodAPI)) // 192.0.2.0/25, 198.51.100.0/24, 2001:db8:1::/48, ...
	dir := t.TempDir()
	write := func(name string, lines []string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var proxied, real, few []string
	for i := 0; i < 30; i++ {
		proxied = append(proxied, fmt.Sprintf(`198.51.100.%d - - [07/Dec/2026:01:11:55 +0000] "GET / HTTP/1.1" 200 612 "-" "curl"`, i))
		proxied = append(proxied, fmt.Sprintf(`2026/12/07 01:11:55 [error] 12#12: *3 user "admin": password mismatch, client: 2001:db8:1::%x, server: example.org`, i+1))
		real = append(real, fmt.Sprintf(`198.51.100.%d - - [07/Dec/2026:01:11:55 +0000] "GET / HTTP/1.1" 200 612`, i))
	}
	real = append(real, `203.0.113.9 - - [07/Dec/2026:01:11:56 +0000] "GET /wp-login.php HTTP/1.1" 404 0`)
	real = append(real, `[Mon Dec 07 01:11:56 2026] [error] [client 127.0.0.1:4242] local probe`)
	for i := 0; i < 5; i++ {
		few = append(few, fmt.Sprintf("[client 192.0.2.%d:5000] AH01618: user x not found", i+1))
	}
	jails := []JailLog{
		{Jail: "nginx-http-auth", Paths: []string{write("proxied.log", proxied)}},
		{Jail: "apache-auth", Paths: []string{filepath.Join(dir, "real*.log")}},
		{Jail: "quiet", Paths: []string{write("few.log", few)}},
		{Jail: "missing", Paths: []string{filepath.Join(dir, "none.log")}},
	}
	write("real.log", real)
	got := CheckRealIP(jails, l)
	if len(got) != 1 || !strings.Contains(got[0], "jail nginx-http-auth: the last 60 addresses in "+filepath.Join(dir, "proxied.log")+" are all Cloudflare's") {
		t.Errorf("warnings %q", got)
	}
}

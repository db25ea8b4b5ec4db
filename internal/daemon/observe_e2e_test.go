package daemon_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/palisade-project/palisade/internal/notify/notifytest"
)

// TestE2EMailForRealBan runs the binary with a [notify] route to a local
// SMTP server: a real ban from real log lines arrives as one mail.
func TestE2EMailForRealBan(t *testing.T) {
	srv := notifytest.NewSMTPServer(t, notifytest.SMTPOptions{})
	e := newEnv(t, "")
	e.write("jail.local", fmt.Sprintf(guideJailLocal, e.log))
	e.write("palisade.local", "[firewall]\nbackend = log\n[notify:admin]\nserver = "+srv.Addr+
		"\nfrom = palisade@example.org\nto = admin@example.org\ngroup_wait = 200ms\n[metrics]\nlisten = "+filepath.Join(e.dir, "metrics.sock")+"\n")
	e.start()
	const ip = "192.0.2.44"
	for range 4 {
		e.fail(ip)
	}
	m := srv.Wait(t, 1, 20*time.Second)[0]
	host, _ := os.Hostname()
	if subj := m.Msg.Header.Get("Subject"); subj != "[palisade] "+host+": banned "+ip+" in sshd for 1h0m0s" {
		t.Errorf("subject %q", subj)
	}
	if !strings.Contains(m.Body, "address:  "+ip) || !strings.Contains(m.Body, "host:     "+host) {
		t.Errorf("body:\n%s", m.Body)
	}
	unix, inet := listeners(t, e.cmd.Process.Pid)
	slices.Sort(unix)
	if want := []string{filepath.Join(e.dir, "metrics.sock"), e.socket}; !slices.Equal(unix, want) || len(inet) != 0 {
		t.Errorf("listeners: unix %v inet %v, want unix %v", unix, inet, want)
	}
	e.stop()
	if len(srv.Mails()) != 1 {
		t.Errorf("%d mails for one ban", len(srv.Mails()))
	}
}

// TestE2ENoListenersWithoutConfig: without [notify] and [metrics] the
// daemon listens on its control socket only.
func TestE2ENoListenersWithoutConfig(t *testing.T) {
	e := newEnv(t, "")
	e.write("jail.local", fmt.Sprintf(guideJailLocal, e.log))
	e.start()
	unix, inet := listeners(t, e.cmd.Process.Pid)
	if !slices.Equal(unix, []string{e.socket}) || len(inet) != 0 {
		t.Fatalf("listeners: unix %v inet %v, want only %s", unix, inet, e.socket)
	}
}

// listeners returns the unix socket paths and TCP/UDP local addresses
// process pid listens on (from /proc).
func listeners(t *testing.T, pid int) (unix, inet []string) {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if ino, ok := strings.CutPrefix(l, "socket:["); ok && err == nil {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	scan := func(file string, each func(f []string)) {
		fh, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, file))
		if err != nil {
			return
		}
		defer fh.Close()
		s := bufio.NewScanner(fh)
		s.Scan() // header
		for s.Scan() {
			each(strings.Fields(s.Text()))
		}
	}
	for _, file := range []string{"tcp", "tcp6", "udp", "udp6"} {
		scan(file, func(f []string) {
			// local_address st ... inode: a TCP listener is state 0A; any
			// UDP socket is a listener.
			if len(f) > 9 && inodes[f[9]] && (f[3] == "0A" || strings.HasPrefix(file, "udp")) {
				inet = append(inet, file+" "+f[1])
			}
		})
	}
	scan("unix", func(f []string) {
		// Num RefCount Protocol Flags Type St Inode Path; flag 0x10000 = listening.
		if len(f) > 7 && inodes[f[6]] {
			if flags, err := strconv.ParseUint(f[3], 16, 32); err == nil && flags&0x10000 != 0 {
				unix = append(unix, f[7])
			}
		}
	})
	return unix, inet
}

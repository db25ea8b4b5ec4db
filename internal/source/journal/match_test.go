package journal

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRestrictUntrusted(t *testing.T) {
	for _, tc := range []struct {
		match      string
		want       []string
		restricted []string
	}{
		{"_SYSTEMD_UNIT=sshd.service", []string{"_SYSTEMD_UNIT=sshd.service"}, nil},
		{"_SYSTEMD_UNIT=sshd.service + _COMM=sshd", []string{"_SYSTEMD_UNIT=sshd.service", "+", "_COMM=sshd", RootOnly}, []string{"_COMM=sshd"}},
		{"SYSLOG_IDENTIFIER=sshd", []string{"SYSLOG_IDENTIFIER=sshd", RootOnly}, []string{"SYSLOG_IDENTIFIER=sshd"}},
		{"/usr/sbin/sshd", []string{"/usr/sbin/sshd", RootOnly}, []string{"/usr/sbin/sshd"}},
		{"_COMM=nginx _UID=33", []string{"_COMM=nginx", "_UID=33"}, nil},
		{"_SYSTEMD_SLICE=system-ssh.slice + _SYSTEMD_CGROUP=/system.slice/x.service", []string{"_SYSTEMD_SLICE=system-ssh.slice", "+", "_SYSTEMD_CGROUP=/system.slice/x.service"}, nil},
		{"_TRANSPORT=kernel + _TRANSPORT=syslog", []string{"_TRANSPORT=kernel", "+", "_TRANSPORT=syslog", RootOnly}, []string{"_TRANSPORT=syslog"}},
		{"_EXE=/usr/sbin/sshd\n_CMDLINE=sshd", []string{"_EXE=/usr/sbin/sshd", RootOnly, "+", "_CMDLINE=sshd", RootOnly}, []string{"_EXE=/usr/sbin/sshd", "_CMDLINE=sshd"}},
		{"", []string{RootOnly}, []string{""}},
	} {
		words, err := ParseMatch(tc.match)
		if err != nil {
			t.Fatal(err)
		}
		got, restricted := restrictUntrusted(words)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%q: matches (-want +got):\n%s", tc.match, diff)
		}
		if diff := cmp.Diff(tc.restricted, restricted); diff != "" {
			t.Errorf("%q: restricted (-want +got):\n%s", tc.match, diff)
		}
		untrusted, err := Untrusted(tc.match)
		if err != nil || !cmp.Equal(untrusted, tc.restricted) {
			t.Errorf("Untrusted(%q) = %q, %v; want %q", tc.match, untrusted, err, tc.restricted)
		}
	}
	if _, err := Untrusted("-o cat"); err == nil {
		t.Error("Untrusted accepted an option-like word")
	}
}

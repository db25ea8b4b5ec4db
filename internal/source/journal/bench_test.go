package journal

import (
	"fmt"
	"testing"
)

const benchLine = "Nov 24 19:42:36 host sshd[12345]: Failed password for invalid user admin from 203.0.113.77 port 52214 ssh2\n"

func BenchmarkJournalDecode(b *testing.B) {
	raw := []byte(fmt.Sprintf(`{"__CURSOR":"s=739ad463348b4ceca5a9e69c95a3c93f;i=4ece7;b=6c7c6013a8674f52b0a3bef6f6a09f4c;m=4e2b1d8;t=5e5b43a95ce59;x=c5fe0c6c9a0f3d4","__REALTIME_TIMESTAMP":"1700000000123456","__MONOTONIC_TIMESTAMP":"82031064","_BOOT_ID":"6c7c6013a8674f52b0a3bef6f6a09f4c","PRIORITY":"6","_UID":"0","_GID":"0","_SYSTEMD_UNIT":"ssh.service","_HOSTNAME":"web1","SYSLOG_IDENTIFIER":"sshd","_COMM":"sshd","_PID":"812","_EXE":"/usr/sbin/sshd","MESSAGE":%q}`, benchLine[34:len(benchLine)-1]))
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		e, err := DecodeEntry(raw)
		if err != nil {
			b.Fatal(err)
		}
		_ = e.Format()
	}
}

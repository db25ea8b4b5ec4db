package config

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	defaults "github.com/palisade-project/palisade/config"
)

// fail2banConf is the shape of Debian's stock fail2ban.conf: the settings
// in [DEFAULT], an empty [Definition].
const fail2banConf = `[DEFAULT]
loglevel = INFO
logtarget = /var/log/fail2ban.log
socket = /var/run/fail2ban/fail2ban.sock
dbfile = DB
dbpurgeage = 1d

[Definition]

[Thread]
`

// TestDaemonSettingsPrecedence: in a fail2ban tree, fail2ban.conf and
// fail2ban.local set loglevel, logtarget, socket, dbfile and dbpurgeage
// over palisade's built-in palisade.conf; the directory's own
// palisade.conf/.local win over both; fail2ban's SQLite database is never
// taken as palisade's.
func TestDaemonSettingsPrecedence(t *testing.T) {
	sqlite := filepath.Join(t.TempDir(), "fail2ban.sqlite3")
	if err := os.WriteFile(sqlite, append([]byte("SQLite format 3\x00"), make([]byte, 84)...), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := func(db string) string { return strings.Replace(fail2banConf, "DB", db, 1) }
	tests := []struct {
		name   string
		files  map[string]string
		level  slog.Level
		target string
		socket string
		db     string
		warn   string
	}{
		{name: "palisade tree: built-ins", files: map[string]string{"jail.local": "[sshd]\nenabled = false\n"},
			level: slog.LevelInfo, target: "STDERR", socket: DefaultSocket, db: DefaultDBFile},
		{name: "stock fail2ban.conf", files: map[string]string{"fail2ban.conf": conf("/var/lib/x/f2b.db")},
			level: slog.LevelInfo, target: "/var/log/fail2ban.log", socket: "/var/run/fail2ban/fail2ban.sock", db: "/var/lib/x/f2b.db"},
		{name: "fail2ban.local over fail2ban.conf", files: map[string]string{
			"fail2ban.conf":  conf("/var/lib/x/f2b.db"),
			"fail2ban.local": "[Definition]\nloglevel = DEBUG\nlogtarget = /var/log/other.log\nsocket = /run/f/f.sock\n",
		}, level: slog.LevelDebug, target: "/var/log/other.log", socket: "/run/f/f.sock", db: "/var/lib/x/f2b.db"},
		{name: "fail2ban.d drop-in", files: map[string]string{
			"fail2ban.conf":           conf("/var/lib/x/f2b.db"),
			"fail2ban.d/10-log.local": "[Definition]\nlogtarget = STDOUT\nloglevel = 40\n",
		}, level: slog.LevelError, target: "STDOUT", socket: "/var/run/fail2ban/fail2ban.sock", db: "/var/lib/x/f2b.db"},
		{name: "palisade.local over fail2ban.conf", files: map[string]string{
			"fail2ban.conf":  conf("/var/lib/x/f2b.db"),
			"palisade.local": "[Definition]\nsocket = /run/palisade/p.sock\ndbfile = /var/lib/palisade/p.db\n",
		}, level: slog.LevelInfo, target: "/var/log/fail2ban.log", socket: "/run/palisade/p.sock", db: "/var/lib/palisade/p.db"},
		{name: "fail2ban's SQLite database left alone", files: map[string]string{"fail2ban.conf": conf(sqlite)},
			level: slog.LevelInfo, target: "/var/log/fail2ban.log", socket: "/var/run/fail2ban/fail2ban.sock", db: DefaultDBFile,
			warn: "is fail2ban's SQLite database, left alone"},
		{name: "dbfile :memory:", files: map[string]string{"fail2ban.conf": conf(":memory:")},
			level: slog.LevelInfo, target: "/var/log/fail2ban.log", socket: "/var/run/fail2ban/fail2ban.sock", db: DefaultDBFile,
			warn: "always keeps its bans on disk"},
		{name: "syslog target", files: map[string]string{"fail2ban.conf": strings.Replace(conf("/x/f.db"), "/var/log/fail2ban.log", "SYSLOG", 1)},
			level: slog.LevelInfo, target: "STDERR", socket: "/var/run/fail2ban/fail2ban.sock", db: "/x/f.db"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeTree(t, tc.files)
			cfg, err := Load(dir, LoadOptions{Builtin: defaults.FS(), Services: testServices})
			if err != nil {
				t.Fatal(err)
			}
			d := cfg.Daemon
			if d.LogLevel != tc.level || d.LogTarget != tc.target || d.Socket != tc.socket || d.DBFile != tc.db {
				t.Errorf("level %v target %q socket %q db %q; want %v %q %q %q", d.LogLevel, d.LogTarget, d.Socket, d.DBFile,
					tc.level, tc.target, tc.socket, tc.db)
			}
			warned := strings.Join(cfg.Warnings, "\n")
			if tc.warn == "" && strings.Contains(warned, "dbfile") || tc.warn != "" && !strings.Contains(warned, tc.warn) {
				t.Errorf("warnings %q, want one containing %q", cfg.Warnings, tc.warn)
			}
		})
	}
}

func TestFail2banConfErrorsCarryFileLine(t *testing.T) {
	dir := writeTree(t, map[string]string{"fail2ban.local": "[Definition]\n\nsocket = relative.sock\n"})
	_, err := Load(dir, LoadOptions{Builtin: defaults.FS(), Services: testServices})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "fail2ban.local")+":3") {
		t.Fatalf("err = %v, want fail2ban.local:3", err)
	}
}

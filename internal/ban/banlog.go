package ban

import (
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// BanLogger is the logger name of ban-log lines: fail2ban's own, so that
// fail2ban's stock recidive filter (and anything else written against
// fail2ban's log) reads palisade's log unchanged.
const BanLogger = "fail2ban.actions"

// BanLogLine renders one ban-log line byte for byte as fail2ban writes it
// (Python logging format "%(asctime)s %(name)-24s[%(process)d]:
// %(levelname)-7s %(message)s", message "[jail] Ban ip"):
//
//	2026-11-24 19:50:01,123 fail2ban.actions        [1234]: NOTICE  [sshd] Ban 192.0.2.1
//
// verb is "Ban", "Unban" or "Restore Ban" (fail2ban's line for a ban put
// back at start-up, which recidive does not count). An aggregated ban
// shows its prefix (2001:db8::/64).
func BanLogLine(t time.Time, pid int, jail, verb string, p netip.Prefix) string {
	target := p.String()
	if p.IsSingleIP() {
		target = p.Addr().String()
	}
	var b strings.Builder
	b.Grow(80 + len(jail) + len(target))
	b.WriteString(t.Format("2006-01-02 15:04:05,000"))
	b.WriteByte(' ')
	b.WriteString(BanLogger)
	for i := len(BanLogger); i < 24; i++ {
		b.WriteByte(' ')
	}
	b.WriteByte('[')
	b.WriteString(strconv.Itoa(pid))
	b.WriteString("]: NOTICE  [")
	b.WriteString(jail)
	b.WriteString("] ")
	b.WriteString(verb)
	b.WriteByte(' ')
	b.WriteString(target)
	b.WriteByte('\n')
	return b.String()
}

// writeLog writes one ban-log line; a failing writer is reported once
// until it works again.
func (m *Manager) writeLog(t time.Time, jail, verb string, p netip.Prefix) {
	if m.banlog == nil {
		return
	}
	line := BanLogLine(t.In(m.cfg.Location), m.cfg.PID, jail, verb, p)
	m.logMu.Lock()
	defer m.logMu.Unlock()
	if _, err := io.WriteString(m.banlog, line); err != nil {
		if !m.logErr {
			m.log.Error("cannot write the ban log", "err", err)
		}
		m.logErr = true
		return
	}
	m.logErr = false
}

package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/palisade-project/palisade/internal/harden/fsx"
)

// updatesChecker checks unattended security updates and counts pending
// ones offline (dpkg's status against apt's downloaded security indexes).
type updatesChecker struct{}

func (updatesChecker) Area() string { return AreaUpdates }

// listsMaxAge is how old apt's indexes may be before the pending count is
// called stale.
const listsMaxAge = 7 * 24 * time.Hour

func (updatesChecker) Check(ctx context.Context, st *State) []Check {
	un := Check{ID: "updates.unattended", Severity: Medium, Title: "security updates install themselves (unattended-upgrades)"}
	sec := Check{ID: "updates.security", Severity: High, Title: "no security update is pending"}
	pkgs, err := st.Packages()
	if err != nil || len(pkgs) == 0 {
		msg := "no dpkg database (" + st.Path("/var/lib/dpkg/status") + "): not a Debian-based system"
		if err != nil {
			msg = "dpkg's database cannot be read: " + err.Error()
		}
		un.Status, un.Message = Skip, msg
		sec.Status, sec.Message = Skip, msg
		return []Check{un, sec}
	}
	unattended(&un, st)
	pendingSecurity(ctx, &sec, st, pkgs)
	return []Check{un, sec}
}

// aptSetting is the last value of an apt option in apt.conf and
// apt.conf.d (files in apt's order), with its file:line.
func aptSetting(st *State, key string) (string, string) {
	files := []string{st.Path("/etc/apt/apt.conf")}
	if m, err := filepath.Glob(st.Path("/etc/apt/apt.conf.d/*")); err == nil {
		sort.Strings(m)
		files = append(m, files...)
	}
	val, where := "", ""
	for _, f := range files {
		data, err := fsx.ReadFile(f)
		if err != nil {
			continue
		}
		for i, line := range fsx.SplitLines(data) {
			t := strings.TrimSpace(line)
			k, v, ok := strings.Cut(t, " ")
			if !ok || !strings.EqualFold(k, key) {
				continue
			}
			v = strings.TrimSuffix(strings.TrimSpace(v), ";")
			val, where = strings.Trim(strings.TrimSpace(v), `"`), fmt.Sprintf("%s:%d", f, i+1)
		}
	}
	return val, where
}

func unattended(c *Check, st *State) {
	_, installed := st.Installed("unattended-upgrades")
	lists, lwhere := aptSetting(st, "APT::Periodic::Update-Package-Lists")
	run, rwhere := aptSetting(st, "APT::Periodic::Unattended-Upgrade")
	c.Evidence = append(c.Evidence, fmt.Sprintf("package unattended-upgrades installed: %v", installed))
	for _, kv := range [][3]string{{"APT::Periodic::Update-Package-Lists", lists, lwhere}, {"APT::Periodic::Unattended-Upgrade", run, rwhere}} {
		if kv[2] == "" {
			c.Evidence = append(c.Evidence, kv[0]+" not set")
		} else {
			c.Evidence = append(c.Evidence, fmt.Sprintf("%s %q (%s)", kv[0], kv[1], kv[2]))
		}
	}
	on := func(v string) bool { return v != "" && v != "0" && !strings.EqualFold(v, "false") }
	switch {
	case installed && on(lists) && on(run):
		c.Status, c.Message = Pass, "apt refreshes its lists and installs security updates on its own"
	case !installed:
		c.Status, c.Message = Fail, "unattended-upgrades is not installed: security fixes wait until somebody logs in and upgrades"
		c.Fix = "apt-get install unattended-upgrades && dpkg-reconfigure -f noninteractive -plow unattended-upgrades"
	default:
		c.Status, c.Message = Fail, "unattended-upgrades is installed but not switched on (/etc/apt/apt.conf.d/20auto-upgrades)"
		c.Fix = "dpkg-reconfigure -f noninteractive -plow unattended-upgrades"
	}
}

func pendingSecurity(ctx context.Context, c *Check, st *State, pkgs map[string]Package) {
	dir := st.Path("/var/lib/apt/lists")
	idx, err := SecurityIndexes(dir)
	if err != nil || len(idx) == 0 {
		c.Status = Warn
		c.Message = "apt has no index of a security suite (" + dir + "): security updates are never offered; add the security suite to /etc/apt/sources.list, then apt-get update"
		c.Fix = "apt-get update"
		return
	}
	pending, err := PendingSecurity(ctx, pkgs, idx, st.src.AptCat)
	if err != nil {
		c.Status, c.Message, c.Evidence = Skip, "the security indexes cannot be read", []string{err.Error()}
		return
	}
	var newest time.Time
	for _, f := range idx {
		c.Evidence = append(c.Evidence, "index "+f)
		if fi, err := os.Stat(f); err == nil && fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
	}
	age := st.Now().Sub(newest)
	for i, p := range pending {
		if i == 10 {
			c.Evidence = append(c.Evidence, fmt.Sprintf("... and %d more", len(pending)-10))
			break
		}
		c.Evidence = append(c.Evidence, fmt.Sprintf("%s %s -> %s", p.Name, p.Installed, p.Candidate))
	}
	switch {
	case len(pending) > 0:
		c.Status = Fail
		c.Message = fmt.Sprintf("%d installed package(s) have a security update waiting", len(pending))
		c.Fix = "apt-get update && apt-get upgrade"
	case age > listsMaxAge:
		c.Status = Warn
		c.Message = fmt.Sprintf("none pending according to apt's indexes, but they are %d days old", int(age.Hours()/24))
		c.Fix = "apt-get update"
	default:
		c.Status, c.Message = Pass, fmt.Sprintf("every installed package is at its security suite's version (indexes %s old)", age.Round(time.Hour))
	}
}

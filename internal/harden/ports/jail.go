package ports

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/palisade-project/palisade/internal/config/ini"
	"github.com/palisade-project/palisade/internal/harden/fsx"
)

// JailLocal is palisade's local jail file (root-prefixed by callers).
const JailLocal = "/etc/palisade/jail.local"

// SetJailPort returns the text of a jail file (old; nil when the file does
// not exist) with the port option of section jail set to port. The edit is
// minimal: an existing "port" line (and its continuation lines) is
// replaced, otherwise a line is added after the section header, otherwise
// the section is appended. Everything else is kept byte for byte.
func SetJailPort(old []byte, jail, port string) []byte {
	lines := fsx.SplitLines(old)
	if len(lines) > 0 && !strings.HasSuffix(lines[len(lines)-1], "\n") {
		lines[len(lines)-1] += "\n"
	}
	header := -1
	end := len(lines)
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			name := strings.TrimSpace(t[1 : len(t)-1])
			if header >= 0 {
				end = i
				break
			}
			if name == jail {
				header = i
			}
		}
	}
	newLine := "port = " + port + "\n"
	if header < 0 {
		var out []string
		out = append(out, lines...)
		if len(out) > 0 && strings.TrimSpace(out[len(out)-1]) != "" {
			out = append(out, "\n")
		}
		if len(out) == 0 {
			out = append(out, "# Local jail settings (palisade).\n")
		}
		out = append(out, "["+jail+"]\n", newLine)
		return []byte(strings.Join(out, ""))
	}
	for i := header + 1; i < end; i++ {
		l := lines[i]
		if l != "" && (l[0] == ' ' || l[0] == '\t' || l[0] == '#' || l[0] == ';') {
			continue
		}
		key, _, ok := cutKey(l)
		if !ok || !strings.EqualFold(key, "port") {
			continue
		}
		j := i + 1
		for j < end && len(lines[j]) > 0 && (lines[j][0] == ' ' || lines[j][0] == '\t') && strings.TrimSpace(lines[j]) != "" {
			j++ // continuation lines of the old value
		}
		prefix := l[:strings.IndexAny(l, "=:")+1]
		out := append(append(append([]string{}, lines[:i]...), strings.TrimRight(prefix, " ")+" "+port+"\n"), lines[j:]...)
		return []byte(strings.Join(out, ""))
	}
	out := append(append(append([]string{}, lines[:header+1]...), newLine), lines[header+1:]...)
	return []byte(strings.Join(out, ""))
}

func cutKey(l string) (string, string, bool) {
	i := strings.IndexAny(l, "=:")
	if i < 0 {
		return "", "", false
	}
	return strings.TrimSpace(l[:i]), strings.TrimSpace(l[i+1:]), true
}

// JailPortChange is SetJailPort on the file at path (a full path under
// root; symbolic links are followed inside root).
func JailPortChange(root, path, jail, port string) (old, updated []byte, existed bool, err error) {
	old, err = fsx.ReadFileIn(root, path)
	switch {
	case err == nil:
		existed = true
	case isNotExist(err):
		old, err = nil, nil
	default:
		return nil, nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	return old, SetJailPort(old, jail, port), existed, nil
}

func isNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }

// JailTarget is a jail whose port follows a service that moves, and the
// file where its port is to be set.
type JailTarget struct {
	Name string `json:"name"`
	File string `json:"file"`
}

// TargetIn returns the target for jail in the configuration directory
// dir (a full path): jail.local, unless a file fail2ban reads after it
// (jail.d/*.local) sets the jail's port, which would win over jail.local;
// then that file.
func TargetIn(dir, jail string) JailTarget {
	t := JailTarget{Name: jail, File: filepath.Join(dir, "jail.local")}
	l := &ini.Loader{Layers: []ini.Layer{ini.DirLayer(dir)}}
	c, err := l.Read("jail")
	if err != nil {
		return t
	}
	sec := c.Section(jail)
	if sec == nil {
		return t
	}
	if v, ok := sec.Get("port"); ok && strings.HasPrefix(v.File, filepath.Join(dir, "jail.d")+"/") && strings.HasSuffix(v.File, ".local") {
		t.File = v.File
	}
	return t
}

// FileChange is a file's text before and after an edit.
type FileChange struct {
	Path    string
	Existed bool
	Old     []byte
	New     []byte
}

// PlanJailPorts sets port in the section of every target (several jails
// may share a file) and returns each file that changes, in the targets'
// order.
func PlanJailPorts(root string, targets []JailTarget, port string) ([]FileChange, error) {
	var out []FileChange
	at := map[string]int{}
	for _, t := range targets {
		i, ok := at[t.File]
		if !ok {
			old, _, existed, err := JailPortChange(root, t.File, t.Name, port)
			if err != nil {
				return nil, err
			}
			at[t.File], i = len(out), len(out)
			out = append(out, FileChange{Path: t.File, Existed: existed, Old: old, New: old})
		}
		out[i].New = SetJailPort(out[i].New, t.Name, port)
	}
	changed := out[:0]
	for _, c := range out {
		if !c.Existed || string(c.Old) != string(c.New) {
			changed = append(changed, c)
		}
	}
	return changed, nil
}

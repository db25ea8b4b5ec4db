package sshd

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/palisade-project/palisade/internal/harden/fsx"
)

// DropInName is the drop-in palisade writes when the main file includes a
// directory of drop-ins before anything else sets its keywords.
const DropInName = "00-palisade.conf"

// Settings are the changes Harden makes.
type Settings struct {
	KeysOnly       bool // PasswordAuthentication, KbdInteractiveAuthentication no; PubkeyAuthentication yes
	NoRootPassword bool // PermitRootLogin prohibit-password (unless already no)
	Port           int  // 0: unchanged
}

// Change is one file's new content.
type Change struct {
	Path    string `json:"path"`
	Existed bool   `json:"existed"`
	Old     []byte `json:"-"`
	New     []byte `json:"-"`
}

// aliases maps a keyword to the spellings sshd also accepts for it.
var aliases = map[string][]string{
	"kbdinteractiveauthentication": {"kbdinteractiveauthentication", "challengeresponseauthentication"},
}

func spellings(key string) []string {
	if a, ok := aliases[key]; ok {
		return a
	}
	return []string{key}
}

// files holds the edited text of the configuration tree.
type files struct {
	cfg   *Config
	lines map[string][]string
	added map[string]bool // files that did not exist
	order []string
}

func newFiles(cfg *Config) *files {
	return &files{cfg: cfg, lines: map[string][]string{}, added: map[string]bool{}}
}

func (f *files) get(path string) []string {
	if l, ok := f.lines[path]; ok {
		return l
	}
	l := fsx.SplitLines(f.cfg.Files[path])
	f.lines[path] = l
	f.order = append(f.order, path)
	return l
}

func (f *files) setLine(path string, idx int, text string) {
	l := f.get(path)
	nl := "\n"
	if strings.HasSuffix(l[idx], "\r\n") {
		nl = "\r\n"
	}
	l[idx] = text + nl
}

func indentOf(s string) string {
	return s[:len(s)-len(strings.TrimLeft(s, " \t"))]
}

// changes returns the files whose text differs from what was read.
func (f *files) changes() []Change {
	var out []Change
	for _, p := range f.order {
		newText := []byte(strings.Join(f.lines[p], ""))
		old, existed := f.cfg.Files[p]
		if f.added[p] {
			existed = false
			old = nil
		}
		if existed && string(old) == string(newText) {
			continue
		}
		out = append(out, Change{Path: p, Existed: existed, Old: old, New: newText})
	}
	return out
}

// Plan computes the file changes that apply s to cfg, without writing.
func Plan(cfg *Config, s Settings) ([]Change, error) {
	f := newFiles(cfg)
	var global []kv // settings for the global section, in order
	if s.KeysOnly {
		global = append(global, kv{"PasswordAuthentication", "no"}, kv{"KbdInteractiveAuthentication", "no"}, kv{"PubkeyAuthentication", "yes"}, kv{"PermitEmptyPasswords", "no"})
		for _, d := range cfg.Directives {
			k := d.Key()
			if d.Match != nil && d.Key() != "match" && (k == "passwordauthentication" || k == "kbdinteractiveauthentication" || k == "challengeresponseauthentication" || k == "permitemptypasswords") && argIs(d, "yes") {
				f.setLine(d.File, d.Line-1, indentOf(f.get(d.File)[d.Line-1])+d.Keyword+" no")
			}
		}
	}
	if s.NoRootPassword {
		cur := ""
		if d, ok := cfg.First("permitrootlogin"); ok && len(d.Args) > 0 {
			cur = strings.ToLower(d.Args[0])
		}
		switch cur {
		case "no", "prohibit-password", "without-password", "forced-commands-only":
		default:
			global = append(global, kv{"PermitRootLogin", "prohibit-password"})
		}
		for _, d := range cfg.All("permitrootlogin") {
			if d.Match != nil && argIs(d, "yes") {
				f.setLine(d.File, d.Line-1, indentOf(f.get(d.File)[d.Line-1])+d.Keyword+" prohibit-password")
			}
		}
	}
	if s.Port != 0 {
		if s.Port < 1 || s.Port > 65535 {
			return nil, fmt.Errorf("port %d out of range", s.Port)
		}
		for _, d := range cfg.All("listenaddress") {
			if len(d.Args) > 0 && hasPort(d.Args[0]) {
				return nil, fmt.Errorf("%s: ListenAddress %s names a port; change it by hand or remove the port", d.Where(), d.Args[0])
			}
		}
		ports := cfg.All("port")
		first := -1
		for i, d := range ports {
			if d.File == cfg.Main && first < 0 {
				first = i
				continue
			}
		}
		for i, d := range ports {
			line := f.get(d.File)[d.Line-1]
			if i == first && i == 0 {
				f.setLine(d.File, d.Line-1, indentOf(line)+d.Keyword+" "+strconv.Itoa(s.Port))
				continue
			}
			f.setLine(d.File, d.Line-1, "#"+strings.TrimRight(line, "\r\n")+" # palisade: replaced by Port "+strconv.Itoa(s.Port))
		}
		if first != 0 {
			global = append(global, kv{"Port", strconv.Itoa(s.Port)})
		}
	}
	var rest []kv
	for _, e := range global {
		d, ok := firstOf(cfg, strings.ToLower(e.k))
		if e.k == "Port" {
			ok = false
		}
		if ok && d.File == cfg.Main {
			if len(d.Args) == 1 && strings.EqualFold(d.Args[0], e.v) {
				continue
			}
			f.setLine(d.File, d.Line-1, indentOf(f.get(d.File)[d.Line-1])+d.Keyword+" "+e.v)
			continue
		}
		rest = append(rest, e)
	}
	if len(rest) > 0 {
		if err := f.placeFirst(rest); err != nil {
			return nil, err
		}
	}
	return f.changes(), nil
}

type kv struct{ k, v string }

func argIs(d Directive, v string) bool { return len(d.Args) > 0 && strings.EqualFold(d.Args[0], v) }

func firstOf(cfg *Config, key string) (Directive, bool) {
	for _, d := range cfg.Directives {
		if d.Match == nil && slices.Contains(spellings(key), d.Key()) {
			return d, true
		}
	}
	return Directive{}, false
}

func hasPort(addr string) bool {
	if strings.HasPrefix(addr, "[") {
		return strings.Contains(addr, "]:")
	}
	return strings.Count(addr, ":") == 1
}

// placeFirst writes settings where sshd reads them before any other value:
// the managed drop-in when the main file's first directive is an Include of
// its directory, otherwise a block at the top of the main file.
func (f *files) placeFirst(settings []kv) error {
	var block []string
	for _, e := range settings {
		block = append(block, e.k+" "+e.v+"\n")
	}
	cfg := f.cfg
	// The drop-in works when the first directive of the main file is an
	// Include whose glob matches the drop-in and nothing sorts before it.
	if len(cfg.Directives) > 0 {
		d := cfg.Directives[0]
		if d.Key() == "include" && d.File == cfg.Main && len(d.Args) > 0 {
			pat := d.Args[0]
			if !filepath.IsAbs(pat) {
				pat = filepath.Join("/etc/ssh", pat)
			}
			pat = fsx.Path(cfg.Root, pat)
			dropIn := filepath.Join(filepath.Dir(pat), DropInName)
			ok, _ := filepath.Match(pat, dropIn)
			existing, _ := fsx.GlobIn(cfg.Root, pat)
			slices.Sort(existing)
			if ok && (len(existing) == 0 || existing[0] >= dropIn) {
				if dirIn, err := fsx.Resolve(cfg.Root, filepath.Dir(dropIn)); err != nil {
					return err
				} else if _, err := os.Stat(dirIn); err == nil {
					header := "# Written by palisade ssh harden: these values win over later files.\n"
					if _, had := cfg.Files[dropIn]; had {
						// Our own drop-in from an earlier run: replace the keys.
						lines := f.get(dropIn)
						var keep []string
						for _, l := range lines {
							kw, _, _ := splitLine(l)
							if kw != "" && slices.ContainsFunc(settings, func(e kv) bool { return strings.EqualFold(e.k, kw) }) {
								continue
							}
							keep = append(keep, l)
						}
						if len(keep) > 0 && !strings.HasSuffix(keep[len(keep)-1], "\n") {
							keep[len(keep)-1] += "\n"
						}
						f.lines[dropIn] = append(keep, block...)
						return nil
					}
					f.lines[dropIn] = append([]string{header}, block...)
					f.added[dropIn] = true
					f.order = append(f.order, dropIn)
					return nil
				}
			}
		}
	}
	// Top of the main file, after the leading comment header.
	lines := f.get(cfg.Main)
	at := 0
	for at < len(lines) {
		t := strings.TrimSpace(lines[at])
		if t != "" && !strings.HasPrefix(t, "#") {
			break
		}
		at++
	}
	// Keep the header, but only up to the last blank line before the first directive.
	for at > 0 && strings.TrimSpace(lines[at-1]) != "" {
		at--
	}
	ins := append([]string{"# Set by palisade ssh harden (first value wins in sshd_config).\n"}, block...)
	if at < len(lines) {
		ins = append(ins, "\n")
	}
	if at > 0 && !strings.HasSuffix(lines[at-1], "\n") {
		lines[at-1] += "\n"
	}
	nl := append(append(append([]string{}, lines[:at]...), ins...), lines[at:]...)
	f.lines[cfg.Main] = nl
	return nil
}

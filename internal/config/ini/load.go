package ini

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Layer is one tree of configuration files, e.g. /etc/palisade or the
// embedded built-ins.
type Layer struct {
	// FS holds the files, with paths such as "jail.conf" or
	// "filter.d/sshd.conf".
	FS fs.FS
	// Name prefixes file names in messages ("/etc/fail2ban" gives
	// "/etc/fail2ban/jail.local"). For embedded files use e.g. "(builtin)".
	Name string
	// Dir is the layer's directory on disk, "" for embedded trees. It lets
	// a relative include that leaves the tree ("../x.conf") be read from
	// the disk, as fail2ban would.
	Dir string
}

// DirLayer returns the layer of a directory on disk.
func DirLayer(dir string) Layer {
	dir = filepath.Clean(dir)
	return Layer{FS: os.DirFS(dir), Name: dir, Dir: dir}
}

// Loader reads configurations from layered trees. The zero value reads
// nothing; set Layers.
type Loader struct {
	// Layers are searched in order: the first layer holding a path wins,
	// file by file (put disk directories before the built-ins). NAME.d
	// directory listings are the union of all layers.
	Layers []Layer
	// AbsFS resolves absolute include paths ("/etc/x.conf" is read as
	// "etc/x.conf"). nil means the real root directory.
	AbsFS fs.FS
	// MaxFiles bounds the number of files read for one configuration
	// (counting repeats); 0 means 1000.
	MaxFiles int
}

// source is a located file: its key in the virtual namespace (a relative
// slash path inside the layers, or an absolute path) and a display name.
type source struct {
	key     string
	display string
	layer   int // -1 for absolute paths
}

func (l *Loader) absFS() fs.FS {
	if l.AbsFS != nil {
		return l.AbsFS
	}
	return os.DirFS("/")
}

// stat finds a regular file for a virtual key.
func (l *Loader) find(key string) (source, bool) {
	if strings.HasPrefix(key, "/") {
		rel := strings.TrimPrefix(path.Clean(key), "/")
		if rel == "" || !fs.ValidPath(rel) {
			return source{}, false
		}
		if fi, err := fs.Stat(l.absFS(), rel); err == nil && fi.Mode().IsRegular() {
			return source{key: key, display: key, layer: -1}, true
		}
		return source{}, false
	}
	if !fs.ValidPath(key) {
		return source{}, false
	}
	for i, ly := range l.Layers {
		if ly.FS == nil {
			continue
		}
		if fi, err := fs.Stat(ly.FS, key); err == nil && fi.Mode().IsRegular() {
			return source{key: key, display: displayName(ly, key), layer: i}, true
		}
	}
	return source{}, false
}

func displayName(ly Layer, key string) string {
	if ly.Name == "" {
		return key
	}
	return strings.TrimSuffix(ly.Name, "/") + "/" + key
}

func (l *Loader) readSource(s source) ([]byte, error) {
	var fsys fs.FS
	name := s.key
	if s.layer < 0 {
		fsys = l.absFS()
		name = strings.TrimPrefix(path.Clean(s.key), "/")
	} else {
		fsys = l.Layers[s.layer].FS
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	return data, nil
}

// glob lists NAME.d/*.SUFFIX over all layers, sorted, hidden files skipped
// (Python's glob "*" does not match a leading dot).
func (l *Loader) glob(dir, suffix string) []string {
	seen := map[string]bool{}
	var names []string
	add := func(entries []fs.DirEntry) {
		for _, e := range entries {
			n := e.Name()
			if strings.HasPrefix(n, ".") || !strings.HasSuffix(n, suffix) || seen[n] {
				continue
			}
			seen[n] = true
			names = append(names, n)
		}
	}
	if strings.HasPrefix(dir, "/") {
		rel := strings.TrimPrefix(path.Clean(dir), "/")
		if rel != "" && fs.ValidPath(rel) {
			if es, err := fs.ReadDir(l.absFS(), rel); err == nil {
				add(es)
			}
		}
	} else if fs.ValidPath(dir) {
		for _, ly := range l.Layers {
			if ly.FS == nil {
				continue
			}
			if es, err := fs.ReadDir(ly.FS, dir); err == nil {
				add(es)
			}
		}
	}
	sort.Strings(names)
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, path.Join(dir, n))
	}
	return out
}

// Read reads the configuration NAME (a slash path without extension, such
// as "jail" or "filter.d/sshd") the way fail2ban's ConfigReader does:
// NAME.conf, NAME.d/*.conf, NAME.local, NAME.d/*.local, each with its
// includes. It is an error when none of these files exists.
func (l *Loader) Read(name string) (*Config, error) {
	keys := []string{name + ".conf"}
	keys = append(keys, l.glob(name+".d", ".conf")...)
	keys = append(keys, name+".local")
	keys = append(keys, l.glob(name+".d", ".local")...)
	var existing []string
	for _, k := range keys {
		if _, ok := l.find(k); ok {
			existing = append(existing, k)
		}
	}
	if len(existing) == 0 {
		return nil, fmt.Errorf("no configuration file %s.conf or %s.local found in %s", name, name, l.where())
	}
	return l.ReadFiles(existing...)
}

func (l *Loader) where() string {
	var names []string
	for _, ly := range l.Layers {
		names = append(names, ly.Name)
	}
	if len(names) == 0 {
		return "(no configuration directories)"
	}
	return strings.Join(names, ", ")
}

// ReadFiles reads the given files (virtual keys: slash paths relative to
// the layers, or absolute paths) in order, each followed by its sibling
// .local file when that exists and is not listed, each with its includes,
// and merges them. Missing files are skipped; it is an error when no file
// at all could be read.
func (l *Loader) ReadFiles(keys ...string) (*Config, error) {
	st := &loadState{l: l, cache: map[string]*File{}, max: l.MaxFiles}
	if st.max <= 0 {
		st.max = 1000
	}
	list, err := st.includes(keys, nil)
	if err != nil {
		return nil, err
	}
	c := newConfig()
	c.warnings = st.warnings
	for _, s := range list {
		f := st.cache[s.key]
		c.files = append(c.files, s.display)
		c.merge(f)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("no configuration file found among %s in %s", strings.Join(keys, ", "), l.where())
	}
	return c, nil
}

type loadState struct {
	l        *Loader
	cache    map[string]*File
	count    int
	max      int
	warnings []string
}

// expandLocal mirrors fail2ban's _expandConfFilesWithLocal.
func (st *loadState) expandLocal(keys []string) []string {
	listed := map[string]bool{}
	for _, k := range keys {
		listed[k] = true
	}
	var out []string
	for _, k := range keys {
		out = append(out, k)
		local := strings.TrimSuffix(k, path.Ext(k)) + ".local"
		if !listed[local] {
			if _, ok := st.l.find(local); ok {
				out = append(out, local)
			}
		}
	}
	return out
}

// includes returns the files to merge for keys, depth first, with the
// "before" includes ahead of each file and the "after" ones behind it.
func (st *loadState) includes(keys []string, seen []string) ([]source, error) {
	var out []source
	for _, k := range st.expandLocal(keys) {
		got, err := st.one(k, seen)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

func (st *loadState) one(key string, seen []string) ([]source, error) {
	src, ok := st.l.find(key)
	if !ok {
		return nil, nil // missing files are ignored, like fail2ban
	}
	st.count++
	if st.count > st.max {
		return nil, fmt.Errorf("%s: more than %d configuration files read (include loop?)", src.display, st.max)
	}
	f, ok := st.cache[key]
	if !ok {
		data, err := st.l.readSource(src)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src.display, err)
		}
		f, err = Parse(src.display, data)
		if err != nil {
			return nil, err
		}
		st.cache[key] = f
	}
	var before, after []source
	if inc := f.Section("INCLUDES"); inc != nil {
		single := newConfig()
		single.merge(f)
		for _, which := range []string{"before", "after"} {
			if _, ok := inc.Get(which); !ok {
				continue
			}
			v, err := single.Get("INCLUDES", which, nil)
			if err != nil {
				return nil, err
			}
			for _, item := range strings.Split(v, "\n") {
				r := st.resolve(src, item)
				if r == "" {
					continue
				}
				if containsStr(seen, r) {
					st.warnings = append(st.warnings, fmt.Sprintf("%s: include cycle: %s already being read, skipped", src.display, r))
					continue
				}
				s := append(append([]string(nil), seen...), key)
				got, err := st.includes([]string{r}, s)
				if err != nil {
					return nil, err
				}
				if which == "before" {
					before = append(before, got...)
				} else {
					after = append(after, got...)
				}
			}
		}
	}
	out := append(before, src)
	return append(out, after...), nil
}

// resolve turns an include item into a virtual key: absolute paths stay,
// relative ones are joined to the including file's directory.
func (st *loadState) resolve(from source, item string) string {
	if item == "" {
		return ""
	}
	if strings.HasPrefix(item, "/") {
		return path.Clean(item)
	}
	if strings.HasPrefix(from.key, "/") {
		return path.Join(path.Dir(from.key), item)
	}
	j := path.Join(path.Dir(from.key), item)
	if j == ".." || strings.HasPrefix(j, "../") {
		// Leaves the layer tree: only a disk layer can follow it.
		if from.layer >= 0 && st.l.Layers[from.layer].Dir != "" {
			return filepath.ToSlash(filepath.Join(st.l.Layers[from.layer].Dir, filepath.FromSlash(j)))
		}
		return ""
	}
	return j
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// conditionalRE mirrors fail2ban's CONDITIONAL_RE for sections such as
// "Init?family=inet6".
var conditionalRE = regexp.MustCompile(`^(\w+)(\?.+)$`)

// ErrNoSection and ErrNoOption are wrapped by lookups that fail.
var (
	ErrNoSection = errors.New("no such section")
	ErrNoOption  = errors.New("no such option")
)

// Package filters holds palisade's built-in filter.d: filter files in
// fail2ban's format, written for palisade with RE2-only regexes that are
// anchored on both sides of every field a client controls. They are used
// when no file of the same name exists in the configuration directories.
package filters

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
)

//go:embed filter.d/*.conf
var files embed.FS

// FS returns the built-in filters as a read-only file system whose paths
// are "filter.d/NAME.conf" (the layout internal/config expects).
func FS() fs.FS { return files }

// Names returns the names of the built-in filters (file names without
// ".conf"), sorted, without the shared common.conf.
func Names() []string {
	ents, err := fs.ReadDir(files, "filter.d")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), ".conf")
		if !ok || e.IsDir() || n == "common" {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

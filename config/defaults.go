// Package defaults holds palisade's built-in configuration files
// (jail.conf and palisade.conf), embedded in the binary and used wherever
// the configuration directory has no file of that name.
package defaults

import (
	"embed"
	"io/fs"
)

//go:embed jail.conf palisade.conf
var files embed.FS

// FS returns the built-in configuration tree ("jail.conf",
// "palisade.conf").
func FS() fs.FS { return files }

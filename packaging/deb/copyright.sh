#!/usr/bin/env bash
# Writes the package's copyright file (machine-readable format) to stdout:
# palisade itself, then the Go standard library and every Go module linked
# into /usr/sbin/palisade, each with its licence. The module list comes from
# `go list -deps` of cmd/palisade, so it follows go.mod.
#
#   copyright.sh GO REPO
set -euo pipefail
GO=$1 repo=$2

# indent: a licence text as a DEP-5 continuation (" text", " ." for blank).
indent() { sed -e 's/[[:space:]]*$//' -e 's/^$/./' -e 's/^/ /' "$1"; }

# stanza NAME VERSION DIR: one Files paragraph with the licence found in DIR.
stanza() {
	local name=$1 ver=$2 dir=$3 lic holder short
	lic=$(find "$dir" -maxdepth 1 -type f \( -iname 'LICENSE*' -o -iname 'COPYING*' \) | LC_ALL=C sort | head -n1)
	if [ -z "$lic" ]; then
		echo "copyright.sh: $name $ver: no licence file in $dir" >&2
		exit 1
	fi
	holder=$(grep -m1 -iE '^[[:space:]]*copyright[[:space:]]+(\(c\)|©|[0-9])' "$lic" |
		sed -E -e 's/^[[:space:]]*[Cc]opyright[[:space:]]+//' -e 's/^(\([cC]\)|©)[[:space:]]*//') || true
	[ -n "$holder" ] || holder="the $name authors"
	if grep -q 'Apache License' "$lic" && grep -q 'Version 2.0' "$lic"; then
		short=Apache-2.0
	elif grep -q 'Permission is hereby granted, free of charge' "$lic"; then
		short=Expat
	elif grep -q 'Redistribution and use in source and binary forms' "$lic"; then
		if grep -qiE 'neither the name|names of its contributors' "$lic"; then short=BSD-3-clause; else short=BSD-2-clause; fi
	elif grep -q 'Mozilla Public License' "$lic"; then
		short=MPL-2.0
	else
		short="other"
	fi
	printf '\nFiles: go/%s\n' "$name"
	printf 'Comment: Go module %s %s, statically linked into /usr/sbin/palisade.\n' "$name" "$ver"
	printf 'Copyright: %s\n' "$holder"
	case $short in
	Apache-2.0 | MPL-2.0)
		printf 'License: %s\n On Debian systems the full text is in /usr/share/common-licenses/%s.\n' "$short" "$short" ;;
	*)
		printf 'License: %s\n' "$short"
		indent "$lic" ;;
	esac
}

cat <<'HEAD'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: palisade

Files: *
Copyright: the palisade authors
License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License"); you may not
 use this software except in compliance with the License.
 .
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
HEAD
stanza "the Go standard library" "$("$GO" env GOVERSION)" "$("$GO" env GOROOT)"
cd "$repo"
"$GO" list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}} {{.Dir}}{{end}}{{end}}' ./cmd/palisade |
	LC_ALL=C sort -u | while read -r path ver dir; do
	[ -n "$path" ] && stanza "$path" "$ver" "$dir"
done

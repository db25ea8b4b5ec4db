#!/usr/bin/env bash
# Measures the two candidate .deb builders on the same staged tree (the one
# make deb packs): dpkg-deb, as packaging/deb/build.sh runs it, and nfpm
# through `go run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0`, with a cold
# Go cache (fresh GOMODCACHE and GOCACHE: download and compile) and a warm
# one. For each: time, size, whether two runs are byte-identical, and
# lintian's errors and warnings. Results are recorded in docs/packaging.md.
#
#   bash packaging/compare-nfpm.sh     (from the repository root; needs lintian)
set -euo pipefail
NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
t=$(mktemp -d /tmp/palisade-nfpm.XXXXXX)
trap 'rm -rf "$t"' EXIT

make deb DEB_STAGE="$t/stage" >/dev/null
# shellcheck disable=SC2016 # $(VAR) is make syntax
eval "$(make -s -f - <<<'include Makefile
print: ; @echo "VERSION=$(VERSION) DEB_ARCH=$(DEB_ARCH) SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH)"' print)"
export SOURCE_DATE_EPOCH
stage=$t/stage

# nfpm.yaml: every file and directory of the staged tree with its mode.
{
	echo "name: palisade"
	echo "arch: $DEB_ARCH"
	echo "version: $VERSION"
	echo "version_schema: none"
	echo "maintainer: palisade developers <palisade@example.org>"
	echo "section: net"
	echo "priority: optional"
	echo "description: |"
	sed -n '/^Description: /,$p' "$stage/DEBIAN/control" | sed -e 's/^Description: //' -e 's/^ //' -e 's/^\.$//' -e 's/^/  /'
	echo "recommends: [nftables]"
	echo "mtime: $(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
	echo "scripts:"
	printf '  postinstall: %s\n  preremove: %s\n  postremove: %s\n' "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"
	echo "contents:"
	(cd "$stage" && find . -path ./DEBIAN -prune -o -mindepth 1 -type d -print | sed 's|^\.||' | LC_ALL=C sort) | while read -r d; do
		printf '  - dst: %s\n    type: dir\n    file_info: {mode: 0%s}\n' "$d" "$(stat -c %a "$stage$d")"
	done
	(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\.||' | LC_ALL=C sort) | while read -r f; do
		kind="file"
		case $f in /etc/*) kind="config" ;; esac
		printf '  - src: %s\n    dst: %s\n    type: %s\n    file_info: {mode: 0%s}\n' "$stage$f" "$f" "$kind" "$(stat -c %a "$stage$f")"
	done
} >"$t/nfpm.yaml"

measure() { # label command...: prints "label seconds"
	local label=$1 s e
	shift
	s=$(date +%s.%N)
	"$@" >/dev/null 2>"$t/err" || { cat "$t/err" >&2; return 1; }
	e=$(date +%s.%N)
	printf '%-32s %6.2f s\n' "$label" "$(echo "$e - $s" | bc)"
}
lint() {
	local tags
	tags=$(lintian "$1" 2>&1 | grep -E '^[EW]:' || true)
	echo "${tags:-(no errors or warnings)}" | sed 's/^/    /'
}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
echo "== dpkg-deb (packaging step only)"
measure "dpkg-deb run 1" dpkg-deb --root-owner-group -Zxz --threads-max=1 --build "$stage" "$t/dpkg1.deb"
measure "dpkg-deb run 2" dpkg-deb --root-owner-group -Zxz --threads-max=1 --build "$stage" "$t/dpkg2.deb"
cmp -s "$t/dpkg1.deb" "$t/dpkg2.deb" && echo "  identical: yes" || echo "  identical: NO"
echo "  size: $(stat -c %s "$t/dpkg1.deb") bytes"
lint "$t/dpkg1.deb"

echo "== nfpm $NFPM"
mkdir -p "$t/mod" "$t/cache"
measure "nfpm cold (download+compile)" env GOMODCACHE="$t/mod" GOCACHE="$t/cache" GOFLAGS=-mod=mod go run "$NFPM" package -f "$t/nfpm.yaml" -p deb -t "$t/nfpm1.deb"
measure "nfpm warm" env GOMODCACHE="$t/mod" GOCACHE="$t/cache" GOFLAGS=-mod=mod go run "$NFPM" package -f "$t/nfpm.yaml" -p deb -t "$t/nfpm2.deb"
cmp -s "$t/nfpm1.deb" "$t/nfpm2.deb" && echo "  identical: yes" || echo "  identical: NO"
echo "  size: $(stat -c %s "$t/nfpm1.deb") bytes"
lint "$t/nfpm1.deb"
chmod -R u+w "$t/mod"

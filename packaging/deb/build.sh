#!/usr/bin/env bash
# Builds palisade's Debian package from a built binary and the generated man
# pages and completion (run by `make deb`; see docs/packaging.md).
#
#   build.sh BIN GEN OUT
#
# BIN is the static binary, GEN the output of internal/cli/gendoc, OUT the
# .deb to write. The environment gives VERSION, DEB_ARCH, MAINTAINER and
# SOURCE_DATE_EPOCH (the commit time: every timestamp in the package is
# that, so two builds of one commit are byte-identical), and GO for listing
# the Go modules linked into the binary (their licences go into copyright).
#
# The tree is staged with explicit modes (umask and checkout modes do not
# leak in) and packed by dpkg-deb with root ownership, single-threaded xz
# (the output does not depend on the number of cores) and mtimes clamped to
# SOURCE_DATE_EPOCH.
set -euo pipefail

if [ $# -ne 3 ]; then
	echo "usage: $0 BIN GEN OUT" >&2
	exit 2
fi
bin=$1 gen=$2 out=$3
: "${VERSION:?}" "${DEB_ARCH:?}" "${MAINTAINER:?}" "${SOURCE_DATE_EPOCH:?}"
GO=${GO:-go}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

case $VERSION in
[0-9]*) ;;
*) echo "build.sh: VERSION $VERSION must start with a digit (Debian version syntax)" >&2; exit 2 ;;
esac
if ! [[ $VERSION =~ ^[0-9][A-Za-z0-9.+~-]*$ ]]; then
	echo "build.sh: VERSION $VERSION has characters a Debian version cannot hold" >&2
	exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/palisade-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
umask 022

dir() { install -d -m "$1" "$root/$2"; }
put() { install -m "$1" "$2" "$root/$3"; }
gz() { gzip -9n <"$1" >"$root/$2" && chmod 0644 "$root/$2"; }

# --- units: every dist/*.service whose palisade commands the binary has ---
units=()
dir 0755 lib/systemd/system
for unit in "$repo"/dist/*.service; do
	name=$(basename "$unit")
	missing=
	while read -r cmdpath; do
		grep -qxF "$cmdpath" "$gen/commands.txt" || missing="$cmdpath"
	done < <(sed -n 's#^Exec[A-Za-z]*=[-@:+!]*/usr/sbin/palisade ##p' "$unit" |
		awk '{ p=""; for (i = 1; i <= NF && $i ~ /^[a-z][a-z0-9-]*$/; i++) p = p (p ? " " : "") $i; print p }')
	if [ -n "$missing" ]; then
		echo "build.sh: leaving out $name: the binary has no 'palisade $missing'" >&2
		continue
	fi
	put 0644 "$unit" "lib/systemd/system/$name"
	units+=("$name")
done
case " ${units[*]} " in
*" palisade.service "*) ;;
*) echo "build.sh: dist/palisade.service is missing or names a command the binary lacks" >&2; exit 1 ;;
esac

# --- binary, configuration, state ---
dir 0755 usr/sbin
put 0755 "$bin" usr/sbin/palisade
dir 0755 etc/palisade
dir 0755 etc/palisade/jail.d
put 0600 "$repo/config/palisade.conf" etc/palisade/palisade.conf
put 0644 "$repo/packaging/etc/jail.local" etc/palisade/jail.local
dir 0755 etc/logrotate.d
put 0644 "$repo/packaging/etc/logrotate" etc/logrotate.d/palisade
dir 0700 var/lib/palisade
dir 0750 var/log/palisade

# --- man pages and completion, generated from the command tree ---
dir 0755 usr/share/man/man8
for page in "$gen"/man8/*.8; do
	gz "$page" "usr/share/man/man8/$(basename "$page").gz"
done
dir 0755 usr/share/bash-completion/completions
put 0644 "$gen/completion/palisade.bash" usr/share/bash-completion/completions/palisade
dir 0755 usr/share/zsh/vendor-completions
put 0644 "$gen/completion/_palisade" usr/share/zsh/vendor-completions/_palisade
dir 0755 usr/share/fish/vendor_completions.d
put 0644 "$gen/completion/palisade.fish" usr/share/fish/vendor_completions.d/palisade.fish

# --- documentation, changelog, copyright, lintian overrides ---
doc=usr/share/doc/palisade
dir 0755 "$doc"
put 0644 "$repo/README.md" "$doc/README.md"
for md in "$repo"/docs/*.md; do
	put 0644 "$md" "$doc/$(basename "$md")"
done
date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
printf 'palisade (%s) unstable; urgency=medium\n\n  * Release %s, built from commit %s.\n\n -- %s  %s\n' \
	"$VERSION" "$VERSION" "${COMMIT:-unknown}" "$MAINTAINER" "$date" >"$work/changelog"
gz "$work/changelog" "$doc/changelog.gz"
"$here/copyright.sh" "$GO" "$repo" >"$work/copyright"
put 0644 "$work/copyright" "$doc/copyright"
dir 0755 usr/share/lintian/overrides
put 0644 "$here/lintian-overrides" usr/share/lintian/overrides/palisade

# --- control area ---
ctl=$root/DEBIAN
install -d -m 0755 "$ctl"
size=$(du -s -k --apparent-size "$root" --exclude=DEBIAN | cut -f1)
sed -e "s|@VERSION@|$VERSION|" -e "s|@ARCH@|$DEB_ARCH|" -e "s|@MAINTAINER@|$MAINTAINER|" \
	-e "s|@SIZE@|$size|" "$here/control" >"$ctl/control"
for script in postinst prerm postrm; do
	sed "s|@UNITS@|${units[*]}|" "$here/$script" >"$ctl/$script"
	chmod 0755 "$ctl/$script"
done
(cd "$root" && find etc -type f | sort | sed 's|^|/|') >"$ctl/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort |
	xargs md5sum) >"$ctl/md5sums"
chmod 0644 "$ctl/control" "$ctl/conffiles" "$ctl/md5sums"

find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
if [ -n "${DEB_STAGE:-}" ]; then
	# The staged tree, for packaging/compare-nfpm.sh.
	rm -rf "$DEB_STAGE" && cp -a "$root" "$DEB_STAGE"
fi
mkdir -p "$(dirname "$out")"
dpkg-deb --root-owner-group -Zxz --threads-max=1 --build "$root" "$work/palisade.deb" >/dev/null
mv "$work/palisade.deb" "$out"
echo "built $out (units: ${units[*]})"

#!/usr/bin/env bash
# Acceptance checks of palisade's Debian package (make deb-test; .ci/run runs
# it after make test). From the repository root, as root:
#
#   bash test/deb/run.sh            build, reproducibility, lintian, dpkg --root sandbox
#   bash test/deb/run.sh --system   ...and a real apt-get install on this host,
#                                   purged again at the end (CI=true implies it)
#
# 1. Two builds of one commit are byte-identical (the second from a fresh
#    clone when the tree is clean, so the checkout path does not leak in).
# 2. lintian reports no error and no warning (skipped when lintian is absent).
# 3. In a dpkg --root sandbox (maintainer scripts run with DPKG_ROOT): install
#    (file list, modes, conffiles, enabled units, the binary's version, man
#    pages for every command, the packaged configuration validates), upgrade
#    to a rebuilt higher version (an edited conffile and the state are kept),
#    remove (configuration and state kept), purge (all gone); and an install
#    next to an enabled fail2ban (palisade.service held, migration printed).
# 4. --system: apt-get install ./palisade_*.deb (services kept from starting
#    by policy-rc.d), palisade config check, systemd-analyze verify of the
#    units, then the packaged binary and configuration run as a daemon in a
#    network namespace and ban an address from log lines in the kernel;
#    finally apt-get purge.
#
# Ends with "deb: N passed, N failed"; exits 1 when a check failed.
# shellcheck disable=SC2317 # helpers run through check and the trap
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

system=
[ "${CI:-}" = true ] && system=yes
[ "${1:-}" = --system ] && system=yes

if [ "$(id -u)" != 0 ] || ! command -v dpkg-deb >/dev/null || ! command -v dpkg >/dev/null; then
	echo "SKIP test/deb: needs root and dpkg (the sandbox installs with dpkg --root)"
	exit 0
fi

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { # description command...: passes when the command succeeds
	local what=$1
	shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}
finish() {
	echo "deb: $passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit $?
}

tmp=$(mktemp -d /tmp/palisade-debtest.XXXXXX)
netns=
daemon_pid=
cleanup() {
	[ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
	[ -n "$netns" ] && ip netns del "$netns" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

mk() { make -s "$@" >&2; }
# What the Makefile stamps (before anything is built into the tree).
version=$(cat VERSION)
arch=$(dpkg --print-architecture)
commit=$(git rev-parse HEAD)
modified=$(git status --porcelain)
deb=palisade_${version}_${arch}.deb

# --- 1. build twice, compare bytes ---
start=$SECONDS
if ! mk deb; then
	fail "make deb"
	finish
fi
ok "make deb ($((SECONDS - start)) s, $(stat -c %s "$deb") bytes)"
cp "$deb" "$tmp/v1.deb"
start=$SECONDS
if [ -z "$modified" ] && git clone -q --no-local . "$tmp/clone" 2>/dev/null; then
	where="a fresh clone"
	(cd "$tmp/clone" && mk deb) && cp "$tmp/clone/$deb" "$tmp/again.deb"
else
	where="the same tree (it has uncommitted changes)"
	mk deb && cp "$deb" "$tmp/again.deb"
fi
if cmp -s "$tmp/v1.deb" "$tmp/again.deb"; then
	ok "second build from $where is byte-identical ($((SECONDS - start)) s)"
else
	fail "second build from $where differs from the first"
	command -v diffoscope >/dev/null && diffoscope "$tmp/v1.deb" "$tmp/again.deb" | head -40
fi

# --- 2. lintian ---
if command -v lintian >/dev/null; then
	lintian --display-info "$tmp/v1.deb" >"$tmp/lintian" 2>&1
	sed 's/^/     /' "$tmp/lintian"
	check "lintian: no errors or warnings" bash -c "! grep -qE '^[EW]: ' '$tmp/lintian'"
else
	echo "SKIP lintian: not installed (CI installs it)"
fi

# --- 3. dpkg --root sandbox ---
# sandbox DIR: an empty dpkg database under DIR.
sandbox() {
	mkdir -p "$1/var/lib/dpkg/info" "$1/var/lib/dpkg/updates" "$1/var/lib/dpkg/triggers"
	touch "$1/var/lib/dpkg/status" "$1/var/lib/dpkg/available"
}
# sdpkg DIR ARGS...: dpkg on the sandbox; maintainer scripts run outside a
# chroot with DPKG_ROOT=DIR, as they must for --root installs.
sdpkg() {
	local root=$1
	shift
	dpkg --root="$root" --force-script-chrootless --force-not-root --log=/dev/null "$@"
}
mode() { stat -c %a "$1" 2>/dev/null; }
# quiet command...: run it with its output in the log (shown on failure).
quiet() { "$@" >"$tmp/quiet.out" 2>&1 || { sed 's/^/     /' "$tmp/quiet.out"; return 1; }; }
absent() { [ ! -e "$1" ] && [ ! -L "$1" ]; }
status_of() { dpkg-query --admindir="$1/var/lib/dpkg" -W -f='${db:Status-Abbrev}' palisade 2>/dev/null | tr -d ' '; }

# host_links: palisade's unit links on this host (the sandbox must not add any).
host_links() { find /etc/systemd/system -name 'palisade*' 2>/dev/null | sort; }
host_links_before=$(host_links)

S=$tmp/root
sandbox "$S"
if sdpkg "$S" -i "$tmp/v1.deb" >"$tmp/install.out" 2>&1; then ok "sandbox: install"; else
	fail "sandbox: install"
	cat "$tmp/install.out"
	finish
fi

# The file list dpkg recorded is exactly the package's data.
dpkg-deb -c "$tmp/v1.deb" | awk '{print $6}' | sed -e 's|^\./|/|' -e 's|/$||' | grep -v '^$' | grep -vx '/' | LC_ALL=C sort >"$tmp/want.list"
dpkg-query --admindir="$S/var/lib/dpkg" -L palisade | grep -vx '/\.' | LC_ALL=C sort >"$tmp/got.list"
check "sandbox: dpkg -L lists the package's files" cmp -s "$tmp/want.list" "$tmp/got.list"
for f in /usr/sbin/palisade /lib/systemd/system/palisade.service /lib/systemd/system/palisade-ssh-recover.service \
	/etc/palisade/palisade.conf /etc/palisade/jail.local /etc/logrotate.d/palisade \
	/usr/share/man/man8/palisade.8.gz /usr/share/bash-completion/completions/palisade \
	/usr/share/zsh/vendor-completions/_palisade /usr/share/fish/vendor_completions.d/palisade.fish \
	/usr/share/doc/palisade/copyright /usr/share/doc/palisade/changelog.gz; do
	check "sandbox: $f shipped" grep -qx "$f" "$tmp/got.list"
done
while read -r want path; do
	got=$(mode "$S$path")
	check "sandbox: $path mode $want (got $got)" [ "$got" = "$want" ]
done <<'MODES'
755 /usr/sbin/palisade
600 /etc/palisade/palisade.conf
644 /etc/palisade/jail.local
644 /etc/logrotate.d/palisade
700 /var/lib/palisade
750 /var/log/palisade
644 /lib/systemd/system/palisade.service
MODES
conffiles=$(dpkg-query --admindir="$S/var/lib/dpkg" -W -f='${Conffiles}' palisade | awk '{print $1}' | sort | tr '\n' ' ')
check "sandbox: conffiles are palisade.conf, jail.local, logrotate (got: $conffiles)" \
	[ "$conffiles" = "/etc/logrotate.d/palisade /etc/palisade/jail.local /etc/palisade/palisade.conf " ]
check "sandbox: palisade.service enabled" [ -L "$S/etc/systemd/system/multi-user.target.wants/palisade.service" ]
check "sandbox: palisade-ssh-recover.service enabled" [ -L "$S/etc/systemd/system/multi-user.target.wants/palisade-ssh-recover.service" ]
check "sandbox: the host's unit links untouched" [ "$(host_links)" = "$host_links_before" ]
if [ -e dist/palisade-firewall.service ] && "$S/usr/sbin/palisade" firewall apply --help >/dev/null 2>&1; then
	check "sandbox: palisade-firewall.service shipped and enabled" [ -L "$S/etc/systemd/system/sysinit.target.wants/palisade-firewall.service" ]
else
	check "sandbox: palisade-firewall.service left out (no 'palisade firewall apply' yet)" [ ! -e "$S/lib/systemd/system/palisade-firewall.service" ]
fi

vjson=$("$S/usr/sbin/palisade" version --json)
check "sandbox: palisade version --json says $version, commit $commit" \
	python3 -c 'import json,sys; v=json.loads(sys.argv[1]); sys.exit(not (v["version"]==sys.argv[2] and v["commit"]==sys.argv[3] and v["go"].startswith("go")))' "$vjson" "$version" "$commit"
check "sandbox: palisade --version equals palisade version" [ "$("$S/usr/sbin/palisade" --version)" = "$("$S/usr/sbin/palisade" version)" ]
# A man page for every command; the pages render.
missing=
while read -r cmd; do
	[ -e "$S/usr/share/man/man8/palisade-${cmd// /-}.8.gz" ] || missing="$missing [$cmd]"
done <build/deb/gen/commands.txt
check "sandbox: a man page for every command${missing:+ (missing:$missing)}" [ -z "$missing" ]
if command -v man >/dev/null; then
	check "sandbox: man palisade-ban renders" bash -c "man -l '$S/usr/share/man/man8/palisade-ban.8.gz' 2>&1 | grep -q -- '--for'"
fi
if command -v logrotate >/dev/null; then
	check "sandbox: logrotate accepts /etc/logrotate.d/palisade" quiet logrotate -d -s "$tmp/logrotate.state" "$S/etc/logrotate.d/palisade"
fi
check "sandbox: bash completion loads" bash -c "source '$S/usr/share/bash-completion/completions/palisade' && declare -F __start_palisade >/dev/null"
check "sandbox: the packaged configuration validates" quiet "$S/usr/sbin/palisade" config check --config-dir "$S/etc/palisade"
mkdir -p "$tmp/example"
cp "$S/etc/palisade/palisade.conf" "$tmp/example/"
sed 's/^#\([a-z[]\)/\1/' "$S/etc/palisade/jail.local" >"$tmp/example/jail.local"
check "sandbox: jail.local's examples, uncommented, validate (5 jails)" \
	bash -c "'$S/usr/sbin/palisade' config check --config-dir '$tmp/example' | grep -q 'configuration OK: 5 enabled'"

# Upgrade to a rebuilt higher version: the edited conffile and the state stay.
echo "# edited by the administrator" >>"$S/etc/palisade/jail.local"
echo state >"$S/var/lib/palisade/palisade.db"
v2=${version}+upgradetest
if mk deb VERSION="$v2" && mv "palisade_${v2}_${arch}.deb" "$tmp/v2.deb"; then ok "rebuild as $v2"; else fail "rebuild as $v2"; fi
if sdpkg "$S" -i "$tmp/v2.deb" >"$tmp/upgrade.out" 2>&1; then ok "sandbox: upgrade to $v2"; else
	fail "sandbox: upgrade to $v2"
	cat "$tmp/upgrade.out"
fi
check "sandbox: upgraded binary says $v2" bash -c "'$S/usr/sbin/palisade' version | grep -qF 'palisade $v2 '"
check "sandbox: edited jail.local kept over the upgrade" grep -qx '# edited by the administrator' "$S/etc/palisade/jail.local"
check "sandbox: no .dpkg-dist/.dpkg-old left" bash -c "! ls '$S/etc/palisade' | grep -q dpkg-"
check "sandbox: state kept over the upgrade" grep -qx state "$S/var/lib/palisade/palisade.db"
check "sandbox: palisade.service still enabled" [ -L "$S/etc/systemd/system/multi-user.target.wants/palisade.service" ]

# Remove: the binary and units go, configuration and state stay.
check "sandbox: remove" quiet sdpkg "$S" -r palisade
check "sandbox: binary removed" [ ! -e "$S/usr/sbin/palisade" ]
check "sandbox: units removed" [ ! -e "$S/lib/systemd/system/palisade.service" ]
check "sandbox: configuration kept on remove" grep -qx '# edited by the administrator' "$S/etc/palisade/jail.local"
check "sandbox: state kept on remove" grep -qx state "$S/var/lib/palisade/palisade.db"
check "sandbox: status rc after remove (got $(status_of "$S"))" [ "$(status_of "$S")" = rc ]

# Purge: configuration, state, logs and unit links all go.
check "sandbox: purge" quiet sdpkg "$S" -P palisade
for p in /etc/palisade /var/lib/palisade /var/log/palisade /etc/systemd/system/multi-user.target.wants/palisade.service \
	/etc/systemd/system/palisade.service /etc/logrotate.d/palisade; do
	check "sandbox: $p gone after purge" absent "$S$p"
done
check "sandbox: not installed after purge (status '$(status_of "$S")')" bash -c "[ -z '$(status_of "$S")' ] || [ '$(status_of "$S")' = pn ]"

# Next to an enabled fail2ban: palisade.service is held, the steps printed.
F=$tmp/f2b
sandbox "$F"
mkdir -p "$F/etc/systemd/system/multi-user.target.wants"
ln -s /lib/systemd/system/fail2ban.service "$F/etc/systemd/system/multi-user.target.wants/fail2ban.service"
sdpkg "$F" -i "$tmp/v1.deb" >"$tmp/f2b.out" 2>&1
check "fail2ban sandbox: install" [ "$(status_of "$F")" = ii ]
check "fail2ban sandbox: palisade.service not enabled" [ ! -e "$F/etc/systemd/system/multi-user.target.wants/palisade.service" ]
check "fail2ban sandbox: migration steps printed" grep -q 'palisade config check --config-dir /etc/fail2ban' "$tmp/f2b.out"
sdpkg "$F" -i "$tmp/v2.deb" >"$tmp/f2b2.out" 2>&1
check "fail2ban sandbox: still held after an upgrade" [ ! -e "$F/etc/systemd/system/multi-user.target.wants/palisade.service" ]
check "fail2ban sandbox: purge" quiet sdpkg "$F" -P palisade
check "fail2ban sandbox: fail2ban's link untouched" [ -L "$F/etc/systemd/system/multi-user.target.wants/fail2ban.service" ]

# --- 4. a real install on this host ---
if [ -z "$system" ]; then
	echo "SKIP real install: run with --system (CI does) to apt-get install the package on this host"
	finish
fi
if dpkg-query -W -f='${db:Status-Abbrev}' palisade 2>/dev/null | grep -q '^i'; then
	fail "real install: palisade is already installed on this host; not touching it"
	finish
fi
made_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
	made_policy=yes
fi
f2b_enabled=
[ -e /etc/systemd/system/multi-user.target.wants/fail2ban.service ] && f2b_enabled=yes
cp "$tmp/v1.deb" "$tmp/$deb"
if (cd "$tmp" && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "./$deb") >"$tmp/apt.out" 2>&1; then
	ok "real install: apt-get install ./$deb"
else
	fail "real install: apt-get install ./$deb"
	cat "$tmp/apt.out"
fi
check "real install: palisade on PATH says $version" bash -c "palisade version | grep -qF 'palisade $version '"
check "real install: palisade config check" quiet palisade config check
if [ -n "$f2b_enabled" ]; then
	check "real install: fail2ban is enabled here, so palisade.service is held" [ ! -e /etc/systemd/system/multi-user.target.wants/palisade.service ]
	check "real install: migration steps printed" grep -q 'palisade config check --config-dir /etc/fail2ban' "$tmp/apt.out"
else
	check "real install: palisade.service enabled" [ -L /etc/systemd/system/multi-user.target.wants/palisade.service ]
fi
if command -v systemd-analyze >/dev/null; then
	systemd-analyze verify /lib/systemd/system/palisade*.service >"$tmp/verify" 2>&1
	grep -v "man palisade-.*failed with code\|Documentation" "$tmp/verify" | sed 's/^/     /'
	check "real install: systemd-analyze verify finds no unit error" bash -c "! grep -v 'man palisade-.*failed with code' '$tmp/verify' | grep -q ."
fi

# The packaged binary and /etc/palisade run as a daemon in a fresh network
# namespace; log lines under --root get an address banned in the kernel.
netns=palisade-debtest-$$
R=$tmp/sysroot
mkdir -p "$R/var/log"
: >"$R/var/log/auth.log"
sock=$R/run/palisade/palisade.sock
if ip netns add "$netns" && ip -n "$netns" link set lo up; then
	ip netns exec "$netns" /usr/sbin/palisade --root "$R" daemon --config-dir /etc/palisade >"$tmp/daemon.log" 2>&1 &
	daemon_pid=$!
	ready=
	for _ in $(seq 100); do
		palisade --socket "$sock" status >/dev/null 2>&1 && ready=yes && break
		kill -0 "$daemon_pid" 2>/dev/null || break
		sleep 0.1
	done
	check "real install: daemon ready in the namespace with /etc/palisade" [ -n "$ready" ]
	for i in 1 2 3 4 5 6; do
		echo "$(date '+%b %e %H:%M:%S') debtest sshd[4242]: Failed password for root from 192.0.2.7 port 4100$i ssh2" >>"$R/var/log/auth.log"
	done
	banned=
	for _ in $(seq 100); do
		palisade --socket "$sock" banned 2>/dev/null | grep -q 192.0.2.7 && banned=yes && break
		sleep 0.1
	done
	check "real install: sshd jail banned 192.0.2.7 from the log" [ -n "$banned" ]
	check "real install: 192.0.2.7 is in the namespace's nftables set" \
		bash -c "ip netns exec '$netns' nft list table inet palisade | grep -q 192.0.2.7"
	kill -TERM "$daemon_pid"
	wait "$daemon_pid"
	rc=$?
	daemon_pid=
	check "real install: daemon stops cleanly on SIGTERM (exit $rc)" [ "$rc" = 0 ]
	[ "$failed" = 0 ] || sed 's/^/     daemon: /' "$tmp/daemon.log" | tail -20
	ip netns del "$netns" && netns=
else
	fail "real install: create network namespace $netns"
fi

if DEBIAN_FRONTEND=noninteractive apt-get purge -y -q palisade >"$tmp/purge.out" 2>&1; then ok "real install: apt-get purge"; else
	fail "real install: apt-get purge"
	cat "$tmp/purge.out"
fi
check "real install: /etc/palisade gone" absent /etc/palisade
check "real install: /usr/sbin/palisade gone" absent /usr/sbin/palisade
check "real install: no palisade unit link left" [ -z "$(host_links)" ]
[ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
finish

#!/usr/bin/env bash
# bench/run.sh - palisade's filter engine side by side with fail2ban-regex
# and sshguard's parser on the same synthetic auth.log.
#
#   bench/run.sh                 1,000,000 lines, seed 1
#   LINES=200000 SEED=7 bench/run.sh
#   BENCH_DIR=/tmp/b bench/run.sh   keep the log and every output in /tmp/b
#
# Prints one row per tool: lines/s, wall time, peak RSS (from
# /usr/bin/time -v) and failures found, then whether palisade and
# fail2ban-regex found the same failures (host and time). A tool that is
# missing (or a `palisade regex` that does not work yet) shows n/a.
# No network is used.
set -eu

cd "$(dirname "$0")/.."
LINES=${LINES:-1000000}
SEED=${SEED:-1}
STOCK_SSHD=${STOCK_SSHD:-/etc/fail2ban/filter.d/sshd.conf}
SSHG_PARSER=${SSHG_PARSER:-}
export CGO_ENABLED=0

if [ -n "${BENCH_DIR:-}" ]; then
	WORK=$BENCH_DIR
	mkdir -p "$WORK"
else
	WORK=$(mktemp -d /tmp/palisade-bench.XXXXXX)
	trap 'rm -rf "$WORK"' EXIT
fi

TIMEV=/usr/bin/time
[ -x "$TIMEV" ] || TIMEV=""

say() { printf '%s\n' "$*" >&2; }

# Build what we run.
go build -o "$WORK/genauthlog" ./bench/cmd/genauthlog
go build -o "$WORK/failcmp" ./bench/cmd/failcmp
PAL=""
if go build -trimpath -o "$WORK/palisade" ./cmd/palisade 2>"$WORK/build.err"; then
	printf 'Nov 24 19:40:51 h sshd[1]: Invalid user a from 192.0.2.1 port 1\n' >"$WORK/probe.log"
	if "$WORK/palisade" regex --json "$WORK/probe.log" sshd >"$WORK/probe.out" 2>&1 &&
		grep -q 192.0.2.1 "$WORK/probe.out"; then
		PAL="$WORK/palisade"
	else
		say "palisade regex does not work yet: $(head -c 200 "$WORK/probe.out")"
	fi
else
	say "palisade does not build: $(head -c 300 "$WORK/build.err")"
fi

LOG="$WORK/auth.log"
say "generating $LINES lines (seed $SEED) ..."
"$WORK/genauthlog" -lines "$LINES" -seed "$SEED" -o "$LOG"
BYTES=$(wc -c <"$LOG")

# measure NAME CMD... : run CMD (stdout to $WORK/NAME.out, stdin from the log
# when NAME ends in "-stdin"), set WALL (s) and RSS (MB).
measure() {
	name=$1
	shift
	in=/dev/null
	case $name in *-stdin) in=$LOG ;; esac
	if [ -n "$TIMEV" ]; then
		"$TIMEV" -v -o "$WORK/$name.time" "$@" <"$in" >"$WORK/$name.out" 2>"$WORK/$name.err" || return 1
		WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {
			n = split($2, p, ":"); s = 0
			for (i = 1; i <= n; i++) s = s * 60 + p[i]
			printf "%.2f", s }' "$WORK/$name.time")
		RSS=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$WORK/$name.time")
	else
		t0=$(date +%s.%N)
		"$@" <"$in" >"$WORK/$name.out" 2>"$WORK/$name.err" || return 1
		t1=$(date +%s.%N)
		WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
		RSS=n/a
	fi
}

ROWS=""
row() { # tool wall rss failures
	rate=n/a
	case $2 in n/a) ;; *) rate=$(awk -v n="$LINES" -v w="$2" 'BEGIN { if (w > 0) printf "%.0f", n / w; else print "inf" }') ;; esac
	ROWS="$ROWS$(printf '%-46s %12s %9s %10s %10s' "$1" "$rate" "$2" "$3" "$4")
"
}

# palisade, built-in sshd filter, one core.
if [ -n "$PAL" ]; then
	say "palisade regex (built-in sshd, GOMAXPROCS=1) ..."
	if measure pal-builtin env GOMAXPROCS=1 "$PAL" regex --tz UTC "$LOG" sshd; then
		GOMAXPROCS=1 "$PAL" regex --json --tz UTC "$LOG" sshd >"$WORK/pal-builtin.json"
		row "palisade regex, built-in sshd, 1 core" "$WALL" "$RSS" "$(wc -l <"$WORK/pal-builtin.json")"
	else
		row "palisade regex, built-in sshd, 1 core" n/a n/a "error"
	fi
	if [ -r "$STOCK_SSHD" ]; then
		say "palisade regex ($STOCK_SSHD, GOMAXPROCS=1) ..."
		if measure pal-stock env GOMAXPROCS=1 "$PAL" regex --tz UTC "$LOG" "$STOCK_SSHD"; then
			GOMAXPROCS=1 "$PAL" regex --json --tz UTC "$LOG" "$STOCK_SSHD" >"$WORK/pal-stock.json"
			row "palisade regex, fail2ban sshd.conf, 1 core" "$WALL" "$RSS" "$(wc -l <"$WORK/pal-stock.json")"
		else
			row "palisade regex, fail2ban sshd.conf, 1 core" n/a n/a "error"
		fi
	fi
else
	row "palisade regex, built-in sshd, 1 core" n/a n/a n/a
	row "palisade regex, fail2ban sshd.conf, 1 core" n/a n/a n/a
fi

# fail2ban-regex with the stock filter (the reference failures).
F2B=""
if command -v fail2ban-regex >/dev/null 2>&1 && [ -r "$STOCK_SSHD" ]; then
	say "fail2ban-regex ($STOCK_SSHD) ... (slow)"
	if measure f2b env TZ=UTC fail2ban-regex -o row "$LOG" "$STOCK_SSHD"; then
		F2B="$WORK/f2b.out"
		row "fail2ban-regex, sshd.conf" "$WALL" "$RSS" "$(grep -c "^\['" "$F2B" || true)"
	else
		row "fail2ban-regex, sshd.conf" n/a n/a "error"
	fi
else
	row "fail2ban-regex, sshd.conf" n/a n/a n/a
fi

# sshguard's log parser, fed the file on stdin.
if [ -z "$SSHG_PARSER" ]; then
	for p in /usr/libexec/sshguard/sshg-parser /usr/lib/sshguard/sshg-parser /usr/local/libexec/sshguard/sshg-parser; do
		if [ -x "$p" ]; then
			SSHG_PARSER=$p
			break
		fi
	done
fi
if [ -n "$SSHG_PARSER" ]; then
	say "sshguard parser ($SSHG_PARSER) ..."
	if measure sshg-stdin "$SSHG_PARSER"; then
		row "sshguard sshg-parser (all services)" "$WALL" "$RSS" "$(wc -l <"$WORK/sshg-stdin.out")"
	else
		row "sshguard sshg-parser (all services)" n/a n/a "error"
	fi
else
	row "sshguard sshg-parser (all services)" n/a n/a n/a
fi

# The floor: a single regex over the file.
if measure grep env LC_ALL=C grep -cE 'sshd\[[0-9]+\]: (Invalid user|Failed password)' "$LOG"; then
	row "LC_ALL=C grep -cE (two sshd messages)" "$WALL" "$RSS" "$(cat "$WORK/grep.out")"
fi

printf '\n%s lines, %s bytes (%s bytes/line), %s, seed %s\n' "$LINES" "$BYTES" \
	"$(awk -v b="$BYTES" -v n="$LINES" 'BEGIN { printf "%.1f", b / n }')" "$(uname -m)" "$SEED"
printf '%-46s %12s %9s %10s %10s\n' "tool" "lines/s" "wall s" "RSS MB" "failures"
printf '%s' "$ROWS"
echo

# Same failures (host and time) as fail2ban?
status=0
for v in builtin stock; do
	if [ -n "$F2B" ] && [ -s "$WORK/pal-$v.json" ] 2>/dev/null; then
		printf 'palisade (%s) vs fail2ban-regex: ' "$v"
		"$WORK/failcmp" -palisade "$WORK/pal-$v.json" -fail2ban "$F2B" -tz UTC || status=1
	elif [ -f "$WORK/pal-$v.json" ] || [ -n "$PAL" ]; then
		printf 'palisade (%s) vs fail2ban-regex: n/a\n' "$v"
	else
		printf 'palisade (%s) vs fail2ban-regex: n/a (palisade regex not available)\n' "$v"
	fi
done
exit $status

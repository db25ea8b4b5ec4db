#!/usr/bin/env bash
# bench/run.sh - palisade's filter engine side by side with fail2ban-regex
# and sshguard's parser, on the same generated logs (bench/authlog
# profiles: attack, mail, web, mixed).
#
#   bench/run.sh                         every profile, 300,000 lines each, seed 1
#   LINES=1000000 PROFILES="attack" bench/run.sh
#   F2B=no bench/run.sh                  skip fail2ban-regex (the slow part)
#   BENCH_DIR=/tmp/b bench/run.sh        keep the logs and every output in /tmp/b
#   REPEAT=5 bench/run.sh                run palisade, sshg-parser and grep 5 times
#                                        each, keep the run with the least CPU time
#
# Prints, per profile, one row per tool and filter: lines/s from wall
# time and from CPU time (one core: GOMAXPROCS=1), wall time, CPU
# (user+sys) time, peak RSS (from /usr/bin/time -v) and failures found;
# then whether palisade and fail2ban-regex found the same failures (host
# and time). A missing tool shows n/a. No network is used.
set -eu

cd "$(dirname "$0")/.."
LINES=${LINES:-300000}
SEED=${SEED:-1}
PROFILES=${PROFILES:-attack mail web mixed}
F2B_RUN=${F2B:-yes}
REPEAT=${REPEAT:-1}
STOCK=${STOCK:-/etc/fail2ban/filter.d}
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
	PAL="$WORK/palisade"
else
	say "palisade does not build: $(head -c 300 "$WORK/build.err")"
fi
if [ -z "$SSHG_PARSER" ]; then
	for p in /usr/libexec/sshguard/sshg-parser /usr/lib/sshguard/sshg-parser /usr/local/libexec/sshguard/sshg-parser; do
		if [ -x "$p" ]; then
			SSHG_PARSER=$p
			break
		fi
	done
fi
command -v fail2ban-regex >/dev/null 2>&1 || F2B_RUN=no

# measure NAME CMD... : run CMD (stdout to $WORK/NAME.out, stdin from the log
# when NAME ends in "-stdin"), set WALL (s), CPU (s) and RSS (MB).
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
		CPU=$(awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { printf "%.2f", u + s }' "$WORK/$name.time")
		RSS=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$WORK/$name.time")
	else
		t0=$(date +%s.%N)
		"$@" <"$in" >"$WORK/$name.out" 2>"$WORK/$name.err" || return 1
		t1=$(date +%s.%N)
		WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
		CPU=n/a
		RSS=n/a
	fi
}

# best NAME CMD... : measure REPEAT times; WALL, CPU and RSS of the run
# with the least CPU time (wall time without /usr/bin/time).
best() {
	name=$1
	shift
	bw="" bc="" br="" i=0
	while [ "$i" -lt "$REPEAT" ]; do
		measure "$name" "$@" || return 1
		key=$CPU
		[ "$key" = n/a ] && key=$WALL
		if [ -z "$bc" ] || awk -v a="$key" -v b="$bc" 'BEGIN { exit !(a < b) }'; then
			bw=$WALL bc=$key br=$RSS
		fi
		i=$((i + 1))
	done
	WALL=$bw RSS=$br
	[ "$CPU" = n/a ] || CPU=$bc
}

ROWS=""
rate() { # seconds -> lines/s
	case $1 in n/a) echo n/a ;; *) awk -v n="$LINES" -v w="$1" 'BEGIN { if (w > 0) printf "%.0f", n / w; else print "inf" }' ;; esac
}
row() { # tool wall cpu rss failures
	ROWS="$ROWS$(printf '%-50s %10s %10s %8s %8s %8s %9s' "$1" "$(rate "$2")" "$(rate "$3")" "$2" "$3" "$4" "$5")
"
}

# palisade FILTER LABEL: palisade regex on one core, with a --json run for the failures.
palisade() {
	flt=$1 label=$2 tag=$3
	[ -n "$PAL" ] || { row "palisade regex, $label" n/a n/a n/a n/a; return; }
	case $flt in /*) [ -r "$flt" ] || return 0 ;; esac
	say "  palisade regex $flt ..."
	if best "$P-pal-$tag" env GOMAXPROCS=1 "$PAL" regex --tz UTC "$LOG" "$flt"; then
		GOMAXPROCS=1 "$PAL" regex --json --tz UTC "$LOG" "$flt" >"$WORK/$P-pal-$tag.json"
		row "palisade regex, $label, 1 core" "$WALL" "$CPU" "$RSS" "$(wc -l <"$WORK/$P-pal-$tag.json")"
	else
		row "palisade regex, $label, 1 core" n/a n/a n/a error
	fi
}

# fail2ban FILE TAG: fail2ban-regex with a stock filter.
fail2ban() {
	flt=$1 tag=$2
	[ "$F2B_RUN" = yes ] && [ -r "$flt" ] || { row "fail2ban-regex, $(basename "$flt")" n/a n/a n/a n/a; return; }
	say "  fail2ban-regex $flt ... (slow)"
	if measure "$P-f2b-$tag" env TZ=UTC fail2ban-regex -o row "$LOG" "$flt"; then
		row "fail2ban-regex, $(basename "$flt")" "$WALL" "$CPU" "$RSS" "$(grep -c "^\['" "$WORK/$P-f2b-$tag.out" || true)"
	else
		row "fail2ban-regex, $(basename "$flt")" n/a n/a n/a error
	fi
}

status=0
COMPARE=""
for P in $PROFILES; do
	ROWS=""
	COMPARE=""
	LOG="$WORK/$P.log"
	say "profile $P: generating $LINES lines (seed $SEED) ..."
	"$WORK/genauthlog" -profile "$P" -lines "$LINES" -seed "$SEED" -o "$LOG"
	BYTES=$(wc -c <"$LOG")
	case $P in
	attack | mixed) pairs="sshd" ;;
	mail) pairs="postfix dovecot" ;;
	web) pairs="nginx-http-auth apache-auth" ;;
	esac
	for f in $pairs; do
		palisade "$f" "built-in $f" "builtin-$f"
		palisade "$STOCK/$f.conf" "fail2ban $f.conf" "stock-$f"
		fail2ban "$STOCK/$f.conf" "$f"
	done
	if [ -n "$SSHG_PARSER" ]; then
		say "  sshguard parser ($SSHG_PARSER) ..."
		if best "$P-sshg-stdin" "$SSHG_PARSER"; then
			row "sshguard sshg-parser (all services)" "$WALL" "$CPU" "$RSS" "$(wc -l <"$WORK/$P-sshg-stdin.out")"
		else
			row "sshguard sshg-parser (all services)" n/a n/a n/a error
		fi
	else
		row "sshguard sshg-parser (all services)" n/a n/a n/a n/a
	fi
	if best "$P-grep" env LC_ALL=C grep -cE 'sshd(-session)?\[[0-9]+\]: (Invalid user|Failed password)|SASL|password mismatch|not found in' "$LOG"; then
		row "LC_ALL=C grep -cE (a few failure messages)" "$WALL" "$CPU" "$RSS" "$(cat "$WORK/$P-grep.out")"
	fi

	printf '\n== profile %s: %s lines, %s bytes (%s bytes/line), %s, seed %s\n' "$P" "$LINES" "$BYTES" \
		"$(awk -v b="$BYTES" -v n="$LINES" 'BEGIN { printf "%.1f", b / n }')" "$(uname -m)" "$SEED"
	printf '%-50s %10s %10s %8s %8s %8s %9s\n' "tool" "lines/s" "cpu l/s" "wall s" "cpu s" "RSS MB" "failures"
	printf '%s' "$ROWS"
	# Same failures (host and time) as fail2ban?
	for f in $pairs; do
		[ -s "$WORK/$P-f2b-$f.out" ] || continue
		for v in builtin stock; do
			[ -s "$WORK/$P-pal-$v-$f.json" ] || continue
			printf 'palisade (%s %s) vs fail2ban-regex: ' "$v" "$f"
			if ! "$WORK/failcmp" -palisade "$WORK/$P-pal-$v-$f.json" -fail2ban "$WORK/$P-f2b-$f.out" -tz UTC -show 2; then
				# the stock filter through palisade must agree; built-in
				# filters differ where documented (docs/filters.md)
				[ "$v" = stock ] && status=1
			fi
		done
	done
done
exit $status

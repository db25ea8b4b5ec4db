#!/usr/bin/env bash
# bench/fuzz.sh [FUZZTIME] - run every native Go fuzz target in the
# repository for FUZZTIME each (default 30s; "1x" = one input), one after
# the other:
#   go test -run '^$' -fuzz '^FuzzX$' -fuzztime FUZZTIME ./pkg
# FUZZ_LIST=1 only lists the targets ("DIR NAME" per line).
# Exits non-zero if any target fails (its crasher is kept under the
# package's testdata/fuzz/FuzzX/ by go test). No network is used.
set -eu

cd "$(dirname "$0")/.."
FUZZTIME=${1:-${FUZZTIME:-30s}}
export CGO_ENABLED=0

targets=$(grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' . |
	sed -E 's#^\./##; s#:func (Fuzz[A-Za-z0-9_]*)\($# \1#' |
	awk '{ n = split($1, p, "/"); d = p[1]; for (i = 2; i < n; i++) d = d "/" p[i]; if (n == 1) d = "."; print d, $2 }' |
	sort -u)

if [ -z "$targets" ]; then
	echo "no fuzz targets found"
	exit 0
fi
if [ "${FUZZ_LIST:-}" = 1 ]; then
	printf '%s\n' "$targets"
	exit 0
fi

failed=""
count=0
while read -r dir name; do
	[ -n "$dir" ] || continue
	count=$((count + 1))
	printf '== %s ./%s (%s)\n' "$name" "$dir" "$FUZZTIME"
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "./$dir"; then
		failed="$failed ./$dir:$name"
	fi
done <<EOT
$targets
EOT

if [ -n "$failed" ]; then
	echo "FAILED:$failed"
	exit 1
fi
echo "all $count fuzz targets passed ($FUZZTIME each)"

#!/bin/sh
# run.sh: runs one libFuzzer target for a while on a copy of its seed corpus.
#
# Usage: run.sh TARGET SEEDS ARTIFACTS [LIBFUZZER-OPTION...]
#   TARGET     the fuzzer executable
#   SEEDS      its seed corpus directory (read only: libFuzzer writes the
#              inputs it finds into a temporary copy)
#   ARTIFACTS  where a crashing input is kept (crash-<sha1>, ...)
# FUZZ_SECONDS says how long to fuzz (default 60).
# Exit status: 0 nothing found, 1 a crash, leak, timeout or broken property
# (the input is in ARTIFACTS), 99 usage error.
set -u

if [ $# -lt 3 ]; then
	echo "usage: run.sh TARGET SEEDS ARTIFACTS [LIBFUZZER-OPTION...]" >&2
	exit 99
fi
target=$1
seeds=$2
artifacts=$3
shift 3
seconds=${FUZZ_SECONDS:-60}

[ -x "$target" ] || { echo "run.sh: $target is not executable" >&2; exit 99; }
mkdir -p "$artifacts" || exit 99

corpus=$(mktemp -d "${TMPDIR:-/tmp}/tcpfiled-fuzz.XXXXXX") || exit 99
trap 'rm -rf "$corpus"' EXIT
trap 'exit 1' HUP INT TERM
if [ -d "$seeds" ]; then
	cp -R "$seeds"/. "$corpus"/ || exit 99
fi

# -timeout: one input taking 10 s is a hang.  libFuzzer exits non-zero on
# a crash, a leak, a hang or memory over its -rss_limit_mb (2 GiB).
"$target" "$corpus" -max_total_time="$seconds" -timeout=10 \
	-artifact_prefix="$artifacts/" -print_final_stats=1 "$@"
rc=$?
if [ "$rc" -ne 0 ]; then
	echo "run.sh: $(basename "$target") failed (exit $rc); inputs in $artifacts:" >&2
	ls -l "$artifacts" >&2
	exit 1
fi
exit 0

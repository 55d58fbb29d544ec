#!/bin/sh
# transfer.sh: loopback throughput of tcpfile put/get against socat, side by side.
#
# Usage: tests/bench/transfer.sh      (or: meson test -C build --benchmark)
# Environment: TCPFILED_BIN, TCPFILE_BIN (default build/tcpfiled, build/tcpfile
# under the source tree), BENCH_SIZE_MB (default 512), BENCH_RUNS (default 3).
# Builds and installs nothing; exits 77 (skipped) when socat or a binary is
# missing.  Everything it starts or writes is removed on exit.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=${TCPFILED_SOURCE_ROOT:-$(cd "$here/../.." && pwd)}
daemon_bin=${TCPFILED_BIN:-$root/build/tcpfiled}
client_bin=${TCPFILE_BIN:-$root/build/tcpfile}
size_mb=${BENCH_SIZE_MB:-512}
runs=${BENCH_RUNS:-3}

skip() {
	echo "transfer.sh: $*; skipping" >&2
	exit 77
}

fail() {
	echo "transfer.sh: $*" >&2
	exit 1
}

command -v socat >/dev/null 2>&1 || skip "socat is not installed"
[ -x "$daemon_bin" ] || skip "no tcpfiled at $daemon_bin (build it first)"
[ -x "$client_bin" ] || skip "no tcpfile at $client_bin (build it first)"
case $size_mb in '' | *[!0-9]*) echo "BENCH_SIZE_MB must be a number" >&2; exit 64 ;; esac
case $runs in '' | *[!0-9]* | 0) echo "BENCH_RUNS must be a positive number" >&2; exit 64 ;; esac

# Same file system as /tmp on purpose: the socat sink writes there too.
tmp=$(mktemp -d /tmp/tcpfile-bench.XXXXXX)
pids=""

cleanup() {
	status=$?
	trap - EXIT INT TERM
	for p in $pids; do
		kill "$p" 2>/dev/null || true
	done
	for p in $pids; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() {
	date +%s.%N
}

# seconds between two `date +%s.%N` stamps
elapsed() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'
}

# smaller of two durations
min_time() {
	awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'
}

# A free loopback port: bind to port 0 and read what the kernel chose.
free_port() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
	else
		awk 'BEGIN { srand(); print 20000 + int(rand() * 40000) }'
	fi
}

# True once something listens on 127.0.0.1:$1 (from /proc/net/tcp, state 0A).
listening() {
	hex=$(printf '%04X' "$1")
	grep -q "^ *[0-9]*: 0100007F:$hex 00000000:0000 0A" /proc/net/tcp
}

# (POSIX sh has no local variables: every helper uses names of its own.)
wait_listening() {
	tries=0
	while ! listening "$1"; do
		tries=$((tries + 1))
		if [ "$tries" -gt 200 ]; then
			echo "nothing listens on port $1 after 10 s" >&2
			return 1
		fi
		sleep 0.05
	done
}

# start_daemon NAME FSYNC: writes a config, starts tcpfiled, sets $port.
start_daemon() {
	name=$1
	port=$(free_port)
	mkdir "$tmp/share-$name"
	cat >"$tmp/$name.conf" <<EOF
[server]
listen = 127.0.0.1:$port
workers = 2
log_level = warning
fsync = $2

[files]
path = $tmp/share-$name
EOF
	"$daemon_bin" -c "$tmp/$name.conf" 2>"$tmp/$name.log" &
	pids="$pids $!"
	if ! wait_listening "$port"; then
		cat "$tmp/$name.log" >&2
		fail "tcpfiled did not start"
	fi
}

echo "creating a ${size_mb} MiB random file..." >&2
data=$tmp/data.bin
dd if=/dev/urandom of="$data" bs=1048576 count="$size_mb" status=none

# --- the measurements: each sets $t to its wall-clock seconds ------------

# Every run starts with no dirty pages: otherwise the write-back of the
# previous run's 512 MiB throttles whichever tool happens to run next, and
# the ratios measure the order of the runs instead of the tools.
settle() {
	sync
}

# Upload baseline: push the file into a sink that writes it to disk; the
# run ends when the sink has written the last byte and exited.
socat_up() {
	p=$(free_port)
	socat -u "TCP-LISTEN:$p,reuseaddr,bind=127.0.0.1" "OPEN:$tmp/sink.bin,creat,trunc" &
	sink=$!
	pids="$pids $sink"
	wait_listening "$p"
	rm -f "$tmp/sink.bin"
	settle
	t0=$(now)
	socat -u "OPEN:$data" "TCP:127.0.0.1:$p"
	wait "$sink" || fail "the socat sink failed"
	t1=$(now)
	t=$(elapsed "$t0" "$t1")
}

# Download baseline: a source serves the file once; the run ends when the
# receiver has written everything.
socat_down() {
	p=$(free_port)
	socat -u "OPEN:$data" "TCP-LISTEN:$p,reuseaddr,bind=127.0.0.1" &
	src=$!
	pids="$pids $src"
	wait_listening "$p"
	rm -f "$tmp/down.bin"
	settle
	t0=$(now)
	socat -u "TCP:127.0.0.1:$p" "OPEN:$tmp/down.bin,creat,trunc"
	t1=$(now)
	wait "$src" || fail "the socat source failed"
	t=$(elapsed "$t0" "$t1")
}

# $1: port, $2: share directory (its previous copy is removed untimed, as
# the socat sink's is: freeing 512 MiB of blocks is not the tool's cost).
tcpfile_put() {
	rm -f "$2/bench.bin"
	settle
	t0=$(now)
	"$client_bin" -q -s "127.0.0.1:$1" put "$data" files/bench.bin >/dev/null ||
		fail "tcpfile put failed"
	t1=$(now)
	t=$(elapsed "$t0" "$t1")
}

tcpfile_get() {
	rm -f "$tmp/got.bin"
	settle
	t0=$(now)
	"$client_bin" -q -s "127.0.0.1:$1" get files/bench.bin "$tmp/got.bin" >/dev/null ||
		fail "tcpfile get failed"
	t1=$(now)
	t=$(elapsed "$t0" "$t1")
}

start_daemon nofsync no
port_nofsync=$port
start_daemon fsync yes
port_fsync=$port

best_socat_up="" best_socat_down="" best_put="" best_get="" best_put_fsync=""
run=0
while [ "$run" -lt "$runs" ]; do
	run=$((run + 1))
	echo "run $run of $runs..." >&2
	socat_up
	best_socat_up=$(min_time "$best_socat_up" "$t")
	socat_down
	best_socat_down=$(min_time "$best_socat_down" "$t")
	tcpfile_put "$port_nofsync" "$tmp/share-nofsync"
	best_put=$(min_time "$best_put" "$t")
	tcpfile_get "$port_nofsync"
	best_get=$(min_time "$best_get" "$t")
	tcpfile_put "$port_fsync" "$tmp/share-fsync"
	best_put_fsync=$(min_time "$best_put_fsync" "$t")
done

# Not a test, but a benchmark of a broken transfer would be meaningless.
cmp -s "$data" "$tmp/sink.bin" || fail "socat upload corrupted the data"
cmp -s "$data" "$tmp/down.bin" || fail "socat download corrupted the data"
cmp -s "$data" "$tmp/share-nofsync/bench.bin" || fail "tcpfile put corrupted the data"
cmp -s "$data" "$tmp/share-fsync/bench.bin" || fail "tcpfile put (fsync) corrupted the data"
cmp -s "$data" "$tmp/got.bin" || fail "tcpfile get corrupted the data"

awk -v mb="$size_mb" -v runs="$runs" \
    -v su="$best_socat_up" -v sd="$best_socat_down" \
    -v tp="$best_put" -v tg="$best_get" -v tf="$best_put_fsync" '
function rate(t) { return t > 0 ? mb / t : 0 }
function row(what, tool, t, base) {
	if (base == "")
		printf "%-22s %-8s %9.3f %10.1f %10s\n", what, tool, t, rate(t), "-"
	else
		printf "%-22s %-8s %9.3f %10.1f %10.2f\n", what, tool, t, rate(t), rate(t) / rate(base)
}
BEGIN {
	printf "%d MiB over loopback, best of %d\n\n", mb, runs
	printf "%-22s %-8s %9s %10s %10s\n", "transfer", "tool", "seconds", "MiB/s", "vs socat"
	row("upload", "socat", su, "")
	row("upload (fsync=no)", "tcpfile", tp, su)
	row("upload (fsync=yes)", "tcpfile", tf, su)
	row("download", "socat", sd, "")
	row("download", "tcpfile", tg, sd)
	printf "\nvs socat: tcpfile throughput / socat throughput (1.00 = parity)\n"
}'

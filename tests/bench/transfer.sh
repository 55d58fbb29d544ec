#!/bin/sh
# transfer.sh: loopback throughput of tcpfile put/get against socat, side by side;
# with BENCH_TLS=1 also over TLS against plain, and the cost of a login.
#
# Usage: tests/bench/transfer.sh      (or: meson test -C build --benchmark)
#        BENCH_TLS=1 tests/bench/transfer.sh
# Environment: TCPFILED_BIN, TCPFILE_BIN (default build/tcpfiled, build/tcpfile
# under the source tree), BENCH_SIZE_MB (default 512), BENCH_RUNS (default 3),
# BENCH_TLS (default 0; 1 adds the TLS rows: a self-signed certificate made
# with openssl, a tls_listen beside the plain listener of the same daemon,
# tcpfile -s tcps://... --pin ...; and the login's cost, timing BENCH_LOGINS
# (default 20) runs of `tcpfile ls` with and without -u through the real
# binaries).
# Builds and installs nothing; exits 77 (skipped) when socat, openssl (for
# TLS) or a binary is missing.  Everything it starts or writes is removed on
# exit.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=${TCPFILED_SOURCE_ROOT:-$(cd "$here/../.." && pwd)}
daemon_bin=${TCPFILED_BIN:-$root/build/tcpfiled}
client_bin=${TCPFILE_BIN:-$root/build/tcpfile}
size_mb=${BENCH_SIZE_MB:-512}
runs=${BENCH_RUNS:-3}
tls=${BENCH_TLS:-${TLS:-0}}
logins=${BENCH_LOGINS:-20}

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
case $tls in 0 | 1) ;; *) echo "BENCH_TLS must be 0 or 1" >&2; exit 64 ;; esac
case $logins in '' | *[!0-9]* | 0) echo "BENCH_LOGINS must be a positive number" >&2; exit 64 ;; esac
if [ "$tls" = 1 ]; then
	command -v openssl >/dev/null 2>&1 || skip "openssl is not installed (BENCH_TLS=1)"
fi

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

# start_daemon NAME FSYNC [SERVER_LINES]: writes a config (SERVER_LINES added
# to [server]), starts tcpfiled, sets $port.
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
${3:-}

[files]
path = $tmp/share-$name
anonymous = write
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

# $1: server (HOST:PORT or tcps://HOST:PORT), $2: share directory (its
# previous copy is removed untimed, as the socat sink's is: freeing 512 MiB
# of blocks is not the tool's cost); tcps:// servers are checked by $pin.
tcpfile_put() {
	rm -f "$2/bench.bin"
	settle
	t0=$(now)
	# shellcheck disable=SC2086 # $pin_args: no option or two words
	"$client_bin" -q -s "$1" $(pin_args "$1") put "$data" files/bench.bin >/dev/null ||
		fail "tcpfile put ($1) failed"
	t1=$(now)
	t=$(elapsed "$t0" "$t1")
}

tcpfile_get() {
	rm -f "$tmp/got.bin"
	settle
	t0=$(now)
	# shellcheck disable=SC2086
	"$client_bin" -q -s "$1" $(pin_args "$1") get files/bench.bin "$tmp/got.bin" >/dev/null ||
		fail "tcpfile get ($1) failed"
	t1=$(now)
	t=$(elapsed "$t0" "$t1")
}

pin=""
pin_args() {
	case $1 in tcps://*) echo "--pin $pin" ;; esac
}

# TLS: a self-signed P-256 certificate for 127.0.0.1, its pin, and a users
# file with user "bench" at tcpfiled passwd's default iteration count (what
# a real account costs to log in to).
make_tls_files() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -days 2 \
		-keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>"$tmp/openssl.log" ||
		{ cat "$tmp/openssl.log" >&2; fail "openssl req failed"; }
	pin=sha256:$(openssl x509 -in "$tmp/tls.crt" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1)
	: >"$tmp/users"
	chmod 600 "$tmp/users"
	echo bench-password | "$daemon_bin" passwd -f "$tmp/users" bench >/dev/null 2>&1 ||
		fail "tcpfiled passwd failed"
}

# Mean wall-clock milliseconds of $logins runs of `tcpfile ARGS... ls files`.
time_ls() {
	i=0
	t0=$(now)
	while [ "$i" -lt "$logins" ]; do
		i=$((i + 1))
		TCPFILE_PASSWORD=bench-password "$client_bin" "$@" ls files >/dev/null ||
			fail "tcpfile $* ls failed"
	done
	t1=$(now)
	ms=$(awk -v a="$t0" -v b="$t1" -v n="$logins" 'BEGIN { printf "%.1f", (b - a) * 1000 / n }')
}

start_daemon nofsync no
port_nofsync=$port
start_daemon fsync yes
port_fsync=$port
if [ "$tls" = 1 ]; then
	make_tls_files
	tls_port=$(free_port)
	start_daemon tls no "tls_listen = 127.0.0.1:$tls_port
tls_certificate = $tmp/tls.crt
tls_key = $tmp/tls.key
users_file = $tmp/users"
	port_tls_plain=$port
	wait_listening "$tls_port" || fail "no TLS listener"
fi
best_tls_put="" best_tls_get="" best_tlsp_put="" best_tlsp_get=""

best_socat_up="" best_socat_down="" best_put="" best_get="" best_put_fsync=""
run=0
while [ "$run" -lt "$runs" ]; do
	run=$((run + 1))
	echo "run $run of $runs..." >&2
	socat_up
	best_socat_up=$(min_time "$best_socat_up" "$t")
	socat_down
	best_socat_down=$(min_time "$best_socat_down" "$t")
	tcpfile_put "127.0.0.1:$port_nofsync" "$tmp/share-nofsync"
	best_put=$(min_time "$best_put" "$t")
	tcpfile_get "127.0.0.1:$port_nofsync"
	best_get=$(min_time "$best_get" "$t")
	tcpfile_put "127.0.0.1:$port_fsync" "$tmp/share-fsync"
	best_put_fsync=$(min_time "$best_put_fsync" "$t")
	if [ "$tls" = 1 ]; then
		# Plain and TLS through the same daemon, one after the other.
		tcpfile_put "127.0.0.1:$port_tls_plain" "$tmp/share-tls"
		best_tlsp_put=$(min_time "$best_tlsp_put" "$t")
		tcpfile_get "127.0.0.1:$port_tls_plain"
		best_tlsp_get=$(min_time "$best_tlsp_get" "$t")
		cmp -s "$data" "$tmp/got.bin" || fail "tcpfile get (plain) corrupted the data"
		tcpfile_put "tcps://127.0.0.1:$tls_port" "$tmp/share-tls"
		best_tls_put=$(min_time "$best_tls_put" "$t")
		cmp -s "$data" "$tmp/share-tls/bench.bin" || fail "tcpfile put (TLS) corrupted the data"
		tcpfile_get "tcps://127.0.0.1:$tls_port"
		best_tls_get=$(min_time "$best_tls_get" "$t")
		cmp -s "$data" "$tmp/got.bin" || fail "tcpfile get (TLS) corrupted the data"
	fi
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

[ "$tls" = 1 ] || exit 0

echo "timing logins ($logins runs each)..." >&2
time_ls -s "127.0.0.1:$port_tls_plain"
ls_plain=$ms
time_ls -s "127.0.0.1:$port_tls_plain" -u bench
ls_plain_login=$ms
time_ls -s "tcps://127.0.0.1:$tls_port" --pin "$pin"
ls_tls=$ms
time_ls -s "tcps://127.0.0.1:$tls_port" --pin "$pin" -u bench
ls_tls_login=$ms
iterations=$(awk -F: '$1 == "bench" { split($2, a, "[$]"); print a[2] }' "$tmp/users")

awk -v mb="$size_mb" -v runs="$runs" \
    -v pu="$best_tlsp_put" -v pg="$best_tlsp_get" -v tu="$best_tls_put" -v tg="$best_tls_get" \
    -v lp="$ls_plain" -v lpl="$ls_plain_login" -v lt="$ls_tls" -v ltl="$ls_tls_login" \
    -v n="$logins" -v iter="$iterations" '
function rate(t) { return t > 0 ? mb / t : 0 }
function row(what, tool, t, base) {
	printf "%-22s %-8s %9.3f %10.1f %10.2f\n", what, tool, t, rate(t), rate(t) / rate(base)
}
BEGIN {
	printf "\nTLS against plain, one daemon (fsync=no), %d MiB, best of %d\n\n", mb, runs
	printf "%-22s %-8s %9s %10s %10s\n", "transfer", "conn", "seconds", "MiB/s", "vs plain"
	row("upload", "plain", pu, pu)
	row("upload", "TLS", tu, pu)
	row("download", "plain", pg, pg)
	row("download", "TLS", tg, pg)
	printf "\ntcpfile ls, whole process, mean of %d runs (ms)\n\n", n
	printf "%-8s %12s %12s %12s\n", "conn", "no login", "-u bench", "login costs"
	printf "%-8s %12.1f %12.1f %12.1f\n", "plain", lp, lpl, lpl - lp
	printf "%-8s %12.1f %12.1f %12.1f\n", "TLS", lt, ltl, ltl - lt
	printf "\n(SCRAM at %s iterations; a failed login would add the server'"'"'s fixed 1 s)\n", iter
}'

#!/bin/sh
# peers.sh: tcpfiled against rsync, vsftpd and nginx WebDAV, side by side on loopback.
#
# Usage: tests/bench/peers.sh [quick]      (normally run as: scripts/dev bench [quick])
#
# Starts every server on 127.0.0.1 with a private configuration and runs:
#   W1  upload one big file to tmpfs          W2  download it again
#   W3  many 4 KiB files in one session, to tmpfs
#   W4  one small upload per session, a fresh client process each, 8 in parallel
#   W5  W3 onto ext4 (an image file on a loop device)
#   W5f W5 with every file durable before its answer
# Full mode: 1 GiB, 2,000 files, 400 sessions, a warm-up and the median of 3
# runs; quick mode: 256 MiB, 500 files, 100 sessions, a warm-up and 1 run.
# The runs of the peers are interleaved, and every run is checked byte for
# byte (cmp, diff -r): a run that fails the check is FAILED, not timed.
# Memory is the PSS of each server's whole process tree (smaps_rollup), idle
# and at its peak during the W1 warm-up.  Prints one table of rates and one
# of memory, in Markdown.
#
# Needs root (tmpfs and loop mounts, vsftpd's anonymous chroot) and the
# peers' packages; builds nothing but the two small C programs beside it.
# Everything it starts, mounts or writes is gone when it exits.
# Environment: TCPFILED_BIN, TCPFILE_BIN (default build-bench/tcpfiled and
# build-bench/tcpfile under the source tree), CC (default cc), BENCH_TMPDIR
# (default /var/tmp: holds the ext4 image, so it should be on a real disk).
# Per-server state lives in variables named after the server (pid_rsync,
# port_nginx, fail_vsftpd, up_tcpfiled), set and read through eval:
# shellcheck disable=SC2034,SC2154

set -eu
umask 022

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
daemon_bin=${TCPFILED_BIN:-$root/build-bench/tcpfiled}
client_bin=${TCPFILE_BIN:-$root/build-bench/tcpfile}

case ${1:-full} in
full) big_mb=1024 small_n=2000 sess_n=400 runs=3 ;;
quick) big_mb=256 small_n=500 sess_n=100 runs=1 ;;
*) echo "usage: peers.sh [quick]" >&2; exit 64 ;;
esac
par=8 workers=4
# socat moves the bytes in blocks of the size tcpfile uses for bodies.
socat_block=262144

die() {
	echo "peers.sh: $*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "needs root (tmpfs and loop mounts, vsftpd's chroot)"
[ -x "$daemon_bin" ] || die "no tcpfiled at $daemon_bin (build it first)"
[ -x "$client_bin" ] || die "no tcpfile at $client_bin (build it first)"

work=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/tcpfile-peers.XXXXXX")
tmpfs_mnt="" ext_mnt="" shm_dir="" servers="" helpers=""

cleanup() {
	status=$?
	trap - EXIT INT TERM HUP
	for cl_p in $helpers; do
		if alive "$cl_p"; then kill "$cl_p" 2>/dev/null || true; fi
	done
	for cl_p in $servers; do
		stop_tree "$cl_p"
	done
	for cl_m in $ext_mnt $tmpfs_mnt; do
		umount "$cl_m" 2>/dev/null || umount -l "$cl_m" || true
	done
	rm -rf "$work" ${shm_dir:+"$shm_dir"}
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

mkdir "$work/etc" "$work/log" "$work/bin"
results=$work/results
: >"$results"

# --- processes -------------------------------------------------------------

# True while PID exists and is not a zombie.
alive() {
	{ read -r al_line <"/proc/$1/stat"; } 2>/dev/null || return 1
	al_rest=${al_line##*) }
	case $al_rest in Z* | X*) return 1 ;; esac
	return 0
}

# "pid ppid" of every process (POSIX sh has no locals: helpers use their own names).
proc_table() {
	for pt_f in /proc/[0-9]*/stat; do
		{ read -r pt_line <"$pt_f"; } 2>/dev/null || continue
		pt_pid=${pt_f#/proc/}
		# shellcheck disable=SC2086
		set -- ${pt_line##*) }
		echo "${pt_pid%/stat} $2"
	done
}

# PID and all its descendants, one a line.
tree_pids() {
	proc_table | awk -v root="$1" '
	{ parent[$1] = $2 }
	END {
		if (!(root in parent))
			exit
		keep[root] = 1
		print root
		do {
			more = 0
			for (p in parent)
				if (!(p in keep) && (parent[p] in keep)) {
					keep[p] = 1
					print p
					more = 1
				}
		} while (more)
	}'
}

# "PSS_KiB PRIVATE_KiB PROCESSES" of the process tree under PID.
mem_of() {
	mo_files=""
	for mo_p in $(tree_pids "$1"); do
		mo_files="$mo_files /proc/$mo_p/smaps_rollup"
	done
	[ -n "$mo_files" ] || { echo "0 0 0"; return 0; }
	# shellcheck disable=SC2086
	cat $mo_files 2>/dev/null | awk '
	/^Pss:/ { pss += $2; n++ }
	/^Private_(Clean|Dirty):/ { priv += $2 }
	END { printf "%d %d %d\n", pss, priv, n }'
}

# Until FILE.stop exists, keep in FILE the largest PSS the tree under PID had.
sample_peak() {
	sp_best="0 0 0"
	while [ ! -e "$2.stop" ]; do
		sp_best=$(echo "$sp_best $(mem_of "$1")" |
			awk '{ print ($4 > $1) ? $4 " " $5 " " $6 : $1 " " $2 " " $3 }')
		echo "$sp_best" >"$2"
	done
}

# Wait until the tree under PID has N processes (10 s at most).
wait_procs() {
	wp_n=0
	while [ "$(tree_pids "$1" | wc -l)" -lt "$2" ]; do
		wp_n=$((wp_n + 1))
		[ "$wp_n" -lt 200 ] || return 1
		sleep 0.05
	done
}

# TERM the tree under PID, KILL what is left after 5 s, reap PID.
stop_tree() {
	st_pids=$(tree_pids "$1")
	kill -TERM "$1" 2>/dev/null || true
	st_n=0
	while alive "$1" && [ "$st_n" -lt 100 ]; do
		sleep 0.05
		st_n=$((st_n + 1))
	done
	for st_p in $st_pids; do
		if alive "$st_p"; then kill -KILL "$st_p" 2>/dev/null || true; fi
	done
	wait "$1" 2>/dev/null || true
	forget "$1"
}

# Drop a process that is gone from the lists cleanup() stops.
forget() {
	servers=$(echo " $servers " | sed "s/ $1 / /")
	helpers=$(echo " $helpers " | sed "s/ $1 / /")
}

# --- ports ------------------------------------------------------------------

# Ports are handed out upwards from a random start below the kernel's
# ephemeral range, so no server port collides with a client's.
eph_lo=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range)
[ "$eph_lo" -gt 15000 ] || eph_lo=32768
port_next=$((10000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % (eph_lo - 15000)))

# take_port: sets $port to a port nobody on this machine uses (not in a
# subshell: $port_next must move on).
take_port() {
	tp_used=$(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '
	function hex(s,    i, v) {
		v = 0
		for (i = 1; i <= length(s); i++)
			v = v * 16 + index("0123456789ABCDEF", toupper(substr(s, i, 1))) - 1
		return v
	}
	$2 ~ /:/ { n = split($2, a, ":"); print hex(a[n]) }')
	while :; do
		[ "$port_next" -lt "$eph_lo" ] || die "no free port below $eph_lo"
		port=$port_next
		port_next=$((port_next + 1))
		echo "$tp_used" | grep -qx "$port" || return 0
	done
}

listening() {
	grep -q "^ *[0-9]*: 0100007F:$(printf '%04X' "$1") 00000000:0000 0A" /proc/net/tcp
}

# wait_listening PORT PID: until PORT listens (10 s at most, or PID dies).
wait_listening() {
	wl_n=0
	until listening "$1"; do
		alive "$2" || return 1
		wl_n=$((wl_n + 1))
		[ "$wl_n" -lt 200 ] || return 1
		sleep 0.05
	done
}

# --- servers ------------------------------------------------------------------
# Each start_NAME sets pid_NAME and port_NAME, or fail_NAME to why it failed.

getv() { eval "printf '%s' \"\${$1:-}\""; }

# launched NAME PID PORT LOG [PROCESSES]: wait for the server to be up.
launched() {
	servers="$servers $2"
	if wait_listening "$3" "$2"; then
		if wait_procs "$2" "${5:-1}"; then
			eval "pid_$1=\$2 port_$1=\$3 fail_$1="
			return 0
		fi
		la_why="fewer than ${5:-1} processes after 10 s"
	elif alive "$2"; then
		la_why="not listening on port $3 after 10 s"
	else
		la_why=$(grep -v '^[[:space:]]*$' "$4" 2>/dev/null | tail -n 1 | tr -d '|' | cut -c 1-80)
		la_why=${la_why:-exited at once}
	fi
	stop_tree "$2"
	eval "pid_$1= fail_$1=\$la_why"
	echo "$1 failed to start: $la_why" >&2
}

# Each server's files: $1/NAME (vsftpd's anonymous root $1/vsftpd must not be
# writable, so its uploads go to $1/vsftpd/d).
make_roots() {
	for mr_d in rsync vsftpd/d nginx tcpfiled forkserver/w4 socat; do
		mkdir -p "$1/$mr_d"
	done
	chmod 777 "$1/vsftpd/d"
}

start_rsync() {
	take_port
	sr_port=$port
	cat >"$work/etc/rsyncd.conf" <<EOF
port = $sr_port
address = 127.0.0.1
use chroot = no
uid = root
gid = root
log file = $work/log/rsyncd.log

[m]
path = $1/rsync
read only = no
EOF
	command -v rsync >/dev/null 2>&1 || { fail_rsync="rsync is not installed"; return 0; }
	rsync --daemon --no-detach --config="$work/etc/rsyncd.conf" >>"$work/log/rsyncd.log" 2>&1 &
	launched rsync $! "$sr_port" "$work/log/rsyncd.log"
}

start_vsftpd() {
	take_port
	sv_port=$port
	mkdir -p "$work/vsftpd-empty"
	# The seccomp sandbox of vsftpd 3.0.3 kills sessions on kernels and
	# C libraries newer than it knows, and the default secure_chroot_dir
	# lives in /run, which nothing creates without systemd.
	cat >"$work/etc/vsftpd.conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$sv_port
background=NO
anonymous_enable=YES
local_enable=NO
no_anon_password=YES
anon_root=$1/vsftpd
write_enable=YES
anon_upload_enable=YES
anon_mkdir_write_enable=YES
anon_other_write_enable=YES
anon_umask=022
ftp_username=ftp
secure_chroot_dir=$work/vsftpd-empty
pasv_enable=YES
connect_from_port_20=NO
seccomp_sandbox=NO
xferlog_enable=NO
vsftpd_log_file=$work/log/vsftpd.log
EOF
	for sv_cmd in vsftpd lftp; do
		command -v "$sv_cmd" >/dev/null 2>&1 || { fail_vsftpd="$sv_cmd is not installed"; return 0; }
	done
	vsftpd "$work/etc/vsftpd.conf" >>"$work/log/vsftpd.log" 2>&1 &
	launched vsftpd $! "$sv_port" "$work/log/vsftpd.log"
}

start_nginx() {
	take_port
	sn_port=$port
	mkdir -p "$work/nginx"
	cat >"$work/etc/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes auto;
user root;
pid $work/nginx/nginx.pid;
error_log $work/log/nginx.log warn;
events { worker_connections 256; }
http {
	access_log off;
	sendfile on;
	client_max_body_size 0;
	client_body_temp_path $1/nginx/.body;
	server {
		listen 127.0.0.1:$sn_port;
		root $1/nginx;
		dav_methods PUT;
		create_full_put_path on;
	}
}
EOF
	for sn_cmd in nginx curl; do
		command -v "$sn_cmd" >/dev/null 2>&1 || { fail_nginx="$sn_cmd is not installed"; return 0; }
	done
	# shellcheck disable=SC2094
	nginx -e "$work/log/nginx.log" -p "$work/nginx/" -c "$work/etc/nginx.conf" \
		>>"$work/log/nginx.log" 2>&1 &
	launched nginx $! "$sn_port" "$work/log/nginx.log" $((1 + $(nproc)))
}

# start_tcpfiled NAME ROOT WORKERS FSYNC
start_tcpfiled() {
	take_port
	stf_port=$port
	cat >"$work/etc/$1.conf" <<EOF
[server]
listen = 127.0.0.1:$stf_port
workers = $3
log_level = warning
fsync = $4

[files]
path = $2/tcpfiled
read_only = no
overwrite = yes
# The benchmark's clients are on loopback: no login.
anonymous = write
EOF
	"$daemon_bin" -c "$work/etc/$1.conf" >>"$work/log/$1.log" 2>&1 &
	launched "$1" $! "$stf_port" "$work/log/$1.log" $((1 + $3))
}

start_forkserver() {
	take_port
	sfs_port=$port
	if ! { "${CC:-cc}" -O2 -o "$work/bin/forkserver" "$here/forkserver.c" &&
		"${CC:-cc}" -O2 -o "$work/bin/forkclient" "$here/forkclient.c"; } >"$work/log/cc.log" 2>&1; then
		fail_forkserver="cannot compile: $(head -n 1 "$work/log/cc.log" | tr -d '|' | cut -c 1-60)"
		return 0
	fi
	"$work/bin/forkserver" "$sfs_port" "$1/forkserver/w4" >>"$work/log/forkserver.log" 2>&1 &
	launched forkserver $! "$sfs_port" "$work/log/forkserver.log"
}

stop_server() {
	ss_pid=$(getv "pid_$1")
	[ -z "$ss_pid" ] || stop_tree "$ss_pid"
	eval "pid_$1="
}

# --- machine, file systems and data -----------------------------------------------

# df names ext4 as ext4 (stat -f says ext2/ext3), but knows nothing in a
# chroot without /proc/self/mountinfo entries for it.
fs_type() {
	ft_type=$(df -P -T "$1" 2>/dev/null | awk 'NR == 2 { print $2 }')
	case $ft_type in
	"" | -) stat -f -c %T "$1" | sed 's|^ext2/ext3$|ext2/ext3/ext4|' ;;
	*) echo "$ft_type" ;;
	esac
}

# W1-W4 write to a tmpfs of our own (or /dev/shm when mounting is refused).
mkdir "$work/tmpfs"
need_mb=$((big_mb * 3 + 256))
avail_mb=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
[ "$avail_mb" -gt $((need_mb + 512)) ] || die "needs $need_mb MiB of free memory for its tmpfs, $avail_mb available"
if mount -t tmpfs -o "size=${need_mb}m,mode=755" tmpfs "$work/tmpfs" 2>/dev/null; then
	tmpfs_mnt=$work/tmpfs
	fast=$work/tmpfs
elif [ "$(fs_type /dev/shm 2>/dev/null)" = tmpfs ]; then
	rmdir "$work/tmpfs"
	shm_dir=$(mktemp -d /dev/shm/tcpfile-peers.XXXXXX)
	fast=$shm_dir
else
	die "cannot mount a tmpfs and /dev/shm is not one"
fi

# W5 writes to ext4 on a loop device, backed by an image on BENCH_TMPDIR's
# file system; without loop devices, to a directory on that file system.
mkdir "$work/ext4"
backing_fs=$(fs_type "$work")
truncate -s 1G "$work/ext4.img"
if mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$work/ext4.img" >"$work/log/mkfs.log" 2>&1 &&
	mount -o loop "$work/ext4.img" "$work/ext4" 2>>"$work/log/mkfs.log"; then
	ext_mnt=$work/ext4
	disk=$work/ext4
	disk_desc="ext4 on a loop device (image file on $backing_fs)"
else
	rm -f "$work/ext4.img"
	disk=$work/ext4
	disk_desc="$backing_fs, a directory on the machine's own file system (no loop device: $(tail -n 1 "$work/log/mkfs.log" | sed 's/.*: //' | cut -c 1-60))"
fi

model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
machine="machine: $(nproc) x ${model:-unknown CPU}, $(awk '/^MemTotal:/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r); W1-W4 on $(fs_type "$fast"), W5 on $disk_desc"
load_start=$(cut -d ' ' -f 1-3 /proc/loadavg)
t_start=$(date +%s)
echo "$machine" >&2

if [ "$((big_mb % 1024))" = 0 ]; then big_label="$((big_mb / 1024)) GiB"; else big_label="$big_mb MiB"; fi
src=$fast/src
mkdir -p "$src/small" "$src/tiny" "$fast/got"
echo "creating $big_label, $small_n and $sess_n files of 4 KiB of random data..." >&2
head -c $((big_mb * 1048576)) /dev/urandom >"$src/big.bin"
head -c $((small_n * 4096)) /dev/urandom | split -b 4096 -a 4 -d - "$src/small/f"
head -c $((sess_n * 4096)) /dev/urandom | split -b 4096 -a 4 -d - "$src/tiny/s"
find "$src/tiny" -type f | sort >"$work/etc/tiny.list"

# --- workloads ----------------------------------------------------------------------
# For peer P: up_P is where its uploads land, url_P the same place as the
# client names it.  Each workload has go_W (timed), check_W and clean_W.

set_urls() {
	up_rsync=$1/rsync up_vsftpd=$1/vsftpd/d up_nginx=$1/nginx
	up_tcpfiled=$1/tcpfiled up_forkserver=$1/forkserver up_socat=$1/socat
	url_rsync=rsync://127.0.0.1:${port_rsync:-0}/m
	# curl 7.88 sometimes waits a second before it opens an FTP data
	# connection: lftp does not, so vsftpd is driven with lftp.
	lftp_vsftpd="set cmd:fail-exit yes; set net:max-retries 1; open ftp://127.0.0.1:${port_vsftpd:-0}"
	url_nginx=http://127.0.0.1:${port_nginx:-0}
}

# The server behind peer $1 in workload $2.
server_of() {
	case $1:$2 in
	rsync_tuned:*) echo rsync ;;
	tcpfiled:W5f) echo tcpfiled_sync ;;
	*) echo "$1" ;;
	esac
}

up_of() {
	getv "up_$(server_of "$1" x | sed 's/_sync$//')"
}

# Clients: upload the files ($3...) to directory or file $2 of peer $1.
rsync_flags() {
	case $1 in rsync_tuned) printf '%s' "--sockopts=TCP_NODELAY" ;; *) printf '%s' "--" ;; esac
}

# curl -K list uploading every file of directory $1 to URL prefix $2.
curl_list() {
	for cl_f in "$1"/*; do
		printf 'upload-file = "%s"\nurl = "%s/%s"\n' "$cl_f" "$2" "${cl_f##*/}"
	done
}

go_W1() {
	case $1 in
	socat)
		socat -u -b "$socat_block" "OPEN:$src/big.bin" "TCP:127.0.0.1:$socat_port" && wait "$socat_pid" ;;
	rsync | rsync_tuned)
		rsync -a "$(rsync_flags "$1")" "$src/big.bin" "$url_rsync/up.bin" ;;
	vsftpd) lftp -c "$lftp_vsftpd; put \"$src/big.bin\" -o d/up.bin" ;;
	nginx) curl -sS -f -T "$src/big.bin" "$url_nginx/up.bin" ;;
	tcpfiled) "$client_bin" -q -s "127.0.0.1:$port_tcpfiled" put "$src/big.bin" files/up.bin ;;
	esac
}
check_W1() { cmp -s "$src/big.bin" "$(up_of "$1")/up.bin"; }
clean_W1() { rm -f "$(up_of "$1")/up.bin"; }

go_W2() {
	case $1 in
	socat) socat -u -b "$socat_block" "TCP:127.0.0.1:$socat_port" "OPEN:$fast/got/big.bin,creat,trunc" ;;
	rsync | rsync_tuned)
		rsync -a "$(rsync_flags "$1")" "$url_rsync/down.bin" "$fast/got/big.bin" ;;
	vsftpd) lftp -c "$lftp_vsftpd; get d/down.bin -o \"$fast/got/big.bin\"" ;;
	nginx) curl -sS -f -o "$fast/got/big.bin" "$url_nginx/down.bin" ;;
	tcpfiled) "$client_bin" -q -s "127.0.0.1:$port_tcpfiled" get files/down.bin "$fast/got/big.bin" ;;
	esac
}
check_W2() { cmp -s "$src/big.bin" "$fast/got/big.bin"; }
clean_W2() { rm -f "$fast/got/big.bin"; }

# W3, W5 and W5f: every file of $src/small in one session, into w3/.
go_W3() {
	case $1 in
	rsync | rsync_tuned)
		rsync -a $fsync_flag "$(rsync_flags "$1")" "$src/small/" "$url_rsync/w3/" ;;
	vsftpd) lftp -c "$lftp_vsftpd; lcd \"$src/small\"; mput -O d/w3 *" ;;
	nginx) curl -sS -f -K "$work/etc/nginx-$port_nginx.K" >/dev/null ;;
	tcpfiled) "$client_bin" -q -s "127.0.0.1:$w3_port" put "$src"/small/* files/w3/ ;;
	esac
}
check_W3() { diff -r "$src/small" "$(up_of "$1")/w3" >/dev/null; }
clean_W3() { empty_dir "$(up_of "$1")/w3"; }

# W4: a fresh client process for each file of $src/tiny, $par at a time.
go_W4() {
	case $1 in
	forkserver) xargs -P "$par" -I{} "$work/bin/forkclient" "$port_forkserver" {} ;;
	rsync | rsync_tuned)
		xargs -P "$par" -I{} rsync -a "$(rsync_flags "$1")" {} "$url_rsync/w4/" ;;
	vsftpd) xargs -P "$par" -I{} lftp -c "$lftp_vsftpd; put {} -o d/w4/" ;;
	nginx) xargs -P "$par" -I{} curl -sS -f -T {} "$url_nginx/w4/" ;;
	tcpfiled) xargs -P "$par" -I{} "$client_bin" -q -s "127.0.0.1:$port_tcpfiled" put {} files/w4/ ;;
	esac <"$work/etc/tiny.list"
}
check_W4() { diff -r "$src/tiny" "$(up_of "$1")/w4" >/dev/null; }
clean_W4() { empty_dir "$(up_of "$1")/w4"; }

empty_dir() {
	mkdir -p "$1"
	find "$1" -mindepth 1 -delete
	chmod 777 "$1"
}

# Untimed set-up of one run: socat's other end, and the mount mode of W5f.
prep_run() {
	case $1:$2 in
	W1:socat)
		take_port
		socat_port=$port
		socat -u -b "$socat_block" "TCP-LISTEN:$socat_port,reuseaddr,bind=127.0.0.1" \
			"OPEN:$up_socat/up.bin,creat,trunc" 2>>"$work/log/socat.log" &
		socat_pid=$!
		helpers="$helpers $socat_pid"
		wait_listening "$socat_port" "$socat_pid" ;;
	W2:socat)
		take_port
		socat_port=$port
		socat -u -b "$socat_block" "OPEN:$src/big.bin" "TCP-LISTEN:$socat_port,reuseaddr,bind=127.0.0.1" \
			2>>"$work/log/socat.log" &
		socat_pid=$!
		helpers="$helpers $socat_pid"
		wait_listening "$socat_port" "$socat_pid" ;;
	esac
}

# After the timed part: socat's other end is gone, the mount is async again.
post_run() {
	case $2 in
	socat)
		if alive "$socat_pid"; then kill "$socat_pid" 2>/dev/null || true; fi
		wait "$socat_pid" 2>/dev/null || true
		forget "$socat_pid" ;;
	esac
	if [ -n "$sync_mounted" ]; then
		mount -o remount,async "$ext_mnt"
		sync_mounted=""
	fi
}

# Peers with no per-file durability of their own get it from the mount.
sync_mounted=""
durable_mount() {
	case $1:$2 in
	W5f:vsftpd | W5f:nginx)
		mount -o remount,sync "$ext_mnt"
		sync_mounted=1 ;;
	esac
}

now() { date +%s.%N; }

record() {
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$results"
}

# one_run W PEER RUN AMOUNT: one timed, verified run; RUN "warm" is not kept.
one_run() {
	or_srv=$(server_of "$2" "$1")
	or_fail=$(getv "fail_$or_srv")
	if [ -n "$or_fail" ]; then
		[ "$3" != warm ] || record "$1" "$2" start "failed to start: $or_fail"
		return 0
	fi
	or_log=$work/log/$1-$2.log
	case $1 in W5 | W5f) or_w=W3 ;; *) or_w=$1 ;; esac
	w3_port=$(getv "port_$or_srv")
	or_ok=0
	"clean_$or_w" "$2"
	if prep_run "$1" "$2" >>"$or_log" 2>&1; then
		sync
		durable_mount "$1" "$2"
		or_sampler=""
		if [ "$1:$3" = W1:warm ] && [ "$2" != socat ]; then
			rm -f "$work/mem-$2.peak.stop"
			sample_peak "$(getv "pid_$or_srv")" "$work/mem-$2.peak" &
			or_sampler=$!
			helpers="$helpers $or_sampler"
		fi
		or_t0=$(now)
		if "go_$or_w" "$2" >>"$or_log" 2>&1; then or_ok=1; fi
		or_t1=$(now)
		if [ -n "$or_sampler" ]; then
			touch "$work/mem-$2.peak.stop"
			wait "$or_sampler" || true
			forget "$or_sampler"
		fi
		post_run "$1" "$2"
	fi
	if [ "$or_ok" = 1 ] && "check_$or_w" "$2"; then
		or_rate=$(awk -v n="$4" -v a="$or_t0" -v b="$or_t1" 'BEGIN { printf "%.1f", n / (b - a) }')
	else
		or_rate=FAILED
		echo "$1 $2 run $3: FAILED (log: $(tail -n 2 "$or_log" | tr '\n' ' '))" >&2
	fi
	"clean_$or_w" "$2"
	record "$1" "$2" "$3" "$or_rate"
	echo "$1 run $3: $2 $or_rate" >&2
}

# workload W AMOUNT PEER...: a warm-up, then $runs runs, the peers interleaved.
workload() {
	wl_w=$1 wl_amount=$2
	shift 2
	for wl_run in warm $(seq 1 "$runs"); do
		for wl_peer in "$@"; do
			one_run "$wl_w" "$wl_peer" "$wl_run" "$wl_amount"
		done
	done
}

# idle_mem NAME: the server's idle memory, into $work/mem-NAME.idle.
idle_mem() {
	im_pid=$(getv "pid_$1")
	[ -z "$im_pid" ] || mem_of "$im_pid" >"$work/mem-$1.idle"
}

prepare_phase() {
	make_roots "$1"
	set_urls "$1"
	ln "$src/big.bin" "$up_rsync/down.bin"
	ln "$src/big.bin" "$up_vsftpd/down.bin"
	ln "$src/big.bin" "$up_nginx/down.bin" 2>/dev/null || cp "$src/big.bin" "$up_nginx/down.bin"
	ln "$src/big.bin" "$up_tcpfiled/down.bin" 2>/dev/null || cp "$src/big.bin" "$up_tcpfiled/down.bin"
}

start_peers() {
	start_rsync "$1"
	start_vsftpd "$1"
	start_nginx "$1"
	# Two tcpfileds share the pages of their binary: measure 2 x workers
	# idle while the other is not running.
	if [ "$1" = "$fast/roots" ]; then
		start_tcpfiled tcpfiled8 "$1" $((workers * 2)) no
		idle_mem tcpfiled8
		stop_server tcpfiled8
	fi
	start_tcpfiled tcpfiled "$1" "$workers" no
	set_urls "$1"
	[ -n "$fail_nginx" ] || curl_list "$src/small" "$url_nginx/w3" >"$work/etc/nginx-$port_nginx.K"
}

stop_peers() {
	for sp_name in rsync vsftpd nginx tcpfiled tcpfiled_sync forkserver; do
		stop_server "$sp_name"
	done
}

fail_socat=""
command -v socat >/dev/null 2>&1 || fail_socat="socat is not installed"
fsync_flag=""
mb=$(awk -v m="$big_mb" 'BEGIN { printf "%.3f", m * 1048576 / 1e6 }')

# Phase 1: tmpfs.
roots=$fast/roots
prepare_phase "$roots"
start_peers "$roots"
start_forkserver "$roots"
for n in rsync vsftpd nginx tcpfiled forkserver; do idle_mem "$n"; done

workload W1 "$mb" socat rsync rsync_tuned vsftpd nginx tcpfiled
workload W2 "$mb" socat rsync rsync_tuned vsftpd nginx tcpfiled
workload W3 "$small_n" rsync rsync_tuned vsftpd nginx tcpfiled
workload W4 "$sess_n" forkserver rsync rsync_tuned vsftpd nginx tcpfiled
stop_peers
rm -rf "$roots"

# Phase 2: the disk.
roots=$disk/roots
mkdir -p "$roots"
make_roots "$roots"
start_peers "$roots"
workload W5 "$small_n" rsync rsync_tuned vsftpd nginx tcpfiled
stop_server tcpfiled
start_tcpfiled tcpfiled_sync "$roots" "$workers" yes
fsync_flag=--fsync
w5f_peers="rsync rsync_tuned tcpfiled"
if [ -n "$ext_mnt" ]; then
	w5f_peers="rsync rsync_tuned vsftpd nginx tcpfiled"
else
	record W5f vsftpd start "no per-file durability"
	record W5f nginx start "no per-file durability"
fi
# shellcheck disable=SC2086
workload W5f "$small_n" $w5f_peers
stop_peers

# --- the tables -----------------------------------------------------------------------

elapsed=$(($(date +%s) - t_start))
load_end=$(cut -d ' ' -f 1-3 /proc/loadavg)
for n in rsync vsftpd nginx tcpfiled forkserver tcpfiled8; do
	printf '%s\tidle\t%s\n' "$n" "$(cat "$work/mem-$n.idle" 2>/dev/null || echo -)"
	printf '%s\tload\t%s\n' "$n" "$(cat "$work/mem-$n.peak" 2>/dev/null || echo -)"
done >"$work/memory"

echo
echo "$machine"
echo "mode: ${1:-full}; a warm-up, then the median of $runs run(s); load average $load_start at the start, $load_end at the end; $elapsed s in all"
echo
awk -F '\t' -v big="$big_label" -v small="$small_n" -v sess="$sess_n" -v par="$par" \
	-v workers="$workers" -v extdesc="$([ -n "$ext_mnt" ] && echo loop || echo dir)" '
function fmt(v,    s, r) {
	if (v == "" || v !~ /^[0-9.]+$/)
		return v == "" ? "-" : v
	s = sprintf("%.0f", v)
	r = ""
	while (length(s) > 3) {
		r = "," substr(s, length(s) - 2) r
		s = substr(s, 1, length(s) - 3)
	}
	return s r
}
function median(w, p,    n, i, j, t, v, k) {
	if ((w, p, "start") in val)
		return val[w, p, "start"]
	n = 0
	for (k = 1; k <= maxrun; k++) {
		if (!((w, p, k) in val))
			continue
		if (val[w, p, k] == "FAILED")
			return "FAILED"
		v[++n] = val[w, p, k] + 0
	}
	if ((w, p, "warm") in val && val[w, p, "warm"] == "FAILED")
		return "FAILED"
	if (n == 0)
		return ""
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
			t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
		}
	return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
{
	val[$1, $2, $3] = $4
	if ($3 ~ /^[0-9]+$/ && $3 + 0 > maxrun)
		maxrun = $3 + 0
}
END {
	split("W1 W2 W3 W4 W5 W5f", ws, " ")
	label["W1"] = "W1 upload " big " to tmpfs, MB/s"
	label["W2"] = "W2 download " big " from tmpfs, MB/s"
	label["W3"] = "W3 " fmt(small) " x 4 KiB in one session to tmpfs, files/s"
	label["W4"] = "W4 " sess " sessions, fresh client each, " par " parallel, sessions/s"
	label["W5"] = "W5 = W3 onto " (extdesc == "loop" ? "ext4" : "the machine disk (no loop device)") ", files/s"
	label["W5f"] = "W5f = W5, every file durable before its answer, files/s"
	split("rsync rsync_tuned vsftpd nginx", peers, " ")
	print "| workload | rsync | rsync tuned | vsftpd | nginx | baseline | tcpfiled (" workers " workers) | tcpfiled / best peer | tcpfiled / baseline |"
	print "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for (i = 1; i <= 6; i++) {
		w = ws[i]
		line = "| " label[w]
		best = 0; bestname = ""
		for (j = 1; j <= 4; j++) {
			m = median(w, peers[j])
			line = line " | " fmt(m)
			if (m ~ /^[0-9.]+$/ && m + 0 > best) {
				best = m + 0
				bestname = peers[j]
			}
		}
		base = ""; basename = ""
		if (w == "W1" || w == "W2") { basename = "socat"; base = median(w, "socat") }
		if (w == "W4") { basename = "fork server"; base = median(w, "forkserver") }
		line = line " | " (basename == "" ? "-" : basename " " fmt(base))
		t = median(w, "tcpfiled")
		line = line " | " fmt(t)
		if (t ~ /^[0-9.]+$/ && best > 0) {
			sub(/_/, " ", bestname)
			line = line " | " sprintf("%.2f", t / best) " (" bestname ")"
		} else
			line = line " | -"
		if (t ~ /^[0-9.]+$/ && base ~ /^[0-9.]+$/ && base > 0)
			line = line " | " sprintf("%.2f", t / base)
		else
			line = line " | -"
		print line " |"
	}
}' "$results"
echo
echo "MB = 10^6 bytes. rsync: \`rsync -a\` to its daemon; tuned: plus \`--sockopts=TCP_NODELAY\`; W5f: plus \`--fsync\`."
echo "vsftpd: lftp (\`put\`, \`get\`, W3 one session of \`mput\`, a data connection per file); nginx: WebDAV PUT and GET with curl, keep-alive (W3 one \`curl -K\` list)."
if [ -n "$ext_mnt" ]; then
	echo "W5f: vsftpd and nginx have no per-file durability of their own: they run with the ext4 mounted \`-o sync\`; tcpfiled has \`fsync = yes\`."
else
	echo "W5f: vsftpd and nginx offer no per-file durability (and without a loop device the mount cannot be made \`sync\`); tcpfiled has \`fsync = yes\`."
fi
echo "Baselines: socat with $((socat_block / 1024)) KiB blocks (tcpfile's body chunk) for raw bytes over TCP into a file; tests/bench/forkserver.c, fork per connection, with tests/bench/forkclient.c."
echo
awk -F '\t' -v workers="$workers" '
function mib(k) { return sprintf("%.1f MiB", k / 1024) }
{ split($3, f, " "); pss[$1, $2] = f[1]; priv[$1, $2] = f[2]; procs[$1, $2] = f[3]; have[$1, $2] = ($3 != "-") }
function row(name, label) {
	if (!have[name, "idle"]) {
		printf "| %s | not running | - | - | - |\n", label
		return
	}
	printf "| %s | %d | %s | %s | %s |\n", label, procs[name, "idle"], mib(pss[name, "idle"]), mib(priv[name, "idle"]),
		have[name, "load"] ? mib(pss[name, "load"]) " (" procs[name, "load"] " processes)" : "-"
}
END {
	print "| server | processes idle | PSS idle | private idle | PSS peak during W1 warm-up |"
	print "|---|---:|---:|---:|---:|"
	row("rsync", "rsync daemon")
	row("vsftpd", "vsftpd")
	row("nginx", "nginx (master + workers)")
	row("forkserver", "fork server")
	row("tcpfiled", "tcpfiled (master + " workers " workers)")
	row("tcpfiled8", "tcpfiled (master + " workers * 2 " workers)")
	if (have["tcpfiled", "idle"] && have["tcpfiled8", "idle"])
		printf "\nEach extra tcpfiled worker adds %.0f KiB PSS and %.0f KiB private memory (idle, %d against %d workers).\n",
			(pss["tcpfiled8", "idle"] - pss["tcpfiled", "idle"]) / workers,
			(priv["tcpfiled8", "idle"] - priv["tcpfiled", "idle"]) / workers, workers * 2, workers
}' "$work/memory"

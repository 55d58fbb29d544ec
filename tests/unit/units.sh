#!/bin/sh
# units.sh: checks the generated systemd units with systemd-analyze (verify and security).
#
# Usage: units.sh SERVICE SOCKET [DAEMON]
#   SERVICE, SOCKET  the generated tcpfiled.service and tcpfiled.socket
#   DAEMON           the tcpfiled binary to put in place of the installed path,
#                    because `verify` insists that every Exec*= command exists
#                    and the build is not installed while the tests run.
# Exit status: 0 pass, 1 fail, 77 skip (no systemd-analyze, or one too old
# for --offline security reviews), 99 usage error.

set -u

# Overall exposure (in tenths, as --threshold wants it) that the service
# reaches on systemd 252.  Any weakened setting that moves the score fails.
EXPOSURE_MAX=12

# The only security checks the service is allowed to fail, and why:
#   PrivateNetwork=, IPAddressDeny=, RestrictAddressFamilies=~AF_(INET|INET6)
#       it is a network server; clients may come from anywhere the socket
#       listens.
#   RestrictAddressFamilies=~AF_UNIX
#       sd_notify() and the journal are AF_UNIX sockets.
#   RootDirectory=/RootImage=
#       the daemon runs from the host's /usr; the sandbox settings already
#       make everything but its state directory read-only.
#   DeviceAllow=
#       ProtectClock= adds "char-rtc r" to the device ACL by itself;
#       PrivateDevices= leaves no /dev/rtc to open anyway.
#   RestrictSUIDSGID=
#       systemd enforces it by making openat2(2) return ENOSYS, and the daemon
#       confines every path with openat2 (uploads never keep setuid bits).
#   UMask=
#       0027 keeps uploads group-readable, for shares given to a static
#       tcpfiled group (see tcpfiled(8)).
ALLOWED_EXPOSED="RootDirectory=/RootImage=: Service runs within the host's root directory
RestrictAddressFamilies=~AF_UNIX: Service may allocate local sockets
RestrictAddressFamilies=~AF_(INET|INET6): Service may allocate Internet sockets
PrivateNetwork=: Service has access to the host's network
DeviceAllow=: Service has a device ACL with some special devices: char-rtc:r
IPAddressDeny=: Service does not define an IP address allow list
UMask=: Files created by service are group-readable by default
RestrictSUIDSGID=: Service may create SUID/SGID files"

fail() {
	echo "units.sh: FAIL: $*" >&2
	exit 1
}

skip() {
	echo "units.sh: SKIP: $*" >&2
	exit 77
}

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
	echo "usage: units.sh SERVICE SOCKET [DAEMON]" >&2
	exit 99
fi
service_in=$1
socket_in=$2
daemon=${3-}

command -v systemd-analyze >/dev/null 2>&1 || skip "systemd-analyze not found"
systemd-analyze --help 2>/dev/null | grep -q -- '--offline' ||
	skip "systemd-analyze has no --offline (needs systemd >= 250)"

[ -r "$service_in" ] || fail "cannot read $service_in"
[ -r "$socket_in" ] || fail "cannot read $socket_in"

# ASCII markers ('+'/'-' instead of check marks), no colours, no pager.
LC_ALL=C
SYSTEMD_COLORS=0
SYSTEMD_PAGER=
export LC_ALL SYSTEMD_COLORS SYSTEMD_PAGER

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tcpfiled-units.XXXXXX") || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
# Readable by everybody: the test may run unprivileged in another user's tree.
chmod 0755 "$tmp"

# The installed daemon path is the first word of ExecStart=.
installed=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$service_in")
[ -n "$installed" ] || fail "$service_in has no ExecStart="
case $installed in
/*) ;;
*) fail "ExecStart= is not an absolute path: $installed" ;;
esac
if [ -n "$daemon" ]; then
	case $daemon in
	/*) ;;
	*) daemon=$(pwd)/$daemon ;;
	esac
	[ -x "$daemon" ] || fail "$daemon is not executable"
	# '|' is the sed delimiter: refuse paths that contain it rather than
	# produce a broken unit.
	case "$installed$daemon" in
	*'|'*) fail "paths with '|' are not supported" ;;
	esac
	sed "s|$installed|$daemon|g" "$service_in" >"$tmp/tcpfiled.service" ||
		fail "cannot write $tmp/tcpfiled.service"
else
	cp "$service_in" "$tmp/tcpfiled.service" || fail "cp $service_in"
fi
cp "$socket_in" "$tmp/tcpfiled.socket" || fail "cp $socket_in"
# The TLS socket unit is generated beside the plain one.
tls_socket_in=$(dirname "$socket_in")/tcpfiled-tls.socket
[ -r "$tls_socket_in" ] || fail "cannot read $tls_socket_in"
cp "$tls_socket_in" "$tmp/tcpfiled-tls.socket" || fail "cp $tls_socket_in"
chmod 0644 "$tmp/tcpfiled.service" "$tmp/tcpfiled.socket" "$tmp/tcpfiled-tls.socket"

# --- verify -----------------------------------------------------------------
# --man=no: the man pages are built, not installed, while tests run (scdoc
#   itself checks them at build time).
# --recursive-errors=no: units of the host that ours pull in (network.target,
#   sockets.target, ...) are not ours to judge.
# verify exits 0 on unknown keys and unparsable values: it only logs them, as
# PID 1 would.  So every line it prints about our units is a failure; lines
# about other units (the host's) are shown but ignored.
(cd "$tmp" && systemd-analyze verify --man=no --recursive-errors=no \
	./tcpfiled.service ./tcpfiled.socket ./tcpfiled-tls.socket) >"$tmp/verify.log" 2>&1
verify_rc=$?
if [ -s "$tmp/verify.log" ]; then
	echo "systemd-analyze verify said:"
	sed 's/^/  /' "$tmp/verify.log"
fi
[ "$verify_rc" -eq 0 ] || fail "systemd-analyze verify exited $verify_rc"
if grep -q -F -e "$tmp" -e 'tcpfiled.service' -e 'tcpfiled.socket' -e 'tcpfiled-tls.socket' \
	"$tmp/verify.log"; then
	fail "systemd-analyze verify complained about the units"
fi
# verify (252) checks only the first command of each Exec*= list; the
# second ExecReload= (/bin/kill) would slip through.  Check every one, with
# the special prefixes (@ - : + !) stripped.
sed -n 's/^Exec[A-Za-z]*=[-@:+!]*\([^ ]*\).*/\1/p' "$tmp/tcpfiled.service" \
	>"$tmp/commands"
[ -s "$tmp/commands" ] || fail "no Exec*= command found"
while read -r cmd; do
	[ -x "$cmd" ] || fail "Exec*= command $cmd is not executable"
done <"$tmp/commands"
echo "verify: ok"

# --- security -----------------------------------------------------------------
(cd "$tmp" && systemd-analyze security --offline=yes --no-pager \
	--threshold="$EXPOSURE_MAX" ./tcpfiled.service) >"$tmp/security.log" 2>&1
security_rc=$?
exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' \
	"$tmp/security.log")
[ -n "$exposure" ] || {
	cat "$tmp/security.log" >&2
	fail "no exposure figure in systemd-analyze security output"
}
echo "security: overall exposure $exposure (threshold $EXPOSURE_MAX/10)"

# Lines of failed checks start with '-' in the C locale: "- NAME DESC N.N".
# Compare name and description, so that a weaker value of an allowed setting
# (UMask=0022: "world-readable") fails too.
awk '$1 == "-" && NF >= 4 {
	line = $2 ":"
	for (i = 3; i < NF; i++)
		line = line " " $i
	print line
}' "$tmp/security.log" >"$tmp/exposed"
printf '%s\n' "$ALLOWED_EXPOSED" >"$tmp/allowed"
unexpected=$(grep -F -x -v -f "$tmp/allowed" "$tmp/exposed")
if [ -n "$unexpected" ]; then
	printf 'unexpected:\n%s\n' "$unexpected" | sed 's/^/  /' >&2
	fail "security checks that used to pass now fail (see above)"
fi
[ "$security_rc" -eq 0 ] ||
	fail "exposure $exposure is above $EXPOSURE_MAX/10 (rc $security_rc)"
[ -s "$tmp/exposed" ] ||
	fail "no failed check parsed: has the output format changed?"
echo "security: ok"
exit 0

#!/bin/sh
# install.sh: a staged install (meson install --destdir) finds its crypto
# module: tcpfile and tcpfiled look for it relative to their own directory
# (bindir/sbindir -> libdir/tcpfile) before the absolute install path,
# which does not exist under DESTDIR.
#
# Usage: install.sh BUILD_DIR
# Exit status: 0 pass, 1 fail, 99 usage error.

set -u
[ $# -eq 1 ] || { echo "usage: install.sh BUILD_DIR" >&2; exit 99; }
build=$1
dest=$(mktemp -d "${TMPDIR:-/tmp}/tcpfile-install.XXXXXX") || exit 1
trap 'rm -rf "$dest"' EXIT

fail() {
	echo "install.sh: $*" >&2
	exit 1
}

meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >"$dest.log" 2>&1 ||
	{ cat "$dest.log" >&2; rm -f "$dest.log"; fail "meson install --destdir failed"; }
rm -f "$dest.log"

module=$(find "$dest" -name tcpfile-crypto.so | head -n 1)
client=$(find "$dest" -type f -name tcpfile | head -n 1)
daemon=$(find "$dest" -type f -name tcpfiled | head -n 1)
[ -n "$module" ] || fail "no tcpfile-crypto.so installed"
[ -n "$client" ] && [ -n "$daemon" ] || fail "tcpfile or tcpfiled not installed"
case $module in
*/tcpfile/tcpfile-crypto.so) ;;
*) fail "module installed at $module, not in LIBDIR/tcpfile/" ;;
esac
[ ! -e "$(dirname "$client")/tcpfile-crypto.so" ] || fail "module beside the client"

# A TLS client needs the module before it connects: the error must be
# about the connection (nothing listens on port 9), not the module.
out=$("$client" -s tcps://127.0.0.1:9 ls files 2>&1) && fail "tcpfile against a closed port succeeded"
case $out in
*"crypto module"*) fail "the staged tcpfile did not find its module: $out" ;;
esac
echo "$out" | grep -qi "refused\|connect" || fail "unexpected client error: $out"

# tcpfiled passwd computes SCRAM secrets in the module.
users=$dest/users
printf 'secret-pw\n' | "$daemon" passwd -f "$users" -i 4096 alice >"$dest/pw.log" 2>&1 ||
	{ cat "$dest/pw.log" >&2; fail "the staged tcpfiled passwd failed"; }
grep -q '^alice:' "$users" || fail "no alice in $users"
echo "staged install: module at ${module#"$dest"}, found by both programs"

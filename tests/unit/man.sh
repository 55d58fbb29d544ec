#!/bin/sh
# man.sh: renders every man page source with scdoc and groff and fails on any warning or non-ASCII byte.
#
# Usage: man.sh PAGE.scd...
# Exit status: 0 pass, 1 fail, 77 skip (no scdoc or no groff), 99 usage error.

set -u

if [ $# -eq 0 ]; then
	echo "usage: man.sh PAGE.scd..." >&2
	exit 99
fi
command -v scdoc >/dev/null 2>&1 || { echo "man.sh: SKIP: scdoc not found" >&2; exit 77; }
command -v groff >/dev/null 2>&1 || { echo "man.sh: SKIP: groff not found" >&2; exit 77; }

LC_ALL=C
export LC_ALL

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tcpfiled-man.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

status=0
for page in "$@"; do
	name=$(basename "$page")
	before=$status
	# groff accepts some Latin-1 bytes silently, but the pages are ASCII
	# (and scdoc output is read by man as whatever the locale says).
	if grep -n '[^ -~	]' "$page" >"$tmp/nonascii"; then
		echo "$name: bytes outside printable ASCII:"
		sed 's/^/  /' "$tmp/nonascii"
		status=1
	fi
	if ! scdoc <"$page" >"$tmp/page.man" 2>"$tmp/scdoc.err"; then
		echo "$name: scdoc failed:"
		sed 's/^/  /' "$tmp/scdoc.err"
		status=1
		continue
	fi
	# -ww: every warning; -z: no output, only the diagnostics.
	groff -man -ww -z "$tmp/page.man" >"$tmp/groff.out" 2>&1
	rc=$?
	if [ "$rc" -ne 0 ] || [ -s "$tmp/groff.out" ]; then
		echo "$name: groff -man -ww (exit $rc) said:"
		sed 's/^/  /' "$tmp/groff.out"
		status=1
		continue
	fi
	[ "$status" -eq "$before" ] && echo "$name: ok"
done
exit $status

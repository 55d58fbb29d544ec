#!/usr/bin/env python3
"""Totals every test that `meson test` ran in the given build directories.

Criterion executables print a "Synthesis:" line; those count each Criterion
test.  Any other meson test counts as one; a meson test that exits 77 counts
as skipped.  Prints "N passed, N failed" and
exits non-zero when something failed or nothing ran."""
import json
import re
import sys

SYNTHESIS = re.compile(
    r"Synthesis: Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def tally(builddir):
    passed = failed = skipped = 0
    try:
        with open(f"{builddir}/meson-logs/testlog.json", encoding="utf-8") as log:
            records = [json.loads(line) for line in log if line.strip()]
    except FileNotFoundError:
        print(f"{builddir}: no test log (build failed?)", file=sys.stderr)
        return 0, 1, 0
    for rec in records:
        out = ANSI.sub("", (rec.get("stdout") or "") + (rec.get("stderr") or ""))
        found = SYNTHESIS.findall(out)
        ok = rec.get("result") in ("OK", "EXPECTEDFAIL")
        if rec.get("result") == "SKIP":
            skipped += 1
        elif found:
            _, passing, failing, crashing = map(int, found[-1])
            passed += passing
            failed += failing + crashing
            if not ok and failing + crashing == 0:
                failed += 1  # the executable failed outside any test
        elif ok:
            passed += 1
        else:
            failed += 1
    return passed, failed, skipped


def main():
    passed = failed = skipped = 0
    for d in sys.argv[1:]:
        p, f, s = tally(d)
        passed += p
        failed += f
        skipped += s
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""No C function in connector/ or mappings/ is longer than LIMIT lines (default 120): long
functions are where reviews stop reading. Prints each offender as FILE:LINE: N lines: NAME and
exits 1 when there is any.
    check_function_length.py ROOT [LIMIT]"""
import glob
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "."
limit = int(sys.argv[2]) if len(sys.argv) > 2 else 120
SIG = re.compile(r"^[a-zA-Z_][\w \*]*\(")
bad = 0
for d in ("connector", "mappings"):
    for path in sorted(glob.glob(os.path.join(root, d, "*.c"))):
        lines = open(path, errors="replace").read().split("\n")
        start = sig = None
        for i, line in enumerate(lines):
            if start is None:
                if SIG.match(line) and not re.match(r"^(typedef|struct \w+ \{|enum|union)", line):
                    sig = (i, line)
                if sig and line.rstrip().endswith(") {") and i - sig[0] < 6:
                    start, name, sig = sig[0], sig[1], None
                elif line.startswith("}") or line.endswith(";"):
                    if sig and i - sig[0] >= 6:
                        sig = None
            elif line == "}":
                if i - start > limit:
                    print("%s:%d: %d lines: %s" % (os.path.relpath(path, root), start + 1, i - start, name[:90]))
                    bad += 1
                start = None
print("%d functions over %d lines" % (bad, limit))
sys.exit(1 if bad else 0)

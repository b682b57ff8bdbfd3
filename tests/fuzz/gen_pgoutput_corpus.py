#!/usr/bin/python3
"""Writes the hand-built seed corpus of fuzz_pgoutput (tests/fuzz/corpus/fuzz_pgoutput/):
valid pgoutput (protocol v1) message sequences for the target's tables (fuzz_pgoutput.c),
each message a 2-byte big-endian length and its body.  Run from anywhere:
    /usr/bin/python3 tests/fuzz/gen_pgoutput_corpus.py"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_pgoutput")

ALL = ["id", "n", "b", "d", "dec", "t", "t2", "by", "u", "o", "ts", "dt", "j", "rest"]
ROW = ["k1", "42", "t", "1.5", "12.340", "deep", "x", "\\x01ff", "0e4d1c9a-5b1e-4f0e-9d3b-1b2c3d4e5f60",
       "65a1b2c3d4e5f60718293a4b", "2024-01-02 03:04:05.123456+00", "2024-01-02", '{"a": [1, 2]}',
       '{"extra": true}']


def s(x):
    return x.encode() + b"\0"


def begin(xid=7, lsn=0x16B374D848):
    return b"B" + struct.pack(">QqI", lsn, 725000000000000, xid)


def commit(lsn=0x16B374D848):
    return b"C" + b"\0" + struct.pack(">QQq", lsn, lsn + 0x30, 725000000000000)


def relation(relid, nsp, rel, cols, ident=b"d"):
    m = b"R" + struct.pack(">I", relid) + s(nsp) + s(rel) + ident + struct.pack(">h", len(cols))
    for i, c in enumerate(cols):
        m += bytes([1 if i == 0 else 0]) + s(c) + struct.pack(">Ii", 25, -1)
    return m


def tuple_(vals):
    m = struct.pack(">h", len(vals))
    for v in vals:
        if v is None:
            m += b"n"
        elif v == "\x00u":
            m += b"u"
        else:
            b = v.encode()
            m += b"t" + struct.pack(">I", len(b)) + b
    return m


def insert(relid, vals):
    return b"I" + struct.pack(">I", relid) + b"N" + tuple_(vals)


def update(relid, new, old=None, kind=b"O"):
    m = b"U" + struct.pack(">I", relid)
    if old is not None:
        m += kind + tuple_(old)
    return m + b"N" + tuple_(new)


def delete(relid, old, kind=b"K"):
    return b"D" + struct.pack(">I", relid) + kind + tuple_(old)


def truncate(relids, opts=0):
    return b"T" + struct.pack(">IB", len(relids), opts) + b"".join(struct.pack(">I", r) for r in relids)


def seq(*msgs):
    return b"".join(struct.pack(">H", len(m)) + m for m in msgs)


def keys_only(vals):
    return [v if c in ("id", "n") else None for c, v in zip(ALL, vals)]


R_ALL = relation(16384, "public", "items", ALL)
R_TEXT = relation(16390, "public", "notes", ["id", "rest"])
R_MARKS = relation(16400, "arraysync", "marks", ["conn", "origin"])
ROW2 = list(ROW)
ROW2[5] = "changed"
ROW_T = list(ROW2)
ROW_T[12] = "\x00u"  # j unchanged TOAST

SEEDS = {
    "relation-insert": seq(begin(), R_ALL, insert(16384, ROW), commit()),
    "relation-insert-nulls": seq(begin(), R_ALL, insert(16384, ROW[:2] + [None] * 12), commit()),
    "update-default-identity": seq(begin(), R_ALL, update(16384, ROW2), commit()),
    "update-old-full-toast": seq(begin(), R_ALL, update(16384, ROW_T, ROW, b"O"), commit()),
    "update-key-moved": seq(begin(), R_ALL, update(16384, ["k2"] + ROW[1:], keys_only(ROW), b"K"),
                            commit()),
    "delete-key": seq(begin(), R_ALL, delete(16384, keys_only(ROW)), commit()),
    "delete-full": seq(begin(), R_ALL, delete(16384, ROW, b"O"), commit()),
    "truncate-propagate": seq(begin(), R_ALL, truncate([16384], 1), commit()),
    "truncate-stop": seq(begin(), R_TEXT, truncate([16390]), commit()),
    "text-insert-delete": seq(begin(), R_TEXT, insert(16390, ["a", '{"x": 1}']),
                              delete(16390, ["a", None]), commit()),
    "begin-commit-type-origin-message": seq(begin(), b"Y" + struct.pack(">I", 25) + s("pg_catalog") + s("text"),
                                            b"O" + struct.pack(">Q", 1) + s("o1"),
                                            b"M" + b"\1" + struct.pack(">Q", 5) + s("p") + struct.pack(">I", 1) + b"x",
                                            commit()),
    "marks-echo-and-local-only": seq(begin(), R_MARKS, R_ALL, insert(16400, ["c1", "peer"]),
                                     insert(16384, ROW), insert(16400, ["c1", "other"]),
                                     update(16384, ROW2), insert(16400, ["c1", "-"]),
                                     delete(16384, keys_only(ROW)), commit()),
    "unmapped-table": seq(begin(), relation(17000, "public", "other", ["id", "v"]),
                          insert(17000, ["1", "v"]), commit()),
    "bad-value-dead-letter": seq(begin(), R_ALL, insert(16384, ROW[:1] + ["not a number"] + ROW[2:]),
                                 commit()),
    "two-transactions": seq(begin(1), R_ALL, insert(16384, ROW), commit(), begin(2, 0x16B3750000),
                            update(16384, ROW2, ROW, b"O"), commit(0x16B3750000)),
}

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)

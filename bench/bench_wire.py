#!/usr/bin/python3
"""Bytes on the MongoDB wire per delta through `arraysync run`, with and without compression.

  bench_wire.py --bin BUILD/arraysync [--docs 5000] [--compressor zstd] [--work DIR]

Starts its own MongoDB test server (tests/scripts/mongo_server.sh, a free 127.0.0.1 port) and,
once with the node URI as is and once with `compressors=zstd` added to it, runs `arraysync run`
with that MongoDB node and a SQLite node (the customers mapping of bench_e2e.py, `direction:
to-sql`), then streams N realistic customer documents (~560 bytes of BSON) into the collection
as inserts in batches of 10 every 10 ms, followed by N/2 `$set` updates of two fields, and waits
until the last of them is in SQLite. The server's counters (serverStatus.network: what crossed
the wire, and what the messages held before compression) are read before and after; the
writer talks to the server over its own raw socket without compression and counts its bytes,
which are subtracted together with the two counter reads, so what remains is the connector's
traffic (change stream getMores, its session and monitoring commands) over the whole stream.

Prints one line, ratio = compressed ÷ plain from the same run:
  wire.bytes_per_delta plain=... zstd=... ratio=... deltas=... (...)
"""
import argparse
import os
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time

import bson

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "scripts"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import astest  # noqa: E402
from mongo_uri_option import with_option  # noqa: E402
from bench_e2e import CUSTOMERS_MAPPING, customer  # noqa: E402

SCRIPTS = os.path.join(ROOT, "tests", "scripts")
OP_MSG = 2013


class Wire:
    """One raw OP_MSG connection to 127.0.0.1:port that counts the bytes it sends and receives."""

    def __init__(self, port):
        import socket
        self.sock = socket.create_connection(("127.0.0.1", port), 10)
        self.sent = self.recvd = 0
        self.req = 0

    def command(self, doc):
        self.req += 1
        payload = struct.pack("<I", 0) + b"\x00" + bson.encode(doc)
        msg = struct.pack("<iiii", 16 + len(payload), self.req, 0, OP_MSG) + payload
        self.sock.sendall(msg)
        head = self.recv_exact(16)
        length, _, _, opcode = struct.unpack("<iiii", head)
        body = self.recv_exact(length - 16)
        self.sent += len(msg)
        self.recvd += length
        if opcode != OP_MSG:
            raise RuntimeError("unexpected reply opcode %d" % opcode)
        reply = bson.decode(body[5:])
        if reply.get("ok") != 1 or reply.get("writeErrors"):
            raise RuntimeError("%r failed: %r" % (next(iter(doc)), reply))
        return reply

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed by the server")
            buf += chunk
        return buf

    def close(self):
        self.sock.close()


def net_sample(port):
    """(network counters, bytes this sample put on the wire: its request and its reply)."""
    w = Wire(port)
    try:
        net = w.command({"serverStatus": 1, "$db": "admin"})["network"]
    finally:
        w.close()
    return net, w.sent, w.recvd


def wait_for(cond, what, proc, timeout=300):
    t0 = time.time()
    while not cond():
        if proc.poll() is not None:
            raise RuntimeError("arraysync run exited (%s) while waiting for %s" % (proc.returncode, what))
        if time.time() - t0 > timeout:
            raise RuntimeError("timed out waiting for %s" % what)
        time.sleep(0.05)


def sqlite_value(path, sql, args=()):
    try:
        con = sqlite3.connect(path, timeout=5)
        try:
            row = con.execute(sql, args).fetchone()
        finally:
            con.close()
        return row[0] if row else None
    except sqlite3.Error:
        return None


def one_run(a, port, label, uri, docs):
    """Streams docs through arraysync run; returns (connector wire bytes, logical bytes, deltas)."""
    work = os.path.join(a.work, label)
    os.makedirs(work, exist_ok=True)
    db = "bench_wire_%s" % label
    lite = os.path.join(work, "lite.db")
    nodes = ("  mongo:\n    kind: mongodb\n    uri: \"%s\"\n    database: %s\n"
             "  lite:\n    kind: sqlite\n    path: \"%s\"\n" % (uri, db, lite))
    cfg = astest.write_config(work, [nodes], [("customers", CUSTOMERS_MAPPING)],
                              batch="{ max_rows: 1000, max_latency: 20ms }", extra="log: { level: warn }\n")
    r = subprocess.run([a.bin, "install", "-c", cfg], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("arraysync install: %s" % r.stderr.strip())
    writer = Wire(port)
    writer.command({"insert": "customers", "documents": [docs[0]], "$db": db})
    log = open(os.path.join(work, "connector.log"), "ab")
    proc = subprocess.Popen([a.bin, "run", "-c", cfg], stdout=log, stderr=log)
    try:
        count = "select count(*) from customers"
        wait_for(lambda: (sqlite_value(lite, count) or 0) >= 1, "the snapshot", proc)
        time.sleep(0.5)  # the change stream is open and idle
        before, _, s_recvd = net_sample(port)
        w0 = writer.sent + writer.recvd
        rest = docs[1:]
        for i in range(0, len(rest), 10):
            writer.command({"insert": "customers", "documents": rest[i:i + 10], "$db": db})
            time.sleep(0.01)
        wait_for(lambda: (sqlite_value(lite, count) or 0) >= len(docs), "the inserts", proc)
        nupd = len(docs) // 2
        for i in range(0, nupd, 10):
            ups = [{"q": {"_id": d["_id"]}, "u": {"$set": {"score": float(k), "plan": "gold"}}}
                   for k, d in enumerate(docs[i:i + 10], start=i)]
            writer.command({"update": "customers", "updates": ups, "$db": db})
            time.sleep(0.01)
        last = docs[nupd - 1]["_id"]
        wait_for(lambda: sqlite_value(lite, "select score from customers where id = ?",
                                      (str(last),)) == float(nupd - 1), "the updates", proc)
        after, _, _ = net_sample(port)
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()
    writer_bytes = writer.sent + writer.recvd - w0
    # `before` counted its own request but not its reply; `after` its request only
    extra = s_recvd + net_sample_request_size()
    wire = (after["physicalBytesIn"] - before["physicalBytesIn"] + after["physicalBytesOut"]
            - before["physicalBytesOut"]) - writer_bytes - extra
    logical = (after["bytesIn"] - before["bytesIn"] + after["bytesOut"] - before["bytesOut"]) - writer_bytes - extra
    writer.command({"dropDatabase": 1, "$db": db})
    writer.close()
    return wire, logical, (len(docs) - 1) + nupd


def net_sample_request_size():
    return 16 + 5 + len(bson.encode({"serverStatus": 1, "$db": "admin"}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--docs", type=int, default=5000)
    ap.add_argument("--compressor", default="zstd", choices=["zstd", "snappy", "zlib"])
    ap.add_argument("--work")
    a = ap.parse_args()
    own_work = a.work is None
    a.work = a.work or tempfile.mkdtemp(prefix="arraysync-wire-")
    port = int(subprocess.check_output([os.path.join(SCRIPTS, "free_port.sh")], text=True))
    sdir = os.path.join(a.work, "mongo")
    subprocess.check_call([os.path.join(SCRIPTS, "mongo_server.sh"), "start", str(port), sdir],
                          stdout=subprocess.DEVNULL)
    try:
        import random
        rnd = random.Random(7)
        docs = [customer(i, rnd) for i in range(a.docs + 1)]
        uri = "mongodb://127.0.0.1:%d/?replicaSet=rs0" % port
        res = {}
        for label, u in (("plain", uri), (a.compressor, with_option(uri, "compressors", a.compressor))):
            res[label] = one_run(a, port, label, u, docs)
            wire, logical, n = res[label]
            print("  # %s: %d deltas, connector traffic %d bytes on the wire (%d in its messages)"
                  % (label, n, wire, logical), file=sys.stderr, flush=True)
        pw, pl, n = res["plain"]
        cw, cl, _ = res[a.compressor]
        print("wire.bytes_per_delta plain=%.0f %s=%.0f ratio=%.3f deltas=%d "
              "(connector <-> MongoDB test server, both directions; inserts %d + $set updates %d "
              "of ~560-byte customers -> SQLite; message bytes per delta %.0f / %.0f)"
              % (pw / n, a.compressor, cw / n, cw / pw, n, a.docs, a.docs // 2, pl / n, cl / n), flush=True)
    finally:
        subprocess.call([os.path.join(SCRIPTS, "mongo_server.sh"), "stop", str(port), sdir])
        if own_work:
            subprocess.call(["rm", "-rf", a.work])
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Tiny throughput measurement of the MongoDB test server through pymongo.

Usage: /usr/bin/python3 tests/mongo_server/bench_server.py [--uri URI] [--docs N] [--server-python PATH]
Without --uri a private server is started on a free 127.0.0.1 port, run by --server-python
(default /usr/bin/python3; for pypy3 the pure-Python bson of Debian's python3-bson is put on
its path). The client side is always this interpreter's pymongo.
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

import bson
import pymongo

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_seconds(pid):
    """user+system CPU time of a process (Linux /proc), steadier than wall time on a busy machine."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uri")
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--server-python", default="/usr/bin/python3")
    args = ap.parse_args()
    proc = None
    uri = args.uri
    if not uri:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        env = dict(os.environ)
        if "pypy" in os.path.basename(args.server_python):
            libdir = tempfile.mkdtemp(prefix="arraysync-pypy-bson-")
            os.symlink(os.path.dirname(bson.__file__), os.path.join(libdir, "bson"))
            env["PYTHONPATH"] = libdir
        proc = subprocess.Popen([args.server_python, os.path.join(HERE, "mongo_server.py"), "--port", str(port),
                                 "--history", str(max(100000, 2 * args.docs))],
                                stdout=subprocess.PIPE, env=env)
        proc.stdout.readline()
        uri = "mongodb://127.0.0.1:%d/?replicaSet=rs0" % port
    client = pymongo.MongoClient(uri)
    try:
        db = client.bench
        client.drop_database("bench")
        n = args.docs
        docs = [{"i": i, "name": "user%d" % i, "tags": ["a", "b"], "nested": {"x": i, "y": "z" * 20}} for i in range(n)]
        stream = db.c.watch(max_await_time_ms=100, batch_size=1000)
        t0 = time.time()
        db.c.insert_many(docs)
        t_ins = time.time() - t0
        t0 = time.time()
        got = 0
        while got < n:
            if stream.try_next() is not None:
                got += 1
        t_cs = time.time() - t0
        stream.close()
        t0 = time.time()
        cnt = sum(1 for _ in db.c.find({"i": {"$gte": 0}}))
        t_find = time.time() - t0
        t0 = time.time()
        for i in range(1000):
            db.c.update_one({"_id": docs[i]["_id"]}, {"$set": {"u": i}})
        t_upd = time.time() - t0
        print("bulk insert: %d docs in %.2fs = %.0f docs/s" % (n, t_ins, n / t_ins))
        print("change stream: %d events in %.2fs = %.0f events/s" % (got, t_cs, got / t_cs))
        print("find (filtered scan): %d docs in %.2fs = %.0f docs/s" % (cnt, t_find, cnt / t_find))
        print("update_one by _id: 1000 in %.2fs = %.0f ops/s" % (t_upd, 1000 / t_upd))
        if proc:
            print("server CPU time for all of the above: %.2fs (%s)" % (cpu_seconds(proc.pid), args.server_python))
    finally:
        client.close()
        if proc:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())

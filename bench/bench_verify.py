#!/usr/bin/python3
"""The `arraysync verify` benchmark (see bench/README.md, "verify").

  bench_verify.py --build DIR --dsn DSN --uri URI --work DIR [--docs 1000000] [--mongo-docs 5000]
                  [--reps 3] [--mongo-reps 1]

Documents: the realistic customers of bench_e2e.py gen. Each part loads the same rows into two
nodes (bench_verify load: the adapters' apply path), then, alternating, times a plain full fetch
of the mapped columns from each node (bench_verify fetch) and `arraysync verify --json`:
  verify.time_ratio   = median verify time / median fetch time of the slower node (target <= 1)
  verify.bytes_ratio  = bytes verify received from both nodes / bytes of that fetch (<= 0.001)
and again with 10 keys changed on one node (bench_verify touch), checking that verify names
every one. Part 1: PostgreSQL and SQLite, --docs rows. Part 2: the MongoDB test server (Python)
and SQLite, --mongo-docs rows (the size the test server hashes in reasonable time).
Every line printed is "verify.<figure> key=value ..."."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import psycopg2
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient


def out(line):
    print(line, flush=True)


def note(msg):
    print("  # " + msg, file=sys.stderr, flush=True)


def run(args, **kw):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if r.returncode not in (0, 3):
        raise SystemExit("%s failed (%d): %s %s" % (args[:3], r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
    return r


def kv(line):
    return dict(x.split("=", 1) for x in line.split() if "=" in x)


class Part:
    def __init__(self, a, name, nodes_yaml, docs_file):
        self.a, self.name = a, name
        self.dir = os.path.join(a.work, name)
        os.makedirs(os.path.join(self.dir, "m"), exist_ok=True)
        with open(os.path.join(a.work, "customers.yaml")) as f:
            mapping = f.read().replace("direction: to-sql\n", "")
        with open(os.path.join(self.dir, "m", "customers.yaml"), "w") as f:
            f.write(mapping)
        self.config = os.path.join(self.dir, "arraysync.yaml")
        with open(self.config, "w") as f:
            f.write("nodes:\n%sstate: ./state.db\nmappings: \"m/*.yaml\"\n" % nodes_yaml)
        self.docs = docs_file
        run([self.bin("arraysync"), "install", "-c", self.config])

    def bin(self, b):
        return os.path.join(self.a.build, b)

    def load(self, *nodes):
        t0 = time.time()
        r = run([self.bin("bench_verify"), "load", self.config, "customers", self.docs] + list(nodes))
        note("%s: loaded %s in %.1f s" % (self.name, ",".join(nodes), time.time() - t0))
        return r

    def fetch(self, node):
        r = run([self.bin("bench_verify"), "fetch", self.config, "customers", node])
        return kv(r.stdout.strip())

    def verify(self, nodes):
        t0 = time.time()
        r = run([self.bin("arraysync"), "verify", "-c", self.config, "--json", "--nodes", nodes,
                 "--recheck-after", "0"])
        wall = time.time() - t0
        rep = json.loads(r.stdout)[0]
        return rep, wall

    def measure(self, a_node, b_node, label, want_keys=None):
        fetch = {a_node: [], b_node: []}
        ver = []
        rep = None
        for _ in range(self.a.reps):
            for n in (a_node, b_node):
                fetch[n].append(self.fetch(n))
            rep, wall = self.verify("%s,%s" % (a_node, b_node))
            ver.append(wall)
        ft = {n: statistics.median(float(x["seconds"]) for x in fetch[n]) for n in fetch}
        slow = max(ft, key=ft.get)
        fbytes = int(fetch[slow][0]["bytes"])
        vbytes = sum(rep["bytes"].values())
        vt = statistics.median(ver)
        rows = int(fetch[slow][0]["rows"])
        out("verify.%stime_ratio nodes=%s,%s rows=%d verify_s=%.3f fetch_s_%s=%.3f fetch_s_%s=%.3f slower=%s "
            "ratio=%.3f equal=%s segments=%d" % (label, a_node, b_node, rows, vt, a_node, ft[a_node], b_node,
                                                 ft[b_node], slow, vt / ft[slow], str(rep["equal"]).lower(),
                                                 rep["segments"]))
        out("verify.%sbytes_ratio nodes=%s,%s verify_bytes=%d (%s) fetch_bytes_%s=%d ratio=%.6f" %
            (label, a_node, b_node, vbytes, ", ".join("%s %d" % kv2 for kv2 in rep["bytes"].items()), slow,
             fbytes, vbytes / fbytes))
        if want_keys is not None:
            named = set(json.dumps(k, sort_keys=True) for k in rep["different"])
            want = set(json.dumps(k, sort_keys=True) for k in want_keys)
            out("verify.%skeys nodes=%s,%s changed=%d named=%d all_named=%s other_keys=%d" %
                (label, a_node, b_node, len(want), len(named & want), str(want <= named).lower(),
                 len(named - want) + sum(len(v) for v in rep["only_in"].values())))
        return rep

    def quick(self, a_node, b_node):
        run([self.bin("bench_verify"), "quickseed", self.config, "customers", a_node, b_node])
        fetch = statistics.median(float(self.fetch(a_node)["seconds"]) for _ in range(self.a.reps))
        ts = []
        for _ in range(self.a.reps):
            t0 = time.time()
            r = run([self.bin("arraysync"), "verify", "-c", self.config, "--json", "--quick",
                     "--nodes", "%s,%s" % (a_node, b_node)])
            ts.append(time.time() - t0)
        rep = json.loads(r.stdout)[0]
        out("verify.quick_time_ratio nodes=%s,%s rows=%d verify_quick_s=%.4f fetch_s_%s=%.3f ratio=%.5f equal=%s "
            "hash_on=%s" % (a_node, b_node, rep["rows"][a_node], statistics.median(ts), a_node, fetch,
                            statistics.median(ts) / fetch, str(rep["equal"]).lower(), rep["hash_on"]))
        r = run([self.bin("bench_verify"), "quickcost", self.dir, "200000"])
        for line in r.stdout.strip().split("\n"):
            k = kv(line)
            out("verify.quick_put_cost batch=%s version_put_us_per_key=%s with_quick_us_per_key=%s ratio=%s" %
                (k["batch"], k["version_put_us_per_key"], k["with_quick_us_per_key"], k["ratio"]))

    def touch(self, node, n):
        r = run([self.bin("bench_verify"), "touch", self.config, "customers", node, str(n)])
        return [json.loads(x) for x in r.stdout.split("\n") if x.strip()]


def part_sql(a):
    admin = psycopg2.connect(a.dsn)
    admin.autocommit = True
    with admin.cursor() as c:
        c.execute("DROP DATABASE IF EXISTS bench_verify")
        c.execute("CREATE DATABASE bench_verify")
    dsn = a.dsn.replace("dbname=postgres", "dbname=bench_verify")
    p = Part(a, "sql", "  pg: { kind: postgres, dsn: \"%s\" }\n  lite: { kind: sqlite, path: %s }\n"
             % (dsn, os.path.join(a.work, "sql", "lite.db")), os.path.join(a.work, "docs.bson"))
    p.load("pg", "lite")
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    conn.cursor().execute("VACUUM ANALYZE customers")
    conn.close()
    p.measure("pg", "lite", "")
    p.quick("pg", "lite")
    keys = p.touch("lite", 10)
    p.measure("pg", "lite", "diff10.", keys)


def part_mongo(a):
    db = MongoClient(a.uri)["bench_verify"]
    db.drop_collection("customers")
    docs = os.path.join(a.work, "mdocs.bson")
    p = Part(a, "mongo", "  mongo: { kind: mongodb, uri: \"%s\", database: bench_verify }\n"
             "  lite: { kind: sqlite, path: %s }\n" % (a.uri, os.path.join(a.work, "mongo", "lite.db")), docs)
    t0 = time.time()
    with open(docs, "rb") as f:
        data = f.read()
    batch, pos = [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "little")
        batch.append(RawBSONDocument(data[pos:pos + n]))
        pos += n
        if len(batch) == 1000:
            db.customers.insert_many(batch, ordered=False)
            batch = []
    if batch:
        db.customers.insert_many(batch, ordered=False)
    note("mongo: inserted in %.1f s" % (time.time() - t0))
    p.load("lite")
    a.reps = a.mongo_reps
    p.measure("mongo", "lite", "mongo.")
    keys = p.touch("lite", 10)
    p.measure("mongo", "lite", "mongo.diff10.", keys)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--uri", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--docs", type=int, default=1000000)
    ap.add_argument("--mongo-docs", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--mongo-reps", type=int, default=1)
    ap.add_argument("--only", default="sql,mongo")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))
    gen = [sys.executable, os.path.join(here, "bench_e2e.py"), "gen", "--mapping", os.path.join(a.work, "customers.yaml")]
    if "sql" in a.only:
        t0 = time.time()
        subprocess.run(gen + ["--docs", str(a.docs), "--bson", os.path.join(a.work, "docs.bson")], check=True)
        note("generated %d documents in %.1f s" % (a.docs, time.time() - t0))
        part_sql(a)
    if "mongo" in a.only:
        subprocess.run(gen + ["--docs", str(a.mongo_docs), "--bson", os.path.join(a.work, "mdocs.bson")], check=True)
        part_mongo(a)


if __name__ == "__main__":
    main()

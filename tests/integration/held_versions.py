"""What the state store says each node holds, after changes that write nothing: `verify --quick`
compares those sets, so a node left out of one says "different" while the data is equal.

Ring mongo -> pg -> lite (a change of lite reaches pg only as a relay of what the connector
wrote to mongo), last-write-wins with a clock column `v`, so that a change can be made after
others yet be older than them:
  1. lite inserts the keys (v = 100); every node gets them.
  2. MongoDB updates every column of k1 and k2 in two updates (v = 300, then v = 400).
  3. lite writes the whole row of k1 (v = 200) and inserts k3 (v = 100): k1's change is newer
     than the row's version (100) and older than every column's (300, 400), so it becomes the
     row's version and every one of its columns loses: nothing of it is written anywhere, no
     relay carries it to pg, and lite gets the winning row back.
Every node ends with MongoDB's values for k1, the nodes hold equal rows and `verify --quick`
says every pair is equal (before the connector counted the nodes holding every column's
version as holding such a row version, pg was left out of it: mongo-pg and pg-lite differed).
usage: held_versions.py --bin BUILD/arraysync --work DIR [--pg-dsn DSN]"""
import argparse
import os
import sqlite3
import subprocess
import sys

from pymongo import MongoClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import astest  # noqa: E402
from astest import check, results  # noqa: E402

MAPPING = """mapping: items
collection: items
table: items
key: id
columns:
  id:  { field: _id, type: text }
  val: { field: val, type: text }
  tag: { field: tag, type: text }
  v:   { field: v,   type: bigint }
conflict: { strategy: lww, clock: v }
"""
NODES = ("mongo", "pg", "lite")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--pg-dsn")
    a = ap.parse_args()
    work = os.path.abspath(a.work)
    os.makedirs(work, exist_ok=True)
    uri = astest.mongo_uri(os.path.join(work, "mongo-server"))
    pg_admin = a.pg_dsn or astest.start_pg(os.path.join(work, "pg-server"))
    db = "held_%d" % os.getpid()
    dsn = astest.fresh_pg_db(pg_admin, db)
    lite_path = os.path.join(work, "lite.db")
    nodes = [astest.node_yaml("mongo", "mongodb", uri=uri, database=db),
             astest.node_yaml("pg", "postgres", dsn=dsn),
             astest.node_yaml("lite", "sqlite", path=lite_path)]
    cfg = astest.write_config(work, nodes, [("items", MAPPING)],
                              topology="{ type: ring, order: [mongo, pg, lite] }")
    log = os.path.join(work, "connector.log")
    mc = MongoClient(uri, serverSelectionTimeoutMS=10000)
    coll = mc[db]["items"]

    def lite(sql, params=()):
        con = sqlite3.connect(lite_path, timeout=30)
        try:
            rows = con.execute(sql, params).fetchall()
            con.commit()
            return rows
        finally:
            con.close()

    def run(what):
        with open(log, "a") as f:
            f.write("==== run: %s\n" % what)
            f.flush()
            p = subprocess.run([a.bin, "run", "-c", cfg, "--exit-when-idle", "3s", "--log-level", "debug"],
                               stdout=f, stderr=f, timeout=120)
        check("run %s exits 0" % what, p.returncode == 0, "exit %d (log %s)" % (p.returncode, log))

    def rows():
        out = {"mongo": {d["_id"]: (d.get("val"), d.get("tag"), d.get("v")) for d in coll.find({})},
               "pg": {r[0]: (r[1], r[2], r[3]) for r in astest.pg_exec(dsn, "select id, val, tag, v from items")},
               "lite": {r[0]: (r[1], r[2], r[3]) for r in lite("select id, val, tag, v from items")}}
        return out

    def expect(what, want):
        got = rows()
        for n in NODES:
            check("%s: %s holds the expected rows" % (what, n), got[n] == want,
                  "held %s, expected %s" % (got[n], want))

    def quick(what):
        ok, n, summary = astest.quick_verify(a.bin, cfg)
        check("%s: verify --quick finds every pair equal" % what, ok and n > 0, summary)

    r = astest.cli(a.bin, cfg, "install")
    if not check("install", r.returncode == 0, r.stderr.strip()):
        return 1
    want = {}
    for k in ("k1", "k2"):
        lite("insert into items (id, val, tag, v) values (?, ?, ?, 100)", (k, "l0-" + k, "t0-" + k))
        want[k] = ("l0-" + k, "t0-" + k, 100)
    run("1 (inserts on lite)")
    expect("1", want)
    quick("1")

    for k in ("k1", "k2"):
        assert coll.update_one({"_id": k}, {"$set": {"val": "m-" + k, "v": 300}}).matched_count == 1
        assert coll.update_one({"_id": k}, {"$set": {"tag": "mt-" + k, "v": 400}}).matched_count == 1
        want[k] = ("m-" + k, "mt-" + k, 400)
    run("2 (updates of every column on MongoDB)")
    expect("2", want)
    quick("2")

    lite("update items set val = 'l2', tag = 'lt2', v = 200 where id = 'k1'")
    lite("insert into items (id, val, tag, v) values ('k3', 'l3', 'lt3', 100)")
    want["k3"] = ("l3", "lt3", 100)
    run("3 (lite's whole row of k1, older than every column's version)")
    expect("3", want)
    quick("3")
    mc.close()
    print("held_versions: %d passed, %d failed" % (results["passed"], results["failed"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""Topologies with more than two nodes: hub-and-spoke, ring and peer-to-peer over one MongoDB
database and three SQLite files. Each node gets writes; at the end every node
holds the same rows. MongoDB only through ARRAYSYNC_TEST_MONGODB_URI.

usage: e2e_topology.py --bin build/arraysync --work DIR"""
import argparse
import os
import sqlite3
import sys
import time

from pymongo import MongoClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import astest  # noqa: E402
from astest import check, results  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--work", required=True)
args = ap.parse_args()
URI = os.environ["ARRAYSYNC_TEST_MONGODB_URI"]


MAPPING = """mapping: notes
collection: notes
table: notes
key: id
columns:
  id:   { field: _id,  type: text }
  body: { field: body, type: text }
  n:    { field: n,    type: bigint }
"""
LITES = ["a", "b", "c"]


def run_case(name, topology):
    work = os.path.join(args.work, name)
    db = "topo_%s_%d" % (name.replace("-", "_"), os.getpid())
    nodes = [astest.node_yaml("mongo", "mongodb", uri=URI, database=db)]
    nodes += [astest.node_yaml(n, "sqlite", path="%s/%s.db" % (work, n)) for n in LITES]
    cfg = astest.write_config(work, nodes, [("notes", MAPPING)], topology=topology,
                              batch="{ max_rows: 200, max_latency: 10ms }")
    mongo = MongoClient(URI)[db]["notes"]
    r = astest.cli(args.bin, cfg, "install")
    check("%s: install" % name, r.returncode == 0, r.stderr)
    conn = astest.Connector(args.bin, cfg, os.path.join(work, "connector.log"))
    conn.start()
    time.sleep(1.0)

    def lite(n, sql, params=()):
        con = sqlite3.connect(os.path.join(work, n + ".db"), timeout=30)
        try:
            rows = con.execute(sql, params).fetchall()
            con.commit()
            return rows
        finally:
            con.close()

    def snapshot():
        out = {"mongo": {d["_id"]: (d.get("body"), d.get("n")) for d in mongo.find({})}}
        for n in LITES:
            out[n] = {r[0]: (r[1], r[2]) for r in lite(n, "select id, body, n from notes")}
        return out

    # writes on every node, including updates of rows that came from another node
    for i in range(20):
        mongo.insert_one({"_id": "m%d" % i, "body": "from mongo", "n": i})
        for n in LITES:
            lite(n, "insert into notes (id, body, n) values (?, ?, ?)", ("%s%d" % (n, i), "from " + n, i))
    expect_keys = 20 * 4

    def all_have(k):
        s = snapshot()
        return all(len(rows) == k for rows in s.values()) and all(rows == s["mongo"] for rows in s.values())

    ok = False
    end = time.time() + 60
    while time.time() < end and not ok:
        ok = all_have(expect_keys)
        time.sleep(0.2)
    check("%s: inserts on all 4 nodes reach every node" % name, ok,
          repr({k: len(v) for k, v in snapshot().items()}))
    lite("a", "update notes set body = 'edited on a' where id = 'm3'")
    mongo.update_one({"_id": "b4"}, {"$set": {"body": "edited on mongo"}})
    lite("c", "delete from notes where id = 'a5'")
    ok = False
    end = time.time() + 60
    while time.time() < end and not ok:
        s = snapshot()
        ok = (all(rows == s["mongo"] for rows in s.values()) and s["mongo"].get("m3", (None,))[0] == "edited on a"
              and s["mongo"].get("b4", (None,))[0] == "edited on mongo" and "a5" not in s["mongo"])
        time.sleep(0.2)
    check("%s: updates and a delete made on different nodes reach every node" % name, ok,
          repr({k: (v.get("m3"), v.get("b4"), v.get("a5")) for k, v in snapshot().items()}))
    # no echo loop: once quiet, nothing keeps being written
    time.sleep(1.0)
    before = [lite(n, "select coalesce(max(seq), 0) from _arraysync_changelog")[0][0] for n in LITES]
    time.sleep(3.0)
    after = [lite(n, "select coalesce(max(seq), 0) from _arraysync_changelog")[0][0] for n in LITES]
    check("%s: quiet after convergence (no writes circulate)" % name, before == after, "%r -> %r" % (before, after))
    rc = conn.stop()
    check("%s: clean stop" % name, rc == 0, str(rc))
    MongoClient(URI).drop_database(db)


run_case("hub-and-spoke", "{ type: hub-and-spoke, hub: mongo }")
run_case("ring", "{ type: ring, order: [mongo, a, b, c] }")
run_case("peer-to-peer", "{ type: peer-to-peer }")
print("%d passed, %d failed" % (results["passed"], results["failed"]))
sys.exit(1 if results["failed"] else 0)

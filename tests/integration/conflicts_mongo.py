#!/usr/bin/python3
"""`conflicts resolve` on a mapping with no SQL node: two MongoDB databases (m1, m2), strategy
vector. Edits are made while the connector is stopped, through pymongo:
  1. k1 inserted on m1; run: m2 holds it.
  2. name changed on m1, then on m2: run -> one open conflict for k1 (columns ["name"]), every
     node holds m2's value (fallback lww).
  3. `conflicts resolve ID --take m1` writes m1's row on m1 as an unmarked change (the
     connector's own writes are marked; this one must travel): run -> m2 holds m1's row too,
     the conflict is resolved, and a further run changes nothing.
usage: conflicts_mongo.py --bin build/arraysync --work DIR
MongoDB: ARRAYSYNC_TEST_MONGODB_URI, or the project's test server started here."""
import argparse
import json
import os
import subprocess
import sys
import time

import astest
from astest import check

MAPPING = """mapping: items
collection: items
table: items
key: id
columns:
  id:   { field: _id,  type: text }
  name: { field: name, type: text }
  qty:  { field: qty,  type: int64 }
conflict: { strategy: vector }
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    uri = astest.mongo_uri(os.path.join(work, "mongo-server"))
    import pymongo
    client = pymongo.MongoClient(uri)
    dbs = {"m1": "cm_m1", "m2": "cm_m2"}
    for d in dbs.values():
        client.drop_database(d)
    nodes = [astest.node_yaml(n, "mongodb", uri=uri, database=d) for n, d in dbs.items()]
    cfg = astest.write_config(work, nodes, [("items", MAPPING)])
    coll = {n: client[d]["items"] for n, d in dbs.items()}

    def cli(*a):
        return subprocess.run([args.bin] + list(a) + ["-c", cfg], capture_output=True, text=True,
                              timeout=120)

    def run(what):
        r = subprocess.run([args.bin, "run", "-c", cfg, "--exit-when-idle", "2s", "--log-level", "debug"],
                           capture_output=True, text=True, timeout=180)
        with open(os.path.join(work, "connector.log"), "a") as f:
            f.write("==== %s\n%s" % (what, r.stderr))
        check("run.%s.exit" % what, r.returncode == 0, r.stderr[-1500:])

    def names():
        return {n: (c.find_one({"_id": "k1"}) or {}).get("name") for n, c in coll.items()}

    r = cli("install")
    check("install", r.returncode == 0, r.stdout + r.stderr)
    coll["m1"].insert_one({"_id": "k1", "name": "A", "qty": 1})
    run("first")
    check("first.copied", coll["m2"].find_one({"_id": "k1"}) == {"_id": "k1", "name": "A", "qty": 1},
          coll["m2"].find_one({"_id": "k1"}))

    coll["m1"].update_one({"_id": "k1"}, {"$set": {"name": "M1"}})
    time.sleep(1.1)
    coll["m2"].update_one({"_id": "k1"}, {"$set": {"name": "M2"}})
    run("concurrent")
    check("concurrent.fallback", names() == {"m1": "M2", "m2": "M2"}, names())
    r = cli("conflicts", "list", "--open", "--json")
    open_ = json.loads(r.stdout) if r.returncode == 0 else []
    check("concurrent.one_conflict", len(open_) == 1 and open_[0]["key"] == {"id": "k1"}
          and open_[0]["columns"] == ["name"], r.stdout + r.stderr)
    if not open_:
        return 1

    r = cli("conflicts", "resolve", str(open_[0]["id"]), "--take", "m1")
    check("resolve.exit", r.returncode == 0, r.stdout + r.stderr)
    check("resolve.wrote_on_m1", "wrote the row on m1" in r.stdout + r.stderr, r.stdout + r.stderr)
    check("resolve.m1_now", names()["m1"] == "M1", names())
    run("after_resolve")
    check("resolve.propagated", names() == {"m1": "M1", "m2": "M1"}, names())
    docs = {n: c.find_one({"_id": "k1"}) for n, c in coll.items()}
    check("resolve.rows_equal", docs["m1"] == docs["m2"] == {"_id": "k1", "name": "M1", "qty": 1}, docs)
    r = cli("conflicts", "show", str(open_[0]["id"]), "--json")
    c = json.loads(r.stdout) if r.returncode == 0 else {}
    check("resolve.status", c.get("status") == "resolved" and c.get("chosen") == "m1",
          r.stdout + r.stderr)
    run("quiet")
    check("quiet.unchanged", {n: c.find_one({"_id": "k1"}) for n, c in coll.items()} == docs, names())
    r = cli("conflicts", "list", "--json")
    check("quiet.no_new_conflict", r.returncode == 0 and len(json.loads(r.stdout)) == 1, r.stdout)
    print("conflicts_mongo: %d passed, %d failed" % (astest.results["passed"], astest.results["failed"]))
    return 1 if astest.results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

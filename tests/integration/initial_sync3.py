#!/usr/bin/python3
"""The first sync of three non-empty nodes — MongoDB (through its URI only), PostgreSQL and
SQLite, each written with its own client before any run — in every topology:
  - a key one node holds is copied to the others;
  - a key every node holds with equal values is left as it is: the MongoDB document keeps its
    exact bytes (types such as a double holding 2.0, field order, fields no column maps);
  - a key held with different values: `initial_sync: { prefer: NODE }` decides (every node gets
    the preferred node's row), or, without a preference, each node keeps its row and the key is
    reported as conflicts of strategy "initial";
  - a change made after the first run settles such a key the ordinary way.

usage: initial_sync3.py --bin build/arraysync --work DIR [--pg-dsn DSN]
MongoDB: ARRAYSYNC_TEST_MONGODB_URI, or the project's test server started here."""
import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import astest  # noqa: E402
from astest import check, results  # noqa: E402

MAPPING = """mapping: items
collection: items
table: items
key: id
columns:
  id:    { field: _id,    type: text }
  val:   { field: val,    type: text }
  n:     { field: meta.n, type: bigint }
  extra: { field: "*",    type: jsonb }
%s
"""
NODES = ["mongo", "pg", "lite"]
TOPOLOGIES = {"p2p": "{ type: peer-to-peer }", "hub": "{ type: hub-and-spoke, hub: pg }",
              "ring": "{ type: ring, order: [mongo, pg, lite] }"}


class Case:
    def __init__(self, args, uri, pg_admin, topo, prefer):
        self.args, self.topo, self.prefer = args, topo, prefer
        self.name = "%s-%s" % (topo, prefer or "report")
        self.work = os.path.join(args.work, self.name)
        shutil.rmtree(self.work, ignore_errors=True)  # a fresh SQLite file every time
        os.makedirs(self.work)
        db = "init_%s_%s_%d" % (topo, prefer or "report", os.getpid())
        from pymongo import MongoClient
        self.mc = MongoClient(uri, serverSelectionTimeoutMS=10000)
        self.mdb = db
        self.m = self.mc[db]["items"]
        self.pg_admin, self.pg_db = pg_admin, db
        self.pg = astest.fresh_pg_db(pg_admin, db)
        self.lite = os.path.join(self.work, "lite.db")
        nodes = [astest.node_yaml("mongo", "mongodb", uri=uri, database=db),
                 astest.node_yaml("pg", "postgres", dsn=self.pg),
                 astest.node_yaml("lite", "sqlite", path=self.lite)]
        extra = "initial_sync: { prefer: %s }" % prefer if prefer else ""
        self.cfg = astest.write_config(self.work, nodes, [("items", MAPPING % extra)],
                                       topology=TOPOLOGIES[topo])
        self.log = os.path.join(self.work, "connector.log")

    def chk(self, what, ok, detail=""):
        return check("%s.%s" % (self.name, what), ok, detail)

    def run(self, what):
        with open(self.log, "a") as log:
            log.write("==== run: %s\n" % what)
            log.flush()
            p = subprocess.run([self.args.bin, "run", "-c", self.cfg, "--exit-when-idle", "3s"],
                               stdout=log, stderr=log, timeout=180)
        self.chk("run." + what, p.returncode == 0, "exit %d (log %s)" % (p.returncode, self.log))

    def lite_sql(self, sql, params=()):
        con = sqlite3.connect(self.lite, timeout=30)
        try:
            rows = con.execute(sql, params).fetchall()
            con.commit()
            return rows
        finally:
            con.close()

    def raw_docs(self):
        """{_id: the document's raw BSON bytes}"""
        from bson.raw_bson import RawBSONDocument
        coll = self.m.with_options(codec_options=self.m.codec_options.with_options(document_class=RawBSONDocument))
        return {d["_id"]: d.raw for d in coll.find({})}

    def rows(self, node):
        """{id: (val, n)}"""
        if node == "mongo":
            return {d["_id"]: (d.get("val"), d.get("meta", {}).get("n")) for d in self.m.find({})}
        if node == "pg":
            return {r[0]: (r[1], r[2]) for r in astest.pg_exec(self.pg, "select id, val, n from items")}
        return {r[0]: (r[1], r[2]) for r in self.lite_sql("select id, val, n from items")}

    def go(self):
        # every node's data before any run: the table created by install, filled by each client
        r = astest.cli(self.args.bin, self.cfg, "install", timeout=120)
        if not self.chk("install", r.returncode == 0, r.stderr.strip()):
            return
        docs = [
            # equal on every node; a double holding 2.0, fields in this order, a field no column maps
            {"_id": "e1", "val": "same", "z": {"q": 1, "b": 2.0}, "meta": {"n": 2.0}},
            {"_id": "k1", "val": "from mongo", "meta": {"n": 1}},
            {"_id": "om", "val": "only mongo", "meta": {"n": 3}, "tags": ["x", "y"]},
        ]
        self.m.insert_many(docs)
        e1_extra = json.dumps({"z": {"q": 1, "b": 2.0}})
        astest.pg_exec(self.pg, "insert into items (id, val, n, extra) values (%s, %s, %s, %s::jsonb), "
                       "(%s, %s, %s, NULL), (%s, %s, %s, NULL)",
                       ("e1", "same", 2, e1_extra, "k1", "from pg", 1, "op", "only pg", 4))
        self.lite_sql("insert into items (id, val, n, extra) values (?, ?, ?, ?), (?, ?, ?, NULL), "
                      "(?, ?, ?, NULL)", ("e1", "same", 2, e1_extra, "k1", "from lite", 1, "ol", "only lite", 5))
        before = self.raw_docs()
        self.run("first")
        after = self.raw_docs()
        for k in ("e1", "om"):
            self.chk("mongo_bytes_kept." + k, before.get(k) == after.get(k),
                     "before %r after %r" % (before.get(k), after.get(k)))
        got = {n: self.rows(n) for n in NODES}
        union = {"e1": ("same", 2), "om": ("only mongo", 3), "op": ("only pg", 4), "ol": ("only lite", 5)}
        own = {"mongo": "from mongo", "pg": "from pg", "lite": "from lite"}
        for n in NODES:
            want = dict(union)
            want["k1"] = (own[self.prefer] if self.prefer else own[n], 1)
            diff = {k: (got[n].get(k), want.get(k)) for k in set(got[n]) | set(want) if got[n].get(k) != want.get(k)}
            self.chk("first.%s" % n, not diff, "key: (held, expected) %s" % diff)
        cs = json.loads(astest.cli(self.args.bin, self.cfg, "conflicts", "list", "--json").stdout or "[]")
        keys = sorted({(c["key"].get("id"), c["strategy"]) for c in cs})
        if self.prefer:
            self.chk("first.no_conflicts", cs == [], json.dumps(cs)[:800])
        else:
            self.chk("first.conflicts", keys == [("k1", "initial")], json.dumps(cs)[:800])
        # a change after the first run settles k1 everywhere
        self.m.update_one({"_id": "k1"}, {"$set": {"val": "settled"}})
        self.run("after")
        for n in NODES:
            self.chk("after.%s" % n, self.rows(n).get("k1") == ("settled", 1), str(self.rows(n).get("k1")))
        after2 = self.raw_docs()
        self.chk("mongo_bytes_kept_after.e1", before.get("e1") == after2.get("e1"))

    def drop(self):
        self.mc.drop_database(self.mdb)
        self.mc.close()
        astest.pg_exec(self.pg_admin, 'select 1')  # the admin connection still works
        import psycopg2
        con = psycopg2.connect(self.pg_admin)
        con.autocommit = True
        con.cursor().execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.pg_db)
        con.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--pg-dsn")
    a = ap.parse_args()
    a.work = os.path.abspath(a.work)
    os.makedirs(a.work, exist_ok=True)
    uri = astest.mongo_uri(os.path.join(a.work, "mongo-server"))
    pg_admin = a.pg_dsn or astest.start_pg(os.path.join(a.work, "pg-server"))
    for topo, prefer in (("p2p", None), ("hub", "lite"), ("ring", "mongo"), ("p2p", "pg")):
        c = Case(a, uri, pg_admin, topo, prefer)
        try:
            c.go()
        except Exception as e:  # noqa: BLE001 - a broken step fails the case, the others still run
            import traceback
            traceback.print_exc()
            check("%s.exception" % c.name, False, repr(e))
        finally:
            c.drop()
    print("initial_sync3: %d passed, %d failed" % (results["passed"], results["failed"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

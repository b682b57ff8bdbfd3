#!/usr/bin/python3
"""Arrays of subdocuments <-> child tables, both ways (MongoDB through its URI only, SQLite):
every array operation a MongoDB user does ($push, $pull, $set of an element field, $unset of
one, $pop, the whole array replaced or emptied, the parent deleted), each checked row by row in
the child table; every SQL child insert, update and delete (and a parent written with its
children in one transaction), each checked field by field in the document, with the element
fields no column maps and the document's other fields intact; elements that cannot be rows
(not a document, a key twice) and a child row without its parent are dead letters.

usage: children.py --bin build/arraysync --work DIR [--kind sqlite|postgres] [--pg-dsn DSN]"""
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

MAPPING = """mapping: customers
collection: customers
table: customers
key: id
columns:
  id:    { field: _id, type: text }
  name:  { field: name, type: text }
  extra: { field: "*", type: jsonb }
children:
  - table: orders
    field: orders
    key: sku
    columns:
      sku:  { field: sku, type: text }
      qty:  { field: qty, type: int64 }
      rest: { field: "*", type: jsonb }
  - table: tags
    field: tags
    columns:
      t: { field: t, type: text }
"""


class SqlDb:
    """A SQLite file or a PostgreSQL database, reached the way a user would (sqlite3, psycopg2);
    statements are written with ? placeholders."""

    def __init__(self, kind, path, pg_admin, dbname, capture="auto"):
        self.kind, self.path, self.capture = kind, path, capture
        self.dsn = astest.fresh_pg_db(pg_admin, dbname) if kind == "postgres" else None

    def node_yaml(self, name):
        if self.kind == "postgres":
            return astest.node_yaml(name, "postgres", dsn=self.dsn, capture=self.capture)
        return astest.node_yaml(name, "sqlite", path=self.path)

    def connect(self):
        if self.kind == "postgres":
            import psycopg2
            return psycopg2.connect(self.dsn)
        return sqlite3.connect(self.path, timeout=30)

    def txn(self, stmts):
        c = self.connect()
        try:
            cur = c.cursor()
            for st in stmts:
                q, p = (st, ()) if isinstance(st, str) else st
                cur.execute(q.replace("?", "%s") if self.kind == "postgres" else q, p)
            c.commit()
        finally:
            c.close()

    def sql(self, q, params=()):
        c = self.connect()
        try:
            cur = c.cursor()
            cur.execute(q.replace("?", "%s") if self.kind == "postgres" else q, params)
            rows = [tuple(r) for r in cur.fetchall()] if cur.description else []
            c.commit()
            return rows
        finally:
            c.close()

    @staticmethod
    def json(v):
        return json.loads(v) if isinstance(v, str) else v


def verify_json(binary, cfg, *args):
    """`arraysync verify --json ARGS`: (exit code, the report, stderr or the output)."""
    r = subprocess.run([binary, "verify", "-c", cfg, "--json"] + list(args), capture_output=True, text=True,
                       timeout=300)
    try:
        return r.returncode, json.loads(r.stdout or "[]"), r.stderr
    except ValueError:
        return r.returncode, [], r.stdout + r.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--kind", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--pg-dsn", help="a PostgreSQL server to use (else a private one is started)")
    ap.add_argument("--capture", default="auto", help="the PostgreSQL node's capture (auto|logical|triggers)")
    a = ap.parse_args()
    work = os.path.abspath(a.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    uri = astest.mongo_uri(os.path.join(work, "mongo-server"))
    from pymongo import MongoClient
    from bson.son import SON
    from bson.int64 import Int64
    mc = MongoClient(uri, serverSelectionTimeoutMS=10000, document_class=SON)
    m = mc["children"]["customers"]
    pg_admin = None
    if a.kind == "postgres":
        pg_admin = a.pg_dsn or astest.start_pg(os.path.join(work, "pg-server"))
    db = SqlDb(a.kind, os.path.join(work, "lite.db"), pg_admin, "children1", a.capture)
    cfg = astest.write_config(work, [astest.node_yaml("mongo", "mongodb", uri=uri, database="children"),
                                     db.node_yaml("lite")], [("customers", MAPPING)])
    log = open(os.path.join(work, "connector.log"), "a")

    def run():
        return subprocess.run([a.bin, "run", "-c", cfg, "--exit-when-idle", "2s"], stdout=log, stderr=log,
                              timeout=120).returncode

    sql = db.sql

    def orders(cid):
        return [(p, k, q, db.json(r)) for (p, k, q, r) in
                sql("select position, sku, qty, rest from orders where customers_id = ? order by position", (cid,))]

    def tags(cid):
        return sql("select position, t from tags where customers_id = ? order by position", (cid,))

    def doc(cid):
        return m.find_one({"_id": cid})

    ddl = astest.cli(a.bin, cfg, "check")
    check("check prints the child tables' DDL with a foreign key", "FOREIGN KEY" in ddl.stdout and
          '"customers_id"' in ddl.stdout and '"position"' in ddl.stdout, ddl.stdout[-800:] + ddl.stderr[-400:])
    check("install", astest.cli(a.bin, cfg, "install").returncode == 0)
    # ---- MongoDB -> SQLite
    m.insert_one(SON([("_id", "c1"), ("name", "Ann"), ("orders", [SON([("sku", "a"), ("qty", 1), ("note", "x")]),
                                                                SON([("sku", "b"), ("qty", 2)])]),
                      ("tags", [{"t": "vip"}]), ("since", 2019)]))
    m.insert_one(SON([("_id", "c2"), ("name", "Bob")]))
    m.insert_one(SON([("_id", "c3"), ("name", "Cy"), ("orders", [])]))
    check("first run", run() == 0)
    if a.kind == "postgres":
        fks = sql("select conrelid::regclass::text, convalidated from pg_constraint where contype = 'f' "
                  "order by 1")
        check("first copy: the child tables' foreign keys are there after it, validated",
              fks == [("orders", True), ("tags", True)], fks)
        with open(os.path.join(work, "connector.log")) as f:
            text = f.read()
        check("first copy: into empty child tables without their foreign keys (set aside, then back)",
              text.count("set aside until the copy ends") == 2 and text.count("added back") == 2, text[-600:])
        check("first copy: no foreign key left recorded as set aside",
              sql("select key from arraysync.meta where left(key, 11) = 'dropped_fk:'") == [])
    check("insert: parent row", sql("select id, name from customers order by id") ==
          [("c1", "Ann"), ("c2", "Bob"), ("c3", "Cy")], sql("select * from customers"))
    check("insert: child rows by key, position, element catch-all", orders("c1") ==
          [(0, "a", 1, {"note": "x"}), (1, "b", 2, None)], orders("c1"))
    check("insert: child rows by position", tags("c1") == [(0, "vip")], tags("c1"))
    check("missing field and [] hold no child rows", orders("c2") == [] and orders("c3") == [])
    # many new documents at once: their parents and child rows go in by COPY
    many = [SON([("_id", "n%02d" % i), ("name", "N%d" % i),
                 ("orders", [SON([("sku", "s%d\t\\x\ny" % j), ("qty", i * 10 + j), ("note", {"i": i, "q": "a\tb"})])
                             if j % 2 == 0 else SON([("sku", "s%d" % j)]) for j in range(i % 4)]),
                 ("tags", [{"t": "t%d" % i}])]) for i in range(30)]
    m.insert_many(many)
    run()
    want = {d["_id"]: ([(j, e["sku"], e.get("qty"), {"note": dict(e["note"])} if "note" in e else None)
                        for j, e in enumerate(d["orders"])], [(0, d["tags"][0]["t"])]) for d in many}
    got = {k: (orders(k), tags(k)) for k in want}
    check("30 new documents at once: every child row, tab, newline, backslash and missing field kept",
          got == want, [(k, got[k], want[k]) for k in want if got[k] != want[k]][:2])
    # 600 more: about 150 KB of child rows, which go out in pieces while the rest are made
    def big_docs(prefix, n):
        return [SON([("_id", "%s%03d" % (prefix, i)), ("name", "B%d" % i),
                     ("orders", [SON([("sku", "k%d-%d" % (i, j)), ("qty", i * 10 + j), ("note", "n" * 100 + str(i))])
                                 for j in range(i % 4)])]) for i in range(n)]

    def big_want(docs):
        return {d["_id"]: [(j, e["sku"], e["qty"], {"note": e["note"]}) for j, e in enumerate(d["orders"])]
                for d in docs}
    big = big_docs("b", 600)
    m.insert_many(big)
    run()
    want = big_want(big)
    got = {k: orders(k) for k in want}
    check("600 new documents at once: every child row", got == want,
          [(k, got[k], want[k]) for k in want if got[k] != want[k]][:2])
    if a.kind == "postgres":  # a NUL byte (PostgreSQL text cannot store it) after pieces went out
        big = big_docs("x", 300)
        big[250]["orders"][1]["sku"] = "bad\x00sku"
        m.insert_many(big)
        run()
        want = big_want([d for d in big if d["_id"] != "x250"])
        got = {k: orders(k) for k in want}
        check("300 more, one element with a NUL byte: every other child row", got == want,
              [(k, got[k], want[k]) for k in want if got[k] != want[k]][:2])
        dl = json.loads(astest.cli(a.bin, cfg, "dlq", "list", "--json").stdout or "[]")
        errs = " | ".join("%s %s" % (x.get("key"), x.get("error")) for x in dl)
        check("the element with a NUL byte: a dead letter naming it, no child row of its document",
              "NUL byte" in errs and "x250" in errs and orders("x250") == [], (errs[:600], orders("x250")))
        m.delete_one({"_id": "x250"})  # (what follows compares every document)
        run()

    m.update_one({"_id": "c1"}, {"$push": {"orders": {"sku": "c", "qty": 3}}})
    run()
    check("$push: a row at the end", orders("c1")[2:] == [(2, "c", 3, None)], orders("c1"))
    m.update_one({"_id": "c1"}, {"$set": {"orders.1.qty": 5}})
    run()
    check("$set orders.1.qty: that row only", orders("c1") ==
          [(0, "a", 1, {"note": "x"}), (1, "b", 5, None), (2, "c", 3, None)], orders("c1"))
    m.update_one({"_id": "c1"}, {"$unset": {"orders.0.note": ""}})
    run()
    check("$unset of an element field", orders("c1")[0] == (0, "a", 1, None), orders("c1"))
    m.update_one({"_id": "c1"}, {"$pull": {"orders": {"sku": "a"}}})
    run()
    check("$pull: the row goes, positions follow", orders("c1") == [(0, "b", 5, None), (1, "c", 3, None)],
          orders("c1"))
    m.update_one({"_id": "c1"}, {"$pop": {"orders": 1}})
    run()
    check("$pop: the last row goes", orders("c1") == [(0, "b", 5, None)], orders("c1"))
    m.update_one({"_id": "c1"}, {"$set": {"orders": [{"sku": "z", "qty": 9, "gift": True}, {"sku": "b", "qty": 5}],
                                          "tags": [{"t": "new"}, {"t": "vip"}]}})
    run()
    check("whole array replaced", orders("c1") == [(0, "z", 9, {"gift": True}), (1, "b", 5, None)], orders("c1"))
    check("whole array replaced (by position)", tags("c1") == [(0, "new"), (1, "vip")], tags("c1"))
    m.update_one({"_id": "c1"}, {"$set": {"tags": []}})
    run()
    check("array emptied", tags("c1") == [], tags("c1"))
    m.insert_one(SON([("_id", "bad1"), ("name", "B"), ("orders", [{"sku": "a"}, "oops"])]))
    m.insert_one(SON([("_id", "bad2"), ("name", "D"), ("orders", [{"sku": "a"}, {"sku": "a"}])]))
    m.insert_one(SON([("_id", "ok3"), ("name", "E"), ("orders", [{"sku": "q", "qty": 1}])]))
    run()
    dl = json.loads(astest.cli(a.bin, cfg, "dlq", "list", "--json").stdout or "[]")
    errs = " | ".join(x.get("error") or "" for x in dl)
    check("an element that is not a document: a dead letter naming its path", "orders.1" in errs and
          "not a document" in errs, errs[:600])
    check("two elements with one key: a dead letter", "element 0's" in errs, errs[:600])
    check("the documents around them flow", orders("ok3") == [(0, "q", 1, None)], orders("ok3"))
    check("their parent rows sync without the arrays", sql("select id, name from customers where id in "
                                                             "('bad1', 'bad2') order by id") ==
          [("bad1", "B"), ("bad2", "D")] and orders("bad1") == [] and orders("bad2") == [],
          sql("select id, name from customers where id in ('bad1', 'bad2')"))
    m.update_one({"_id": "bad1"}, {"$set": {"name": "B2", "orders.1": {"sku": "b", "qty": 2}}})
    run()
    check("an array fixed in MongoDB comes into the child table", orders("bad1") == [(0, "a", None, None),
                                                                                (1, "b", 2, None)] and
          sql("select name from customers where id = 'bad1'") == [("B2",)], orders("bad1"))
    m.delete_one({"_id": "ok3"})
    run()
    check("parent delete removes the child rows", orders("ok3") == [] and
          sql("select count(*) from customers where id = 'ok3'") == [(0,)])

    # ---- SQLite -> MongoDB
    before = doc("c1")
    sql("insert into orders (customers_id, position, sku, qty, rest) values ('c1', 2, 'n', 4, '{\"w\": 1.5}')")
    run()
    d = doc("c1")
    check("SQL child insert: the element appended, the rest of the document as it was",
          d["orders"] == [SON([("sku", "z"), ("qty", 9), ("gift", True)]), SON([("sku", "b"), ("qty", 5)]),
                          SON([("sku", "n"), ("qty", 4), ("w", 1.5)])] and d["name"] == "Ann" and
          d["since"] == 2019 and list(d.keys()) == list(before.keys()), d)
    sql("update orders set qty = 7 where customers_id = 'c1' and sku = 'z'")
    run()
    d = doc("c1")
    check("SQL child update: that element's field, its unmapped field kept",
          d["orders"][0] == SON([("sku", "z"), ("qty", 7), ("gift", True)]) and len(d["orders"]) == 3, d)
    check("types kept: int stays int32, double stays double", type(d["orders"][0]["qty"]) is int and
          isinstance(d["orders"][2]["w"], float) and not isinstance(d["orders"][0]["qty"], Int64), d)
    sql("delete from orders where customers_id = 'c1' and sku = 'b'")
    run()
    d = doc("c1")
    check("SQL child delete: the element removed", [o["sku"] for o in d["orders"]] == ["z", "n"], d)
    db.txn(["insert into customers (id, name) values ('s1', 'Sue')",
            "insert into orders (customers_id, position, sku, qty) values ('s1', 0, 'p', 1)",
            "insert into orders (customers_id, position, sku, qty) values ('s1', 1, 'r', 2)",
            "insert into tags (customers_id, position, t) values ('s1', 0, 'x')"])
    run()
    d = doc("s1")
    check("SQL parent and children in one transaction: one document with its arrays",
          d == SON([("_id", "s1"), ("name", "Sue"), ("orders", [SON([("sku", "p"), ("qty", 1)]),
                                                                SON([("sku", "r"), ("qty", 2)])]),
                    ("tags", [SON([("t", "x")])])]), d)
    if a.kind == "sqlite":  # (PostgreSQL's foreign key refuses the row itself)
        sql("insert into orders (customers_id, position, sku, qty) values ('nobody', 0, 'o', 1)")
        run()
        dl = json.loads(astest.cli(a.bin, cfg, "dlq", "list", "--json").stdout or "[]")
        errs = " | ".join(x.get("error") or "" for x in dl)
        check("a child row without its parent: a dead letter", "does not have" in errs and "nobody" in errs,
              errs[:800])
        sql("insert into customers (id, name) values ('nobody', 'N')")
        run()
        astest.cli(a.bin, cfg, "dlq", "retry")  # (the array dead letters above still fail: exit 1)
        run()
        left = " | ".join(x.get("error") or "" for x in
                          json.loads(astest.cli(a.bin, cfg, "dlq", "list", "--json").stdout or "[]"))
        check("its parent inserted later brings the child row along; dlq retry settles its dead letter",
              "nobody" not in left and doc("nobody") == SON([("_id", "nobody"), ("name", "N"),
                                                             ("orders", [SON([("sku", "o"), ("qty", 1)])])]),
              (left[:400], doc("nobody")))
    db.txn(["delete from orders where customers_id = 's1'", "delete from tags where customers_id = 's1'",
            "delete from customers where id = 's1'"])
    run()
    check("SQL parent delete: the document deleted", doc("s1") is None, doc("s1"))
    check("nothing else changed", doc("c2") == SON([("_id", "c2"), ("name", "Bob")]) and
          doc("c3") == SON([("_id", "c3"), ("name", "Cy"), ("orders", [])]), (doc("c2"), doc("c3")))

    # ---- verify: a parent's signature includes its child rows
    def verify(*args):
        return verify_json(a.bin, cfg, *args)

    rc, rep, errtxt = verify()
    check("verify: parents and child rows equal, but for the document whose array could not be rows",
          rc == 3 and len(rep) == 1 and rep[0]["different"] == ["bad2"] and rep[0]["hash_on"] == "client",
          "%d %s %s" % (rc, json.dumps(rep)[:500], errtxt[-500:]))
    m.delete_one({"_id": "bad2"})
    run()
    rc, rep, errtxt = verify()
    check("verify: equal once it is gone", rc == 0 and rep and all(p["equal"] for p in rep),
          "%d %s %s" % (rc, json.dumps(rep)[:500], errtxt[-500:]))
    drift = ["update orders set qty = 99 where customers_id = 'c1' and sku = 'z'"]
    if a.kind == "sqlite":  # behind the connector's back: without the capture trigger
        drift = ['drop trigger "_arraysync_orders_upd"'] + drift
    else:
        drift = ["set session_replication_role = replica"] + drift
    db.txn(drift)
    rc, rep, errtxt = verify()
    check("verify: a child row changed behind the connector's back shows as its parent differing",
          rc == 3 and rep and rep[0]["different"] == ["c1"],
          "%d %s %s" % (rc, json.dumps(rep)[:600], errtxt[-300:]))
    rc, rep, errtxt = verify("--repair", "--prefer", "mongo")
    check("verify --repair brings the child row back", rc == 0 and orders("c1")[0][2] == 7,
          "%d %s %s" % (rc, orders("c1"), errtxt[-300:]))
    astest.cli(a.bin, cfg, "install")

    # ---- the first copy from SQLite: parents with their children, into an empty collection
    w2 = os.path.join(work, "fromsql")
    os.makedirs(w2)
    db2 = SqlDb(a.kind, os.path.join(w2, "lite.db"), pg_admin, "children2", a.capture)
    cfg2 = astest.write_config(w2, [astest.node_yaml("mongo", "mongodb", uri=uri, database="children2"),
                                    db2.node_yaml("lite")], [("customers", MAPPING)])
    check("install (second configuration)", astest.cli(a.bin, cfg2, "install").returncode == 0)
    db2.txn(["insert into customers (id, name, extra) values ('p1', 'Pat', '{\"vip\": true}')",
             "insert into customers (id, name) values ('p2', 'Pam')",
             ("insert into orders (customers_id, position, sku, qty, rest) values (?, ?, ?, ?, ?)",
              ("p1", 1, "y", 2, None)),
             ("insert into orders (customers_id, position, sku, qty, rest) values (?, ?, ?, ?, ?)",
              ("p1", 0, "x", 1, '{"gift": "wrap"}')),
             "insert into tags (customers_id, position, t) values ('p2', 0, 'new')"])
    r = subprocess.run([a.bin, "run", "-c", cfg2, "--exit-when-idle", "2s"], stdout=log, stderr=log, timeout=120)
    m2 = mc["children2"]["customers"]
    check("first copy from SQL: documents with their arrays, in position order",
          r.returncode == 0 and m2.find_one({"_id": "p1"}) == SON([
              ("_id", "p1"), ("name", "Pat"), ("orders", [SON([("sku", "x"), ("qty", 1), ("gift", "wrap")]),
                                                          SON([("sku", "y"), ("qty", 2)])]), ("vip", True)]) and
          m2.find_one({"_id": "p2"}) == SON([("_id", "p2"), ("name", "Pam"), ("tags", [SON([("t", "new")])])]),
          list(m2.find()))
    if a.kind == "postgres":
        # a connector killed during a first copy left two foreign keys set aside: install adds
        # them back, the one whose table got a row without a parent meanwhile NOT VALID (warned),
        # and deletes no row
        fk = {t: db2.sql("select conname, pg_get_constraintdef(oid) from pg_constraint where contype = 'f' "
                         "and conrelid = ?::regclass", (t,))[0] for t in ("orders", "tags")}
        stmts = []
        for t, (name, d) in fk.items():
            q = '"public"."%s"' % t
            stmts += [("insert into arraysync.meta (key, value) values (?, ?)",
                       ("dropped_fk:%s:%s" % (q, name), json.dumps({"table": q, "name": name, "def": d}))),
                      'alter table %s drop constraint "%s"' % (t, name)]
        stmts.append("insert into tags (customers_id, position, t) values ('ghost', 0, 'orphan')")
        db2.txn(stmts)
        inst = astest.cli(a.bin, cfg2, "install")
        fks = db2.sql("select conrelid::regclass::text, conname, convalidated from pg_constraint "
                      "where contype = 'f' order by 1")
        check("install after a first copy died: both foreign keys back, NOT VALID where a row has no parent",
              inst.returncode == 0 and fks == [("orders", fk["orders"][0], True), ("tags", fk["tags"][0], False)],
              "%s %s" % (fks, inst.stderr[-400:]))
        check("... with a warning naming the table, the orphan row kept, no record left",
              "rows without a parent" in inst.stderr and '"public"."tags"' in inst.stderr and
              db2.sql("select t from tags where customers_id = 'ghost'") == [("orphan",)] and
              db2.sql("select key from arraysync.meta where left(key, 11) = 'dropped_fk:'") == [],
              inst.stderr[-400:])
    mc.drop_database("children2")
    mc.drop_database("children")
    mc.close()
    print("children: %s" % ("all passed" if not results["failed"] else "%d failed" % results["failed"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

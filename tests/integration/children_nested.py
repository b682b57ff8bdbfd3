#!/usr/bin/python3
"""Nested child tables (an array inside an element of an array), both ways, MongoDB (through
its URI only) <-> SQLite or PostgreSQL: orders by key, each order's lines by position (with an
element catch-all) and its notes by key. Every array operation a MongoDB user does on the inner
arrays ($push, $set of an inner element's field, $pull, $unset, an inner array emptied, an
outer element removed with its inner rows, the document deleted), each checked row by row; every
SQL insert, update and delete of an inner row (and a document written with both levels in one
transaction), each checked field by field in the document, with unmapped fields and types
intact (orders and notes have no element catch-all: their unmapped fields never reach SQL and
stay in the document when SQL rewrites the array; an inner array SQL gives back with no rows
has no field, as at the first level); an inner element that cannot be a row is a dead letter naming its whole path; verify
covers the inner rows and repairs them.

usage: children_nested.py --bin build/arraysync --work DIR [--kind sqlite|postgres] [--capture C]"""
import argparse
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import astest  # noqa: E402
from astest import check, results  # noqa: E402
from children import SqlDb, verify_json  # noqa: E402

MAPPING = """mapping: customers
collection: customers
table: customers
key: id
columns:
  id:   { field: _id, type: text }
  name: { field: name, type: text }
children:
  - table: orders
    field: orders
    key: sku
    columns:
      sku: { field: sku, type: text }
      qty: { field: qty, type: int64 }
    children:
      - table: order_lines
        field: lines
        columns:
          item:  { field: item, type: text }
          price: { field: price, type: numeric }
          rest:  { field: "*", type: jsonb }
      - table: order_notes
        field: notes
        key: n
        columns:
          n:    { field: n, type: int64 }
          text: { field: text, type: text }
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--kind", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--capture", default="auto", help="the PostgreSQL node's capture (auto|logical|triggers)")
    a = ap.parse_args()
    work = os.path.abspath(a.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    uri = astest.mongo_uri(os.path.join(work, "mongo-server"))
    from pymongo import MongoClient
    from bson.son import SON
    from bson.decimal128 import Decimal128
    from bson.int64 import Int64
    mc = MongoClient(uri, serverSelectionTimeoutMS=10000, document_class=SON)
    m = mc["nested"]["customers"]
    pg_admin = astest.start_pg(os.path.join(work, "pg-server")) if a.kind == "postgres" else None
    db = SqlDb(a.kind, os.path.join(work, "lite.db"), pg_admin, "nested1", a.capture)
    cfg = astest.write_config(work, [astest.node_yaml("mongo", "mongodb", uri=uri, database="nested"),
                                     db.node_yaml("sql")], [("customers", MAPPING)])
    log = open(os.path.join(work, "connector.log"), "a")

    def run():
        return subprocess.run([a.bin, "run", "-c", cfg, "--exit-when-idle", "2s"], stdout=log, stderr=log,
                              timeout=120).returncode

    sql = db.sql

    def price(v):
        return None if v is None else str(v)

    def lines(cid, sku):
        return [(p, i, price(pr), db.json(r)) for (p, i, pr, r) in
                sql("select position, item, price, rest from order_lines where orders_customers_id = ? and "
                    "orders_sku = ? order by position", (cid, sku))]

    def notes(cid, sku):
        return sql("select n, position, text from order_notes where orders_customers_id = ? and orders_sku = ? "
                   "order by position", (cid, sku))

    def count(table):
        return sql("select count(*) from %s" % table)[0][0]

    def doc(cid):
        return m.find_one({"_id": cid})

    ddl = astest.cli(a.bin, cfg, "check")
    check("check prints the nested table's DDL with its foreign key to the child table",
          '"order_lines"' in ddl.stdout and 'REFERENCES "orders" ("customers_id", "sku")' in ddl.stdout,
          ddl.stdout[-1200:] + ddl.stderr[-400:])
    check("install", astest.cli(a.bin, cfg, "install").returncode == 0)

    # ---- MongoDB -> SQL
    c1 = SON([("_id", "c1"), ("name", "Ann"),
              ("orders", [SON([("sku", "a"), ("qty", 1),
                               ("lines", [SON([("item", "pen"), ("price", Decimal128("1.50"))]),
                                          SON([("item", "ink"), ("colour", "blue"), ("price", Decimal128("2"))])]),
                               ("notes", [SON([("n", 1), ("text", "fragile")])]), ("gift", True)]),
                          SON([("sku", "b"), ("qty", 2)])]),
              ("since", 2019)])
    m.insert_one(c1)
    m.insert_one(SON([("_id", "c2"), ("name", "Bob"), ("orders", [SON([("sku", "a"), ("lines", [])])])]))
    check("first run", run() == 0)
    check("insert: inner rows by position, values and inner catch-all", lines("c1", "a") ==
          [(0, "pen", "1.50", None), (1, "ink", "2", {"colour": "blue"})], lines("c1", "a"))
    check("insert: inner rows by key", notes("c1", "a") == [(1, 0, "fragile")], notes("c1", "a"))
    check("an outer element without inner arrays, and [] inside: no inner rows",
          lines("c1", "b") == [] and lines("c2", "a") == [] and count("orders") == 3,
          (lines("c1", "b"), lines("c2", "a"), count("orders")))
    m.update_one({"_id": "c1"}, {"$push": {"orders.0.lines": SON([("item", "pad"), ("price", Decimal128("0.5"))])}})
    run()
    check("$push into an inner array: a row at its end", lines("c1", "a")[2:] == [(2, "pad", "0.5", None)],
          lines("c1", "a"))
    m.update_one({"_id": "c1"}, {"$set": {"orders.0.lines.1.item": "ink2"}})
    run()
    check("$set orders.0.lines.1.item: that inner row only", lines("c1", "a") ==
          [(0, "pen", "1.50", None), (1, "ink2", "2", {"colour": "blue"}), (2, "pad", "0.5", None)],
          lines("c1", "a"))
    m.update_one({"_id": "c1"}, {"$unset": {"orders.0.lines.1.colour": ""}})
    run()
    check("$unset of an inner field held by the inner catch-all", lines("c1", "a")[1] == (1, "ink2", "2", None),
          lines("c1", "a"))
    m.update_one({"_id": "c1"}, {"$pull": {"orders.0.lines": {"item": "pen"}}})
    run()
    check("$pull from an inner array: the row goes, positions follow",
          lines("c1", "a") == [(0, "ink2", "2", None), (1, "pad", "0.5", None)], lines("c1", "a"))
    m.update_one({"_id": "c1"}, {"$push": {"orders.1.notes": SON([("n", 5), ("text", "call"), ("by", "m")])}})
    run()
    check("$push into another outer element's inner array", notes("c1", "b") == [(5, 0, "call")],
          notes("c1", "b"))
    m.update_one({"_id": "c1"}, {"$set": {"orders.0.notes": []}})
    run()
    check("an inner array emptied", notes("c1", "a") == [], notes("c1", "a"))
    m.insert_one(SON([("_id", "bad"), ("name", "B"), ("orders", [SON([("sku", "a"), ("lines", [{"item": "x"}, 7])])])]))
    run()
    dl = json.loads(astest.cli(a.bin, cfg, "dlq", "list", "--json").stdout or "[]")
    errs = " | ".join(x.get("error") or "" for x in dl)
    check("an inner element that is not a document: a dead letter naming orders.0.lines.1",
          "orders.0.lines.1" in errs and "not a document" in errs, errs[:600])
    check("its parent row still syncs", sql("select name from customers where id = 'bad'") == [("B",)],
          sql("select * from customers where id = 'bad'"))
    m.delete_one({"_id": "bad"})
    m.update_one({"_id": "c2"}, {"$pull": {"orders": {"sku": "a"}}})
    m.insert_one(SON([("_id", "c3"), ("orders", [SON([("sku", "z"), ("lines", [{"item": "q"}])])])]))
    run()
    m.delete_one({"_id": "c3"})
    run()
    check("an outer element removed, a document deleted: their inner rows go",
          sql("select count(*) from order_lines where orders_customers_id in ('c2', 'c3')") == [(0,)] and
          sql("select count(*) from orders where customers_id in ('c2', 'c3')") == [(0,)])

    # many documents at once (the sink's runs: new parents by COPY, then existing ones in bulk)
    many = [SON([("_id", "n%02d" % i), ("name", "N%d" % i),
                 ("orders", [SON([("sku", "s%d" % j), ("qty", j),
                                  ("lines", [SON([("item", "i%d.%d.%d\t\\x" % (i, j, k)), ("price", Decimal128("%d.5" % k))])
                                             for k in range((i + j) % 3)])]) for j in range(i % 3)])])
            for i in range(30)]
    m.insert_many(many)
    run()

    def want_lines(d):
        return {(o["sku"], k): (li["item"], str(li["price"].to_decimal()))
                for o in d["orders"] for k, li in enumerate(o.get("lines", []))}

    def all_want():
        return {("n%02d" % i, k[0], k[1]): v for i, d in enumerate(m.find({"_id": {"$regex": "^n"}}, sort=[("_id", 1)]))
                for k, v in want_lines(d).items()}

    def all_got():
        return {(cid, sku, p): (it, str(pr)) for (cid, sku, p, it, pr) in
                sql("select orders_customers_id, orders_sku, position, item, price from order_lines "
                    "where orders_customers_id like ?", ("n%",))}

    check("30 new documents at once: every inner row, tab and backslash kept", all_got() == all_want(),
          sorted(set(all_got().items()) ^ set(all_want().items()))[:4])
    m.update_many({"_id": {"$regex": "^n"}, "orders.0": {"$exists": True}},
                  {"$push": {"orders.0.lines": SON([("item", "more"), ("price", Decimal128("9"))])},
                   "$set": {"orders.0.qty": 100}})
    run()
    check("30 documents' inner arrays changed at once", all_got() == all_want() and len(all_want()) > 30,
          sorted(set(all_got().items()) ^ set(all_want().items()))[:4])

    # ---- SQL -> MongoDB
    before = doc("c1")
    sql("insert into order_lines (orders_customers_id, orders_sku, position, item, price, rest) "
        "values ('c1', 'b', 0, 'cap', 3.25, '{\"size\": 2}')")
    run()
    d = doc("c1")
    check("SQL inner insert: the inner element appears in its outer element, the rest as it was",
          d["orders"][1] == SON([("sku", "b"), ("qty", 2), ("notes", [SON([("n", 5), ("text", "call"), ("by", "m")])]),
                                 ("lines", [SON([("item", "cap"), ("price", Decimal128("3.25")), ("size", 2)])])]) and
          d["orders"][0]["gift"] is True and d["name"] == "Ann" and d["since"] == 2019 and
          list(d.keys()) == list(before.keys()), d)
    sql("update order_lines set item = 'ink3' where orders_customers_id = 'c1' and orders_sku = 'a' and position = 0")
    run()
    d = doc("c1")
    check("SQL inner update: that inner field; types and the outer element's other fields kept",
          d["orders"][0]["lines"][0] == SON([("item", "ink3"), ("price", Decimal128("2"))]) and
          d["orders"][0]["gift"] is True and type(d["orders"][0]["qty"]) is int and
          not isinstance(d["orders"][0]["qty"], Int64), d)
    sql("delete from order_lines where orders_customers_id = 'c1' and orders_sku = 'a' and position = 1")
    run()
    d = doc("c1")
    check("SQL inner delete: the inner element removed", [x["item"] for x in d["orders"][0]["lines"]] == ["ink3"], d)
    db.txn(["insert into customers (id, name) values ('s1', 'Sue')",
            "insert into orders (customers_id, position, sku, qty) values ('s1', 0, 'p', 1)",
            "insert into order_lines (orders_customers_id, orders_sku, position, item) values ('s1', 'p', 0, 'x')",
            "insert into order_lines (orders_customers_id, orders_sku, position, item) values ('s1', 'p', 1, 'y')",
            "insert into order_notes (orders_customers_id, orders_sku, n, position) values ('s1', 'p', 9, 0)"])
    run()
    check("SQL parent, child and inner rows in one transaction: one document with both levels",
          doc("s1") == SON([("_id", "s1"), ("name", "Sue"),
                            ("orders", [SON([("sku", "p"), ("qty", 1),
                                             ("lines", [SON([("item", "x")]), SON([("item", "y")])]),
                                             ("notes", [SON([("n", 9)])])])])]), doc("s1"))
    db.txn(["delete from order_lines where orders_customers_id = 's1'",
            "delete from order_notes where orders_customers_id = 's1'",
            "delete from orders where customers_id = 's1'", "delete from customers where id = 's1'"])
    run()
    check("SQL delete of all three levels: the document deleted", doc("s1") is None, doc("s1"))

    # ---- verify covers the inner rows
    def verify(*args):
        return verify_json(a.bin, cfg, *args)

    rc, rep, errtxt = verify()
    check("verify: equal", rc == 0 and rep and all(p["equal"] for p in rep),
          "%d %s %s" % (rc, json.dumps(rep)[:500], errtxt[-500:]))
    drift = ["update order_lines set item = 'drift' where orders_customers_id = 'c1' and orders_sku = 'b'"]
    if a.kind == "sqlite":  # behind the connector's back: without the capture trigger
        drift = ['drop trigger "_arraysync_order_lines_upd"'] + drift
    else:
        drift = ["set session_replication_role = replica"] + drift
    db.txn(drift)
    rc, rep, errtxt = verify()
    check("verify: an inner row changed behind the connector's back shows as its document differing",
          rc == 3 and rep and rep[0]["different"] == ["c1"], "%d %s %s" % (rc, json.dumps(rep)[:600], errtxt[-300:]))
    rc, rep, errtxt = verify("--repair", "--prefer", "mongo")
    check("verify --repair brings the inner row back", rc == 0 and lines("c1", "b")[0][1] == "cap",
          "%d %s %s" % (rc, lines("c1", "b"), errtxt[-300:]))
    astest.cli(a.bin, cfg, "install")
    m.update_one({"_id": "c1"}, {"$set": {"name": "Ann2"}})
    run()
    check("the document after all of it", doc("c1") == SON([
        ("_id", "c1"), ("name", "Ann2"),
        ("orders", [SON([("sku", "a"), ("qty", 1), ("lines", [SON([("item", "ink3"), ("price", Decimal128("2"))])]),
                         ("gift", True)]),
                    SON([("sku", "b"), ("qty", 2), ("notes", [SON([("n", 5), ("text", "call"), ("by", "m")])]),
                         ("lines", [SON([("item", "cap"), ("price", Decimal128("3.25")), ("size", 2)])])])]),
        ("since", 2019)]), doc("c1"))

    # ---- the first copy from SQL: documents with both levels, into an empty collection
    w2 = os.path.join(work, "fromsql")
    os.makedirs(w2)
    db2 = SqlDb(a.kind, os.path.join(w2, "lite.db"), pg_admin, "nested2", a.capture)
    cfg2 = astest.write_config(w2, [astest.node_yaml("mongo", "mongodb", uri=uri, database="nested2"),
                                    db2.node_yaml("sql")], [("customers", MAPPING)])
    check("install (second configuration)", astest.cli(a.bin, cfg2, "install").returncode == 0)
    db2.txn(["insert into customers (id, name) values ('p1', 'Pat')",
             "insert into orders (customers_id, position, sku, qty) values ('p1', 1, 'y', 2)",
             "insert into orders (customers_id, position, sku, qty) values ('p1', 0, 'x', 1)",
             "insert into order_lines (orders_customers_id, orders_sku, position, item) values ('p1', 'x', 1, 'b')",
             "insert into order_lines (orders_customers_id, orders_sku, position, item, price) "
             "values ('p1', 'x', 0, 'a', 1.25)",
             "insert into order_notes (orders_customers_id, orders_sku, n, position, text) values ('p1', 'y', 3, 0, 'n')"])
    r = subprocess.run([a.bin, "run", "-c", cfg2, "--exit-when-idle", "2s"], stdout=log, stderr=log, timeout=120)
    got = mc["nested2"]["customers"].find_one({"_id": "p1"})
    check("first copy from SQL: a document with both levels, in position order",
          r.returncode == 0 and got == SON([
              ("_id", "p1"), ("name", "Pat"),
              ("orders", [SON([("sku", "x"), ("qty", 1),
                               ("lines", [SON([("item", "a"), ("price", Decimal128("1.25"))]), SON([("item", "b")])])]),
                          SON([("sku", "y"), ("qty", 2), ("notes", [SON([("n", 3), ("text", "n")])])])])]), got)
    mc.drop_database("nested2")
    mc.drop_database("nested")
    mc.close()
    print("children_nested: %s" % ("all passed" if not results["failed"] else "%d failed" % results["failed"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

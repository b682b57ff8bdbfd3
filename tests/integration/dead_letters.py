#!/usr/bin/python3
"""Rows that cannot be written as they are become dead letters that say why and keep their
payload (MongoDB through its URI only, and SQLite):
  - SQL -> MongoDB: a NULL in a `required: true` column (the document would lack the field);
  - SQL -> MongoDB: a catch-all holding a field at a mapped column's own path (the document
    cannot hold both values);
  - SQL -> MongoDB: a row larger than MongoDB's 16 MiB document limit;
  - MongoDB -> SQL: a string that is not UTF-8 (the payload kept as the document's bytes, and
    `dlq retry` reads it back and fails the same way);
  - MongoDB -> SQL: a key of another type than the key column's (the dead letter shows the
    document's key);
and the rows around them flow.

usage: dead_letters.py --bin build/arraysync --work DIR"""
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
  id:    { field: _id, type: text }
  a:     { field: a,   type: text, required: true }
  b:     { field: b,   type: text }
  extra: { field: "*", type: jsonb }
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    work = os.path.abspath(a.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    uri = astest.mongo_uri(os.path.join(work, "mongo-server"))
    from pymongo import MongoClient
    import bson
    from bson.raw_bson import RawBSONDocument
    mc = MongoClient(uri, serverSelectionTimeoutMS=10000)
    m = mc["deadletters"]["items"]
    lite = os.path.join(work, "lite.db")
    con = sqlite3.connect(lite)  # a table of the user's, without NOT NULL on the required column
    con.execute("create table items (id text primary key, a text, b text, extra text)")
    con.commit()
    con.close()
    cfg = astest.write_config(work, [astest.node_yaml("mongo", "mongodb", uri=uri, database="deadletters"),
                                     astest.node_yaml("lite", "sqlite", path=lite)], [("items", MAPPING)])
    log = open(os.path.join(work, "connector.log"), "a")

    def run():
        return subprocess.run([a.bin, "run", "-c", cfg, "--exit-when-idle", "2s"], stdout=log, stderr=log,
                              timeout=120).returncode

    def lite_sql(sql, params=()):
        c = sqlite3.connect(lite, timeout=30)
        try:
            rows = c.execute(sql, params).fetchall()
            c.commit()
            return rows
        finally:
            c.close()

    check("install", astest.cli(a.bin, cfg, "install").returncode == 0)
    # read by the first copy (snapshot): a string that is not UTF-8, a field name that is not
    s_raw = bson.BSON.encode({"_id": "s2", "a": "PLACEHOLDERX"}).replace(b"PLACEHOLDERX", b"bad\xff\xfeUTF8abc")
    m.insert_one(RawBSONDocument(s_raw))
    n_raw = bson.BSON.encode({"_id": "s3", "a": "x", "fPLACEHOLDER": "y"}).replace(b"fPLACEHOLDER", b"f\xffLACEHOLDER")
    m.insert_one(RawBSONDocument(n_raw))
    check("first run", run() == 0)
    lite_sql("insert into items values ('r1', NULL, 'b1', NULL)")
    lite_sql("insert into items values ('c1', 'x', 'b', ?)", ('{"a": "y", "q": 1}',))
    lite_sql("insert into items values ('ok1', 'fine', NULL, NULL)")
    lite_sql("insert into items values ('big1', ?, NULL, NULL)", ("y" * (17 * 1024 * 1024),))
    raw = bson.BSON.encode({"_id": "u2", "a": "PLACEHOLDERX"}).replace(b"PLACEHOLDERX", b"bad\xff\xfeUTF8abc")
    m.insert_one(RawBSONDocument(raw))
    m.insert_one({"_id": 5, "a": "int key"})
    m.insert_one({"_id": "ok2", "a": "fine too"})
    check("second run", run() == 0)
    docs = {d["_id"]: d for d in m.find({"_id": {"$in": ["r1", "c1", "ok1"]}})}
    check("required NULL: no document", "r1" not in docs, str(docs.get("r1")))
    check("catch-all collision: no document", "c1" not in docs, str(docs.get("c1")))
    check("a good row flows (no null for the NULL column)", docs.get("ok1") == {"_id": "ok1", "a": "fine"},
          str(docs.get("ok1")))
    check("a good document flows", lite_sql("select id, a from items where id = 'ok2'") == [("ok2", "fine too")])
    dl = json.loads(astest.cli(a.bin, cfg, "dlq", "list", "--json").stdout or "[]")
    by = {}
    for x in dl:
        by[x.get("key") or ""] = x
    r1 = next((x for k, x in by.items() if '"r1"' in k), None)
    check("required NULL: a dead letter naming the column", r1 is not None and 'column "a"' in (r1.get("error") or "")
          and "required" in r1["error"], json.dumps(dl)[:600])
    c1 = next((x for k, x in by.items() if '"c1"' in k), None)
    check("catch-all collision: a dead letter naming both columns", c1 is not None and
          'column "extra"' in (c1.get("error") or "") and 'column "a"' in c1["error"], json.dumps(dl)[:600])
    u2 = next((x for k, x in by.items() if '"u2"' in k), None)
    check("invalid UTF-8: a dead letter with its payload", u2 is not None and "UTF-8" in (u2.get("error") or "") and
          (u2.get("raw") or "").startswith("bson-hex:") and raw.hex() in u2["raw"], json.dumps(u2)[:600])
    s2 = next((x for k, x in by.items() if '"s2"' in k), None)
    check("first copy, invalid UTF-8: a dead letter with its payload", s2 is not None and
          (s2.get("raw") or "").startswith("bson-hex:") and s_raw.hex() in s2["raw"], json.dumps(s2)[:600])
    s3 = next((x for k, x in by.items() if '"s3"' in k), None)
    check("a field name that is not UTF-8: named with \\xFF in a message that is UTF-8 text",
          s3 is not None and 'field "f\\xFFLACEHOLDER"' in (s3.get("error") or "") and
          n_raw.hex() in (s3.get("raw") or ""), json.dumps(s3)[:600])
    big = next((x for k, x in by.items() if '"big1"' in k), None)
    check("a row larger than MongoDB's document limit: a dead letter saying so, not a stopped stream",
          big is not None and "limit of 16777216" in (big.get("error") or "") and
          "big1" not in [d["_id"] for d in m.find({}, {"_id": 1})], json.dumps(big)[:400])
    # the same row alone in its batch (the bulk opened for it stays empty), then a good one
    lite_sql("insert into items values ('big2', ?, NULL, NULL)", ("z" * (17 * 1024 * 1024),))
    check("third run (a big row alone)", run() == 0)
    lite_sql("insert into items values ('ok3', 'after', NULL, NULL)")
    check("fourth run", run() == 0)
    ids = [d["_id"] for d in m.find({}, {"_id": 1})]
    dl_b = json.loads(astest.cli(a.bin, cfg, "dlq", "list", "--json").stdout or "[]")
    check("a big row alone in its batch: a dead letter, and the next row flows",
          "ok3" in ids and "big2" not in ids and
          any('"big2"' in (x.get("key") or "") and "limit of 16777216" in (x.get("error") or "") for x in dl_b),
          "%s %s" % (ids, json.dumps(dl_b)[:600]))
    # SQLite text that is not UTF-8 (another client's): a dead letter naming the key; the fix
    # of the value (its old image still holds the bytes) flows
    lite_sql("insert into items values ('u8', cast(x'41c328' as text), 'b0', NULL)")
    check("fifth run (text that is not UTF-8)", run() == 0)
    dl_u = json.loads(astest.cli(a.bin, cfg, "dlq", "list", "--json").stdout or "[]")
    check("SQLite text that is not UTF-8: a dead letter naming the key",
          any('"u8"' in (x.get("key") or "") and "UTF-8" in (x.get("error") or "") for x in dl_u),
          json.dumps(dl_u)[-600:])
    lite_sql("update items set a = 'now valid' where id = 'u8'")
    check("sixth run (the fix)", run() == 0)
    check("the fixed row flows whole", m.find_one({"_id": "u8"}) == {"_id": "u8", "a": "now valid", "b": "b0"},
          str(m.find_one({"_id": "u8"})))
    k5 = next((x for k, x in by.items() if "5" in k and "_id" in k), None)
    check("a key of another type: the dead letter shows the document's key", k5 is not None, json.dumps(dl)[:800])
    r = astest.cli(a.bin, cfg, "dlq", "retry")
    dl2 = json.loads(astest.cli(a.bin, cfg, "dlq", "list", "--json").stdout or "[]")
    u2b = next((x for x in dl2 if '"u2"' in (x.get("key") or "")), None)
    check("dlq retry: the payload read back fails the same way and is kept",
          u2b is not None and "UTF-8" in (u2b.get("error") or "") and u2b.get("raw") == u2["raw"] if u2 else False,
          json.dumps(u2b)[:600] + r.stdout[-300:])
    mc.drop_database("deadletters")
    mc.close()
    print("dead_letters: %s" % ("all passed" if not results["failed"] else "%d failed" % results["failed"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

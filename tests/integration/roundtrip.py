#!/usr/bin/python3
"""Nothing changes that nobody changed: random MongoDB documents of every BSON type and shape
go to PostgreSQL and SQLite and back through every write path, and the documents stay byte
for byte what they were, except for what a test step changed on purpose (then only that field
differs, in the BSON type it had where the new value fits it).

Documents: mapped columns of every kind (text, int64 fed by int32 / int64 / integral doubles,
double fed by doubles (-0.0, subnormal, integral) and int32, numeric fed by Decimal128 with
trailing zeros, exponents and negative zero, timestamps before 1970, booleans, a dotted path
into a sub-document that may be missing, null or empty, a json column) and a catch-all that
holds everything else: ObjectId, binary of several subtypes, regex, timestamp, MinKey, MaxKey,
code with and without scope, Decimal128, int32 vs int64, nested documents in random key order,
sub-documents that look like extended JSON (`{"$oid": ...}`, `{"$numberLong": ...}`), field
names that are empty or hold dots (also at the top level) or start with `$`, arrays,
null vs missing, and a few documents with a NUL byte in a mapped text (a dead letter towards
PostgreSQL: that document must stay untouched too).

Paths, each followed by the byte comparison of every document:
  1. the first run of MongoDB + PostgreSQL + SQLite (peer-to-peer), SQL sides empty
  2. run --resnapshot
  3. SQL writers change one column of some rows (PostgreSQL: n, SQLite: name, score), then
     a member inside the json column (PostgreSQL jsonb_set, SQLite json_set: its JSON subtype
     must not reach the changelog) and a new catch-all field, among dotted, empty and `$` names;
     the json column set to JSON null (a null field) and to SQL NULL (no field)
  4. conflicts: the same column changed on MongoDB and on SQLite while the connector is
     stopped, either side newer (write-back of the winner, repair of the loser)
  5. drift in a SQLite row behind the connector's back, then verify --repair
  6. a dead letter's document fixed in MongoDB, then dlq retry

usage: roundtrip.py --bin build/arraysync --work DIR [--docs 150] [--seed N] [--capture triggers]"""
import argparse
import datetime
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import astest  # noqa: E402
from astest import check, results  # noqa: E402

MAPPING = """mapping: docs
collection: docs
table: docs
key: id
columns:
  id:    { field: _id, type: text }
  name:  { field: name, type: text }
  n:     { field: n, type: int64 }
  score: { field: score, type: double }
  price: { field: price, type: numeric }
  at:    { field: at, type: timestamptz }
  flag:  { field: flag, type: boolean }
  city:  { field: addr.city, type: text }
  meta:  { field: meta, type: jsonb }
  rest:  { field: "*", type: jsonb }
"""


class Gen:
    """Random BSON values (pymongo types)."""

    def __init__(self, rnd):
        import bson
        self.b, self.r = bson, rnd

    def text(self):
        r = self.r
        alphabet = "abcxyz ÄÖü日本語✓😀\t\n\\\"'$.{}"
        return "".join(r.choice(alphabet) for _ in range(r.randrange(0, 12)))

    def decimal(self):
        from bson.decimal128 import Decimal128
        return Decimal128(self.r.choice(["1.50", "-0", "-0.00", "0E-10", "1.23E+20", "1E-30", "100", "2.5000",
                                         "-12345678901234567890.123456789", "7"]))

    def double(self):
        return self.r.choice([0.0, -0.0, 1.5, 3.0, -2.0, 1e308, 5e-324, 0.1, 123456789.125, 2.0 ** 53])

    def scalar(self, depth):
        b, r = self.b, self.r
        from bson.int64 import Int64
        k = r.randrange(20)
        if k == 0:
            return b.ObjectId()
        if k == 1:
            return b.Binary(bytes(r.randrange(256) for _ in range(r.randrange(0, 9))), r.choice([0, 5, 0x80]))
        if k == 2:
            import uuid
            return b.Binary(uuid.UUID(int=r.getrandbits(128)).bytes, 4)
        if k == 3:
            return b.Regex("^a.*b$", r.choice(["", "i", "ims"]))
        if k == 4:
            return b.Timestamp(r.randrange(1, 2 ** 31), r.randrange(1, 100))
        if k == 5:
            return r.choice([b.MinKey(), b.MaxKey()])
        if k == 6:
            return b.Code("function() { return 1; }")
        if k == 7:
            return b.Code("function() { return x; }", {"x": r.randrange(10)})
        if k == 8:
            return self.decimal()
        if k == 9:
            return Int64(r.randrange(-2 ** 63, 2 ** 63))
        if k == 10:
            return r.randrange(-2 ** 31, 2 ** 31)
        if k == 11:
            return self.double()
        if k == 12:
            return datetime.datetime(1900, 1, 1) + datetime.timedelta(milliseconds=r.randrange(0, 6 * 10 ** 12))
        if k == 13:
            return None
        if k == 14:
            return r.choice([True, False])
        if k == 15:  # looks like extended JSON, is a document
            return r.choice([{"$oid": "65a0b1c2d3e4f50617283940"}, {"$numberLong": "5"}, {"$date": 0},
                             {"$regex": "x", "$options": ""}, {"$$x": 1}])
        if k in (16, 17) and depth < 3:
            return self.subdoc(depth + 1)
        if k == 18 and depth < 3:
            return [self.scalar(depth + 1) for _ in range(r.randrange(0, 4))]
        return self.text()

    def subdoc(self, depth):
        from bson.son import SON
        keys = ["q", "b", "a", "z", "$k", "m.n", "", "x y", "ü"]
        self.r.shuffle(keys)
        return SON((k, self.scalar(depth)) for k in keys[:self.r.randrange(0, 5)])

    def jsonish(self, depth=0):
        """A value for the json column: JSON-natural types and sub-documents."""
        r = self.r
        k = r.randrange(8)
        if k == 0:
            return r.randrange(-1000, 1000)
        if k == 1:
            return r.choice([1.5, 2.0, -0.5])
        if k == 2:
            return self.text()
        if k == 3:
            return r.choice([True, False, None])
        if k in (4, 5) and depth < 3:
            from bson.son import SON
            keys = ["b", "a", "c", "$x", "d"]
            r.shuffle(keys)
            return SON((kk, self.jsonish(depth + 1)) for kk in keys[:r.randrange(0, 4)])
        if k == 6 and depth < 3:
            return [self.jsonish(depth + 1) for _ in range(r.randrange(0, 3))]
        return self.scalar(depth + 1)

    def document(self, i):
        from bson.son import SON
        from bson.int64 import Int64
        r = self.r
        fields = []

        def maybe(name, make):  # missing, null or a value
            k = r.randrange(10)
            if k == 0:
                return
            fields.append((name, None if k == 1 else make()))

        maybe("name", lambda: self.text() + ("\x00nul" if i % 37 == 5 else ""))
        maybe("n", lambda: r.choice([r.randrange(-2 ** 31, 2 ** 31), Int64(r.randrange(-2 ** 62, 2 ** 62)),
                                     float(r.randrange(-2 ** 40, 2 ** 40))]))
        maybe("score", lambda: r.choice([self.double(), r.randrange(-1000, 1000)]))
        maybe("price", self.decimal)
        maybe("at", lambda: datetime.datetime(1900, 1, 1) + datetime.timedelta(milliseconds=r.randrange(0, 6 * 10 ** 12)))
        maybe("flag", lambda: r.choice([True, False]))
        maybe("addr", lambda: r.choice([SON(), SON([("zip", "123"), ("city", self.text())]),
                                        SON([("city", self.text())]), SON([("city", None), ("x", 1)])]))
        maybe("meta", self.jsonish)
        for j in range(r.randrange(0, 5)):
            fields.append(("f%d" % r.randrange(100), self.scalar(0)))
        if r.randrange(8) == 0:
            fields.append((r.choice(["a.b", "", "x.", ".y"]), self.scalar(0)))
        r.shuffle(fields)
        return SON([("_id", "d%03d" % i)] + fields)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--docs", type=int, default=150)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--capture", default="auto", help="the PostgreSQL node's capture (auto|logical|triggers)")
    a = ap.parse_args()
    work = os.path.abspath(a.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    print("roundtrip: seed %d, %d documents, PostgreSQL capture %s" % (a.seed, a.docs, a.capture), flush=True)
    rnd = random.Random(a.seed)
    gen = Gen(rnd)
    uri = astest.mongo_uri(os.path.join(work, "mongo-server"))
    from pymongo import MongoClient
    from bson.raw_bson import RawBSONDocument
    from bson.son import SON
    from bson.int64 import Int64
    import bson
    mc = MongoClient(uri, serverSelectionTimeoutMS=10000)
    m = mc["roundtrip"]["docs"]
    m.drop()
    raw_coll = m.with_options(codec_options=m.codec_options.with_options(document_class=RawBSONDocument))
    from bson.binary import UuidRepresentation
    son_opts = bson.CodecOptions(document_class=SON, uuid_representation=UuidRepresentation.STANDARD)
    pg_admin = astest.start_pg(os.path.join(work, "pg-server"))
    dsn = astest.fresh_pg_db(pg_admin, "roundtrip")
    lite = os.path.join(work, "lite.db")
    cfg = astest.write_config(work, [astest.node_yaml("mongo", "mongodb", uri=uri, database="roundtrip"),
                                     astest.node_yaml("pg", "postgres", dsn=dsn, capture=a.capture),
                                     astest.node_yaml("lite", "sqlite", path=lite)], [("docs", MAPPING)])
    log = open(os.path.join(work, "connector.log"), "a")

    def run(*extra):
        return subprocess.run([a.bin, "run", "-c", cfg, "--exit-when-idle", "2s"] + list(extra), stdout=log,
                              stderr=log, timeout=300).returncode

    def raw_docs():
        return {d["_id"]: d.raw for d in raw_coll.find({})}

    def differing(expect, got):
        return [k for k in sorted(set(expect) | set(got)) if expect.get(k) != got.get(k)]

    def show(expect, got, keys):
        """What differs in the first documents: missing, order, and fields (value and type)."""
        out = []
        for k in keys[:3]:
            if k not in expect or k not in got:
                out.append("%s only %s" % (k, "expected" if k in expect else "found"))
                continue
            e, g = bson.decode(expect[k], son_opts), bson.decode(got[k], son_opts)
            f = ["%s: expected %r (%s) got %r (%s)" % (n, e.get(n), type(e.get(n)).__name__, g.get(n),
                                                      type(g.get(n)).__name__)
                 for n in list(e) + [n for n in g if n not in e]
                 if n not in e or n not in g or
                 bson.encode({"v": e[n]}, codec_options=son_opts) != bson.encode({"v": g[n]}, codec_options=son_opts)]
            if not f and list(e) != list(g):
                f = ["field order: expected %s got %s" % (list(e), list(g))]
            if not f:  # equal once decoded: show the bytes where they part
                i = next((i for i, (x, y) in enumerate(zip(expect[k], got[k])) if x != y),
                         min(len(expect[k]), len(got[k])))
                f = ["bytes part at %d: expected ...%s got ...%s" % (i, expect[k][max(0, i - 24):i + 24].hex(),
                                                                    got[k][max(0, i - 24):i + 24].hex())]
            out.append("%s {%s}" % (k, "; ".join(f)))
        return " | ".join(out)

    def same_docs(name, expect):
        got = raw_docs()
        diff = differing(expect, got)
        check("%s: every MongoDB document byte for byte as expected (%d documents)" % (name, len(expect)),
              not diff, "%d differ: %s" % (len(diff), show(expect, got, diff)))
        return got

    docs = [gen.document(i) for i in range(a.docs)]
    # as raw BSON: this driver refuses `$` keys in sub-documents, which MongoDB 5.0+ stores
    m.insert_many([RawBSONDocument(bson.encode(d, check_keys=False)) for d in docs])
    original = raw_docs()
    check("install", astest.cli(a.bin, cfg, "install").returncode == 0)

    # 1. first run
    check("first run exits 0", run() == 0)
    same_docs("first run", original)
    pg_n = astest.pg_exec(dsn, "select count(*) from docs")[0][0]
    lite_n = sqlite3.connect(lite).execute("select count(*) from docs").fetchone()[0]
    nul = sum(1 for d in docs if "\x00" in (d.get("name") or ""))
    check("the SQL sides hold every document but those with a NUL in a text column (PostgreSQL)",
          pg_n == a.docs - nul and lite_n == a.docs, "pg %d lite %d docs %d nul %d" % (pg_n, lite_n, a.docs, nul))

    # 2. resnapshot
    check("run --resnapshot exits 0", run("--resnapshot") == 0)
    cur = same_docs("--resnapshot", original)

    # 3. SQL writers change one column
    on_sql = {r[0] for r in astest.pg_exec(dsn, "select id from docs")} & \
        {r[0] for r in sqlite3.connect(lite).execute("select id from docs")}

    def having(field, kinds, taken):  # documents on every node whose field holds a value of these types
        out = [k for k in sorted(cur) if k not in taken and k in on_sql
               and isinstance(bson.decode(cur[k]).get(field), kinds)]
        rnd.shuffle(out)
        return out

    expect = dict(cur)

    def expect_set(k, field, value):
        d = bson.decode(expect[k], son_opts)
        old = d.get(field)
        if isinstance(old, Int64):
            value = Int64(value)
        elif isinstance(old, float) and isinstance(value, int):
            value = float(value)
        elif isinstance(old, int) and not isinstance(old, bool) and isinstance(value, int) and \
                not -2 ** 31 <= value < 2 ** 31:
            value = Int64(value)
        d[field] = value
        expect[k] = bson.encode(d, codec_options=son_opts)

    taken = set()
    pg_ids = having("n", (int, float), taken)[:10]
    taken.update(pg_ids)
    score_ids = having("score", (int, float), taken)[:5]
    taken.update(score_ids)
    name_ids = having("name", str, taken)[:5]
    taken.update(name_ids)
    lite_ids = score_ids + name_ids
    for k in pg_ids:
        astest.pg_exec(dsn, "update docs set n = coalesce(n, 0) + 7 where id = %s", (k,))
        v = astest.pg_exec(dsn, "select n from docs where id = %s", (k,))[0][0]
        expect_set(k, "n", v)
    c = sqlite3.connect(lite)
    for j, k in enumerate(lite_ids):
        if k in name_ids:
            c.execute("update docs set name = ? where id = ?", ("renamed %d" % j, k))
            expect_set(k, "name", "renamed %d" % j)
        else:
            c.execute("update docs set score = 42 where id = ?", (k,))
            expect_set(k, "score", 42)
    c.commit()
    c.close()
    check("SQL changes: run exits 0", run() == 0)
    cur = same_docs("SQL changes of one column", expect)

    # 3b. SQL writers change inside the json column and the catch-all: only that path changes,
    # its siblings (dotted, empty and `$` names among them) keep their bytes and order
    expect = dict(cur)
    plain = ["q", "b", "a", "z", "mn", "x y", "ü", "m.n", "", "c", "d"]
    inner = []
    for k in sorted(cur):
        if k in taken or k not in on_sql:
            continue
        meta = bson.decode(cur[k], son_opts).get("meta")
        if isinstance(meta, dict) and "$" not in "".join(meta.keys()):
            inner.append(k)
    rnd.shuffle(inner)
    inner = inner[:12]
    taken.update(inner)
    c = sqlite3.connect(lite)
    for j, k in enumerate(inner):
        d = bson.decode(expect[k], son_opts)
        names = [n for n in d["meta"] if n in plain]
        name = names[0] if names and j % 3 else rnd.choice(["added", "m.n", ""])
        d["meta"][name] = "chg %d" % j
        top = rnd.choice(["zz", "y.z", ""]) if j % 2 == 0 and "" not in d and "y.z" not in d else None
        if top is not None:
            d[top] = "top %d" % j
        expect[k] = bson.encode(d, codec_options=son_opts)
        if j % 2 == 0:  # PostgreSQL, by jsonb path
            astest.pg_exec(dsn, "update docs set meta = jsonb_set(meta, %s, to_jsonb(%s::text)) where id = %s",
                           ([name], "chg %d" % j, k))
            if top is not None:
                astest.pg_exec(dsn, "update docs set rest = coalesce(rest, '{}'::jsonb) || "
                               "jsonb_build_object(%s::text, %s::text) where id = %s", (top, "top %d" % j, k))
        else:  # SQLite, by json1 path (a quoted label: dots and empty names are one part)
            c.execute("update docs set meta = json_set(meta, ?, ?) where id = ?",
                      ('$."%s"' % name, "chg %d" % j, k))
    # JSON null vs SQL NULL in the json column: a null field vs no field
    nulls = [k for k in sorted(cur) if k not in taken and k in on_sql][:6]
    rnd.shuffle(nulls)
    taken.update(nulls)
    for j, k in enumerate(nulls):
        d = bson.decode(expect[k], son_opts)
        if j % 3 == 2:
            d.pop("meta", None)
        else:
            d["meta"] = None
        expect[k] = bson.encode(d, codec_options=son_opts)
        value = "null" if j % 3 != 2 else None
        if j % 2 == 0:
            astest.pg_exec(dsn, "update docs set meta = %s::jsonb where id = %s", (value, k))
        else:
            c.execute("update docs set meta = ? where id = ?", (value, k))
    c.commit()
    c.close()
    check("json changes: run exits 0", run() == 0)
    cur = same_docs("SQL changes inside json columns (dotted and empty names, JSON null vs NULL)", expect)

    # 4. conflicts: one column changed on both sides while the connector is stopped
    expect = dict(cur)
    cids = having("name", str, taken)[:10]
    taken.update(cids)
    c = sqlite3.connect(lite)
    for j, k in enumerate(cids):
        mongo_newer = j % 2 == 0
        if mongo_newer:
            c.execute("update docs set name = ? where id = ?", ("lite " + k, k))
            c.commit()
            time.sleep(0.01)
            m.update_one({"_id": k}, {"$set": {"name": "mongo " + k}})
            expect_set(k, "name", "mongo " + k)
        else:
            m.update_one({"_id": k}, {"$set": {"name": "mongo " + k}})
            time.sleep(0.01)
            c.execute("update docs set name = ? where id = ?", ("lite " + k, k))
            c.commit()
            expect_set(k, "name", "lite " + k)
    c.close()
    check("conflicts: run exits 0", run() == 0)
    cur = same_docs("conflicts (write-back and repair)", expect)
    lite_names = dict(sqlite3.connect(lite).execute("select id, name from docs where id in (%s)" %
                                                    ",".join("'%s'" % k for k in cids)).fetchall())
    pg_names = dict(astest.pg_exec(dsn, "select id, name from docs where id = any(%s)", (cids,)))
    want = {k: ("lite " if j % 2 else "mongo ") + k for j, k in enumerate(cids)}
    check("conflicts: every node holds the later write", lite_names == want and pg_names == want,
          (lite_names, pg_names, want))

    # 5. drift behind the connector's back, verify --repair
    drift = having("name", str, taken)[:5]
    c = sqlite3.connect(lite)
    c.execute('drop trigger if exists "_arraysync_docs_upd"')
    for k in drift:
        c.execute("update docs set name = 'drifted', n = -1, meta = '{\"z\": 1}' where id = ?", (k,))
    c.commit()
    c.close()
    vr = astest.cli(a.bin, cfg, "verify", "--repair", timeout=300)
    check("verify --repair exits 0 or 3", vr.returncode in (0, 3), vr.stdout[-500:] + vr.stderr[-500:])
    cur = same_docs("verify --repair", cur)
    names = dict(sqlite3.connect(lite).execute("select id, name from docs where id in (%s)" %
                                               ",".join("'%s'" % k for k in drift)).fetchall())
    check("verify --repair: the drifted SQLite rows are repaired", all(v != "drifted" for v in names.values()),
          names)
    check("run after the repair exits 0", run() == 0)
    cur = same_docs("after the repair", cur)

    # 6. a dead letter (NUL towards PostgreSQL) fixed in MongoDB, then dlq retry
    bad = sorted(k for k in cur if "\x00" in (bson.decode(cur[k]).get("name") or ""))
    if bad:
        expect = dict(cur)
        for k in bad:
            m.update_one({"_id": k}, {"$set": {"name": "fixed"}})
            d = bson.decode(expect[k], son_opts)
            d["name"] = "fixed"
            expect[k] = bson.encode(d, codec_options=son_opts)
        check("dead letter fixed: run exits 0", run() == 0)
        astest.cli(a.bin, cfg, "dlq", "retry", "--all")
        check("dlq retry: run exits 0", run() == 0)
        cur = same_docs("dead letter fixed and retried", expect)
        rows = astest.pg_exec(dsn, "select id, name from docs where id = any(%s)", (bad,))
        check("the fixed documents reached PostgreSQL", sorted(rows) == [(k, "fixed") for k in bad], rows)
    vq = astest.cli(a.bin, cfg, "verify", timeout=300)
    check("verify: every pair equal at the end", vq.returncode == 0, vq.stdout[-800:] + vq.stderr[-300:])
    mc.drop_database("roundtrip")
    mc.close()
    nfail = results["failed"]
    print("roundtrip: %s" % ("all passed" if not nfail else "%d failed (seed %d)" % (nfail, a.seed)))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

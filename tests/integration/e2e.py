"""End-to-end tests of `arraysync run`: MongoDB <-> PostgreSQL or SQLite, both ways.

Drives MongoDB only through a URI (ARRAYSYNC_TEST_MONGODB_URI) with Debian's pymongo, the SQL
side through Python's sqlite3 module / the sqlite3 shell or psycopg2, and the connector as a
separate process (killed with SIGKILL in the convergence test).

usage: e2e.py --bin build/arraysync --sql sqlite:/path/x.db | --sql 'postgres:DSN' --work DIR
Prints one line per check and "N passed, N failed" at the end; exit 1 on any failure."""
import argparse
import decimal
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from bson.decimal128 import Decimal128
from pymongo import MongoClient

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--sql", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("--quick", action="store_true")
args = ap.parse_args()

URI = os.environ["ARRAYSYNC_TEST_MONGODB_URI"]
DB = "e2e_%d" % os.getpid()
KIND, _, TARGET = args.sql.partition(":")
results = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, (": " + detail) if detail and not ok else ""), flush=True)
    return ok


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# ---------- configuration ----------
os.makedirs(os.path.join(args.work, "mappings"), exist_ok=True)
MAPPING = """mapping: items
collection: items
table: items
key: id
columns:
  id:      { field: _id,          type: text }
  name:    { field: name,         type: text }
  qty:     { field: stock.qty,    type: bigint }
  price:   { field: price,        type: numeric }
  tags:    { field: tags,         type: jsonb }
  extra:   { field: "*",          type: jsonb }
conflict: { strategy: lww }
on_error: dead-letter
"""
with open(os.path.join(args.work, "mappings", "items.yaml"), "w") as f:
    f.write(MAPPING)
if KIND == "sqlite":
    node = "  sql:\n    kind: sqlite\n    path: \"%s\"\n" % TARGET
else:
    node = "  sql:\n    kind: postgres\n    dsn: \"%s\"\n" % TARGET
CFG = os.path.join(args.work, "arraysync.yaml")
METRICS = free_port()
with open(CFG, "w") as f:
    f.write("nodes:\n  mongo:\n    kind: mongodb\n    uri: \"%s\"\n    database: %s\n%s"
            "state: state.db\ntopology: { type: peer-to-peer }\nmappings: \"mappings/*.yaml\"\n"
            "batch: { max_rows: 500, max_latency: 10ms }\n" % (URI, DB, node))

mongo = MongoClient(URI)
items = mongo[DB]["items"]
# A connector killed inside a transaction leaves it open until the server's transaction
# lifetime passes (60 s by default); the kill -9 test shortens it as an operator could.
try:
    old_lifetime = mongo.admin.command("getParameter", 1, transactionLifetimeLimitSeconds=1)["transactionLifetimeLimitSeconds"]
    mongo.admin.command("setParameter", 1, transactionLifetimeLimitSeconds=2)
except Exception:
    old_lifetime = None


# ---------- the SQL side ----------
class Sqlite:
    def __init__(self, path):
        import sqlite3
        self.sqlite3 = sqlite3
        self.path = path

    def run(self, sql, params=()):
        con = self.sqlite3.connect(self.path, timeout=30)
        try:
            cur = con.execute(sql, params)
            rows = cur.fetchall()
            con.commit()
            return rows
        finally:
            con.close()

    def run_count(self, sql, params=()):
        con = self.sqlite3.connect(self.path, timeout=30)
        try:
            n = con.execute(sql, params).rowcount
            con.commit()
            return n
        finally:
            con.close()

    def shell(self, sql):  # another process: the sqlite3 command-line shell
        subprocess.run(["sqlite3", "-cmd", ".timeout 30000", self.path, sql], check=True,
                       capture_output=True)

    def changelog_max(self):
        return self.run("select coalesce(max(seq), 0) from _arraysync_changelog")[0][0]

    ph = "?"


class Postgres:
    def __init__(self, dsn):
        import psycopg2
        self.pg = psycopg2
        self.dsn = dsn

    def run(self, sql, params=()):
        con = self.pg.connect(self.dsn)
        try:
            cur = con.cursor()
            if params:
                cur.execute(sql.replace("?", "%s"), params)
            else:
                cur.execute(sql)
            rows = cur.fetchall() if cur.description else []
            con.commit()
            return rows
        finally:
            con.close()

    def run_count(self, sql, params=()):
        con = self.pg.connect(self.dsn)
        try:
            cur = con.cursor()
            cur.execute(sql.replace("?", "%s"), params)
            n = cur.rowcount
            con.commit()
            return n
        finally:
            con.close()

    def shell(self, sql):  # another process: psql
        subprocess.run(["psql", self.dsn, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True,
                       capture_output=True)

    def changelog_max(self):
        return self.run("select coalesce(max(seq), 0) from arraysync.changelog")[0][0]


sql = Sqlite(TARGET) if KIND == "sqlite" else Postgres(TARGET)


def norm_dec(v):
    if v is None:
        return None
    d = decimal.Decimal(str(v))
    return str(d.normalize()) if d == d.to_integral() or True else str(d)


def sql_rows():
    out = {}
    for r in sql.run("select id, name, qty, price from items"):
        out[r[0]] = (r[1], None if r[2] is None else int(r[2]), norm_dec(r[3]))
    return out


def mongo_rows():
    out = {}
    for d in items.find({}):
        price = d.get("price")
        if isinstance(price, Decimal128):
            price = price.to_decimal()
        out[d["_id"]] = (d.get("name"), (d.get("stock") or {}).get("qty"), norm_dec(price))
    return out


def wait_until(pred, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if pred():
                return True
        except Exception:
            pass
        time.sleep(0.1)
    return False


# ---------- the connector ----------
LOG = open(os.path.join(args.work, "connector.log"), "ab")


STARTED = []


def _stop_all():  # whatever happens to this script, no connector outlives it
    for p in STARTED:
        if p.poll() is None:
            p.kill()


import atexit  # noqa: E402

atexit.register(_stop_all)


def start(metrics=True):
    cmd = [args.bin, "run", "-c", CFG] + (["--log-level", os.environ["E2E_LOG_LEVEL"]] if os.environ.get("E2E_LOG_LEVEL") else [])
    if metrics:
        cmd += ["--metrics", "127.0.0.1:%d" % METRICS]
    p = subprocess.Popen(cmd, stdout=LOG, stderr=LOG)
    STARTED.append(p)
    return p


def cli(*a):
    return subprocess.run([args.bin] + list(a) + ["-c", CFG], capture_output=True, text=True)


def metric(name, labels):
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % METRICS, timeout=5).read().decode()
    total = 0
    for line in body.splitlines():
        if line.startswith(name + "{") and all('%s="%s"' % kv in line for kv in labels.items()):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


DEAD_KEYS = set()  # documents deliberately unmappable: they stay on their side only


def converged():
    s, m = sql_rows(), mongo_rows()
    for k in DEAD_KEYS:
        s.pop(k, None)
        m.pop(k, None)
    return s == m


# The user's own table, created before arraysync installs: compatible with the mapping, plus a
# UNIQUE constraint the connector knows nothing about (used for the apply-stage dead letters).
if KIND == "sqlite":
    sql.run("create table items (id TEXT NOT NULL PRIMARY KEY, name TEXT UNIQUE, qty INTEGER, "
            "price TEXT, tags TEXT, extra TEXT)")
else:
    sql.run("create table items (id text primary key, name text unique, qty bigint, "
            "price numeric, tags jsonb, extra jsonb)")

# 1. snapshot both ways: data on each side before the connector first runs
r = cli("install")
check("install", r.returncode == 0, r.stderr)
items.insert_many([{"_id": "m%03d" % i, "name": "mongo item %d" % i, "stock": {"qty": i},
                    "price": Decimal128("%d.25" % i), "tags": ["a", i], "color": "red"}
                   for i in range(300)])
for i in range(0, 200, 50):
    sql.shell("insert into items (id, name, qty, price) values " +
              ",".join("('s%03d', 'sql item %d', %d, %d.5)" % (j, j, j, j) for j in range(i, i + 50)))
conn = start()
ok = wait_until(lambda: len(sql_rows()) == 500 and len(mongo_rows()) == 500 and converged(), 60)
check("snapshot both ways (300 MongoDB docs + 200 SQL rows -> 500 on each side)", ok,
      "sql %d rows, mongo %d docs" % (len(sql_rows()), len(mongo_rows())))
doc = items.find_one({"_id": "s007"})
check("SQL row became a nested document", doc and doc.get("stock", {}).get("qty") == 7
      and doc.get("price") == Decimal128("7.5"), repr(doc))
extra = sql.run("select extra from items where id = 'm005'")[0][0]
extra = json.loads(extra) if isinstance(extra, str) else extra
check("unmapped field kept in the catch-all column", extra == {"color": "red"}, repr(extra))

# 2. MongoDB -> SQL: every operation
items.insert_one({"_id": "x1", "name": "new", "stock": {"qty": 1}, "price": Decimal128("9.99")})
items.update_one({"_id": "m001"}, {"$set": {"stock.qty": 1001, "name": "renamed"}})
items.update_one({"_id": "m002"}, {"$unset": {"name": ""}})
items.replace_one({"_id": "m003"}, {"name": "replaced", "stock": {"qty": 3}, "price": Decimal128("3")})
items.delete_one({"_id": "m004"})
ok = wait_until(lambda: sql_rows().get("x1") == ("new", 1, "9.99") and
                sql_rows().get("m001") == ("renamed", 1001, "1.25") and
                sql_rows().get("m002", ("?",))[0] is None and
                sql_rows().get("m003") == ("replaced", 3, "3") and "m004" not in sql_rows())
check("MongoDB insert/update/unset/replace/delete reach SQL", ok, repr({k: sql_rows().get(k) for k in ("x1", "m001", "m002", "m003", "m004")}))

# 3. SQL -> MongoDB, unmapped fields preserved
sql.shell("update items set name = 'from sql' where id = 'm005'")
sql.shell("insert into items (id, name, qty, price) values ('y1', 'sql new', 5, 5.5)")
sql.shell("delete from items where id = 'm006'")
ok = wait_until(lambda: (items.find_one({"_id": "m005"}) or {}).get("name") == "from sql" and
                items.find_one({"_id": "y1"}) is not None and items.find_one({"_id": "m006"}) is None)
check("SQL update/insert/delete reach MongoDB", ok)
d5 = items.find_one({"_id": "m005"})
check("SQL-originated update keeps fields no column maps", d5 and d5.get("color") == "red" and
      d5.get("tags") == ["a", 5] and d5["stock"]["qty"] == 5, repr(d5))

# 4. dead letters: a document that cannot be mapped; the rest flows on
items.insert_one({"_id": "bad1", "name": "bad", "stock": {"qty": "lots"}})
DEAD_KEYS.add("bad1")
items.insert_one({"_id": "good1", "name": "good", "stock": {"qty": 2}})
ok = wait_until(lambda: "good1" in sql_rows())
check("a good document after a bad one still flows", ok)
r = cli("dlq", "list", "--json")
dl = json.loads(r.stdout) if r.returncode == 0 else []
bad = [x for x in dl if x.get("key") and "bad1" in x["key"]]
check("unmappable document recorded as a dead letter", r.returncode == 0 and len(bad) == 1 and
      "qty" in (bad[0].get("error") or "") and "lots" in (bad[0].get("raw") or ""), r.stdout + r.stderr)
check("unmappable document not applied", "bad1" not in sql_rows())

# 4b. a change the target refuses (UNIQUE name) is a dead letter; once the data is fixed,
# `dlq retry` applies it, and reports what still fails
items.insert_one({"_id": "dup1", "name": "mongo item 10", "stock": {"qty": 10}})
items.insert_one({"_id": "good2", "name": "good two"})
ok = wait_until(lambda: "good2" in sql_rows())
r = cli("dlq", "list", "--json")
dl = json.loads(r.stdout) if r.returncode == 0 else []
dup = [x for x in dl if x.get("key") and "dup1" in x["key"]]
check("a change the target refuses is a dead letter (apply stage); the rest flows", ok and len(dup) == 1
      and dup[0].get("stage") == "apply" and dup[0].get("status") == "open", r.stdout[-600:])
sql.shell("update items set name = 'mongo item 10 (renamed)' where id = 'm010'")
wait_until(lambda: (items.find_one({"_id": "m010"}) or {}).get("name") == "mongo item 10 (renamed)")
r = cli("dlq", "retry")
check("dlq retry applies the fixed one and reports the one still failing",
      r.returncode == 1 and ": applied" in r.stdout and "still failing" in r.stdout and
      sql_rows().get("dup1", (None,))[0] == "mongo item 10", r.stdout + r.stderr)
r = cli("dlq", "list", "--json")
dl = json.loads(r.stdout) if r.returncode == 0 else []
check("retried dead letter marked resolved", any("dup1" in (x.get("key") or "") and x.get("status") == "resolved" for x in dl))

# 4c. dropped connections: the connector retries with backoff, loses nothing, logs once
LOG.flush()
log_before = os.path.getsize(os.path.join(args.work, "connector.log"))
# the sink's commands only: a change stream's getMore that loses its connection is resumed by
# the driver without a word, so failures it absorbed would leave nothing to count below
mongo.admin.command("configureFailPoint", "failCommand", mode={"times": 3},
                    data={"failCommands": ["update", "insert", "commitTransaction", "find"],
                          "closeConnection": True, "appName": "arraysync"})
if KIND == "postgres":
    sql.run("select pg_terminate_backend(pid) from pg_stat_activity where application_name like 'arraysync%'")
items.insert_one({"_id": "net1", "name": "written during an outage", "stock": {"qty": 1}})
sql.shell("insert into items (id, name, qty) values ('net2', 'sql during an outage', 2)")
ok = wait_until(lambda: "net1" in sql_rows() and items.find_one({"_id": "net2"}) is not None
                and converged(), 60)
mongo.admin.command("configureFailPoint", "failCommand", mode="off")
with open(os.path.join(args.work, "connector.log"), "rb") as f:
    f.seek(log_before)
    tail = f.read().decode(errors="replace")
check("dropped connections: changes on both sides still arrive", ok, tail[-800:])
outages = tail.count("transient failure, retrying")
check("dropped connections: retried (%d outage log lines), logged once per outage and stream" % outages, ok and 1 <= outages <= 2 * 2 and
      ("recovered after" in tail or outages == 0), "%d outage lines" % outages)

# 5. status and metrics while running
r = cli("status", "--json")
st = json.loads(r.stdout) if r.returncode == 0 else {}
streams = {s["stream"]: s for s in st.get("streams", [])}
check("status lists both streams", set(streams) == {"mongo->sql", "sql->mongo"}, r.stdout + r.stderr)
check("status counts applied deltas and dead letters",
      streams.get("mongo->sql", {}).get("applied", 0) > 0 and st.get("dead_letters_open", 0) >= 1, r.stdout)
per_mapping = {m["mapping"]: m for m in streams.get("mongo->sql", {}).get("mappings", [])}
check("status counts per mapping", per_mapping.get("items", {}).get("applied", 0) > 0 and
      per_mapping["items"].get("dead_letters", 0) >= 1, r.stdout[-800:])
applied = metric("arraysync_applied_total", {"source": "mongo", "target": "sql", "mapping": "items"})
check("metrics: applied counter scraped", applied > 0, str(applied))
health = urllib.request.urlopen("http://127.0.0.1:%d/healthz" % METRICS, timeout=5)
check("healthz answers 200", health.status == 200)

# 6. no echoes: once writers stop, the connector's writes drop to zero
wait_until(converged)
time.sleep(1.0)
a0 = metric("arraysync_applied_total", {})
c0 = sql.changelog_max()
with items.watch() as cs:
    time.sleep(5.0)
    ev = cs.try_next()
a1 = metric("arraysync_applied_total", {})
c1 = sql.changelog_max()
check("no echoes: 5 s of quiescence, no applied deltas", a0 == a1, "%d -> %d" % (a0, a1))
check("no echoes: no SQL changes", c0 == c1, "%d -> %d" % (c0, c1))
check("no echoes: no MongoDB change events", ev is None, repr(ev))
# the quick signatures the connector keeps (no table read): equal once the nodes are, in the
# gauge the supervisor refreshes every 10 s and in `verify --quick`
def quick_gauge():
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % METRICS, timeout=5).read().decode()
    return [l for l in body.splitlines() if l.startswith("arraysync_verify_quick_diff_segments{")]
wait_until(lambda: quick_gauge(), timeout=30)
g = quick_gauge()
check("metrics: quick signatures compared, no segment differs",
      g and all(l.endswith(" 0") for l in g), "\n".join(g))
r = cli("verify", "--quick", "--json")
q = json.loads(r.stdout) if r.returncode in (0, 3) and r.stdout.strip() else []
check("verify --quick: the state store's signatures of both nodes are equal",
      r.returncode == 0 and q and all(p["equal"] and p["hash_on"] == "state" for p in q),
      r.stdout + r.stderr)
# SIGHUP reloads the configuration; streams restart from their checkpoints and go on
LOG.flush()
log_before = os.path.getsize(os.path.join(args.work, "connector.log"))
conn.send_signal(signal.SIGHUP)
time.sleep(1.0)
items.insert_one({"_id": "after_hup", "name": "after reload", "stock": {"qty": 1}})
ok = wait_until(lambda: "after_hup" in sql_rows())
with open(os.path.join(args.work, "connector.log"), "rb") as f:
    f.seek(log_before)
    tail = f.read().decode(errors="replace")
check("SIGHUP: configuration reloaded, changes still flow", ok and conn.poll() is None and
      "configuration reloaded" in tail, tail[-500:])
conn.send_signal(signal.SIGTERM)
rc = conn.wait(30)
check("SIGTERM: clean exit 0", rc == 0, str(rc))

# --resnapshot copies every mapping again (what a user runs after lost change history)
r = subprocess.run([args.bin, "run", "-c", CFG, "--resnapshot", "--exit-when-idle", "2s"],
                   capture_output=True, text=True, timeout=180)
check("run --resnapshot copies every mapping again, converges, exits when idle",
      r.returncode == 0 and "re-snapshot" in r.stderr and "snapshot of items done" in r.stderr
      and converged(), r.stderr[-600:])

# 6b. a MongoDB update that the connector's relayed delete removes before the change stream
# reads it: the event's looked-up document is gone, the update is the later change and brings
# the row back whole everywhere (the sink keeps the document it deleted). The stream's open is
# held back 3 s (a fail point on the connector's first aggregate) so that the delete lands
# first; the debug log says which image the update got.
items.insert_one({"_id": "race1", "name": "r0", "stock": {"qty": 7}, "price": Decimal128("2.50"),
                  "note": "unmapped, kept by the catch-all"})
r = subprocess.run([args.bin, "run", "-c", CFG, "--exit-when-idle", "2s"], capture_output=True,
                   text=True, timeout=120)
synced = r.returncode == 0 and "race1" in sql_rows()
sql.run("delete from items where id = ?", ("race1",))
time.sleep(0.2)
items.update_one({"_id": "race1"}, {"$set": {"name": "r1"}})
mongo.admin.command("configureFailPoint", "failCommand", mode={"times": 1},
                    data={"failCommands": ["aggregate"], "blockConnection": True,
                          "blockTimeMS": 3000, "appName": "arraysync"})
try:  # (without the deleted document the key's repair waits for a holder and run never idles)
    r = subprocess.run([args.bin, "run", "-c", CFG, "--exit-when-idle", "2s", "--log-level", "debug"],
                       capture_output=True, text=True, timeout=120)
except subprocess.TimeoutExpired as e:
    err = e.stderr if isinstance(e.stderr, str) else (e.stderr or b"").decode(errors="replace")
    r = subprocess.CompletedProcess(e.cmd, -1, "", err + "\n(not idle in 120 s)")
mongo.admin.command("configureFailPoint", "failCommand", mode="off")
doc = items.find_one({"_id": "race1"}) or {}
check("an update the relayed delete removed before its capture read it (the deleted document "
      "is its image): the row comes back whole on both nodes",
      synced and r.returncode == 0 and 'key {"id":"race1"}: update read after the connector deleted' in r.stderr
      and sql_rows().get("race1") == ("r1", 7, "2.5") and doc.get("note") == "unmapped, kept by the catch-all"
      and converged(), "synced %s rc %d sql %r mongo %r\n%s" % (synced, r.returncode, sql_rows().get("race1"),
                                                                  doc, r.stderr[-1500:]))

# 6c. the same race with the connector killed (-9) after its delete and before its stream read
# the update: the deleted document outlives the process (kept in __arraysync_gone in the
# delete's transaction), and the next run brings the row back whole
items.insert_one({"_id": "race2", "name": "q0", "stock": {"qty": 3}, "price": Decimal128("1.25"),
                  "note": "kept across the kill"})
r = subprocess.run([args.bin, "run", "-c", CFG, "--exit-when-idle", "2s"], capture_output=True,
                   text=True, timeout=120)
synced = r.returncode == 0 and "race2" in sql_rows()
sql.run("delete from items where id = ?", ("race2",))
time.sleep(0.2)
items.update_one({"_id": "race2"}, {"$set": {"name": "q1"}})
mongo.admin.command("configureFailPoint", "failCommand", mode={"times": 1},
                    data={"failCommands": ["aggregate"], "blockConnection": True,
                          "blockTimeMS": 30000, "appName": "arraysync"})
with open(os.path.join(args.work, "race2.log"), "wb") as race_log:
    p = subprocess.Popen([args.bin, "run", "-c", CFG], stdout=race_log, stderr=race_log)
    deleted = wait_until(lambda: items.find_one({"_id": "race2"}) is None, timeout=60)
    time.sleep(0.3)
    p.kill()
    p.wait(30)
mongo.admin.command("configureFailPoint", "failCommand", mode="off")
try:
    r = subprocess.run([args.bin, "run", "-c", CFG, "--exit-when-idle", "2s", "--log-level", "debug"],
                       capture_output=True, text=True, timeout=120)
except subprocess.TimeoutExpired as e:
    err = e.stderr if isinstance(e.stderr, str) else (e.stderr or b"").decode(errors="replace")
    r = subprocess.CompletedProcess(e.cmd, -1, "", err + "\n(not idle in 120 s)")
doc = items.find_one({"_id": "race2"}) or {}
check("the same race with kill -9 after the connector's delete (the deleted document outlives "
      "the process): the row comes back whole on both nodes",
      synced and deleted and r.returncode == 0
      and 'key {"id":"race2"}: update read after the connector deleted' in r.stderr
      and sql_rows().get("race2") == ("q1", 3, "1.25") and doc.get("note") == "kept across the kill"
      and converged(), "synced %s deleted %s rc %d sql %r mongo %r\n%s" % (
          synced, deleted, r.returncode, sql_rows().get("race2"), doc, r.stderr[-1500:]))

# 7. randomized convergence with kill -9
KEYS = ["k%02d" % i for i in range(30)]
stop_writers = threading.Event()
log_lock = threading.Lock()
writes = {}  # key -> list of (time before the write, time after it returned, side, value)


def note(key, side, value, t0):
    with log_lock:
        writes.setdefault(key, []).append((t0, time.time(), side, value))


def mongo_writer():
    c = MongoClient(URI)[DB]["items"]
    n = 0
    while not stop_writers.is_set():
        k = random.choice(KEYS)
        v = "m-%d" % n
        n += 1
        t0 = time.time()
        if random.random() < 0.1:
            if c.delete_one({"_id": k}).deleted_count:  # a delete of nothing is no write
                note(k, "mongo", None, t0)
        else:
            c.update_one({"_id": k}, {"$set": {"name": v, "stock.qty": n}}, upsert=True)
            note(k, "mongo", v, t0)
        time.sleep(random.uniform(0.005, 0.03))


def sql_writer():
    n = 0
    while not stop_writers.is_set():
        k = random.choice(KEYS)
        v = "s-%d" % n
        n += 1
        try:
            t0 = time.time()
            if random.random() < 0.1:
                if sql.run_count("delete from items where id = ?", (k,)):
                    note(k, "sql", None, t0)
            else:
                sql.run("insert into items (id, name, qty) values (?, ?, ?) on conflict (id) do "
                        "update set name = excluded.name, qty = excluded.qty", (k, v, n))
                note(k, "sql", v, t0)
        except Exception as e:  # a busy database: try again
            print("sql writer:", e, file=sys.stderr)
        time.sleep(random.uniform(0.005, 0.03))


threads = [threading.Thread(target=mongo_writer), threading.Thread(target=sql_writer)]
for t in threads:
    t.start()
kills = 0
duration = 6 if args.quick else 15
end = time.time() + duration
conn = start(metrics=False)
while time.time() < end:
    time.sleep(random.uniform(0.7, 2.0))
    conn.send_signal(signal.SIGKILL)
    conn.wait()
    kills += 1
    conn = start(metrics=False)
stop_writers.set()
for t in threads:
    t.join()
ok = wait_until(converged, 60)
time.sleep(2)
ok = ok and converged()
s_rows, m_rows = sql_rows(), mongo_rows()
diff = {k: (s_rows.get(k), m_rows.get(k)) for k in (set(s_rows) | set(m_rows)) - DEAD_KEYS
        if s_rows.get(k) != m_rows.get(k)}
check("convergence after %d kill -9 restarts under a two-sided write load" % kills, ok, repr(diff)[:800])
# every node holds the last-write-wins winner, for keys whose last write certainly came last:
# it started >= 100 ms after every other write of the key had returned. (A client learns of
# its commit only when the call returns, which can be seconds later — e.g. closing the last
# SQLite connection checkpoints the WAL — so return times alone do not order commits.)
bad, checked = [], 0
for k, ws in writes.items():
    ws.sort()
    if len(ws) >= 2 and ws[-1][0] - max(w[1] for w in ws[:-1]) < 0.1:
        continue
    checked += 1
    want = ws[-1][3]
    got = s_rows.get(k, (None,))[0] if k in s_rows else None
    if got != want:
        bad.append((k, want, got, ws[-3:]))
check("every node holds the last-write-wins winner (%d keys checked)" % checked, not bad, repr(bad[:5]))
conn.send_signal(signal.SIGTERM)
conn.wait(30)

print("%d passed, %d failed" % (results["passed"], results["failed"]))
mongo.drop_database(DB)
if old_lifetime is not None:
    mongo.admin.command("setParameter", 1, transactionLifetimeLimitSeconds=old_lifetime)
sys.exit(1 if results["failed"] else 0)

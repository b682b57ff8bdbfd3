#!/usr/bin/python3
"""End-to-end benchmarks of `arraysync run` (driven by bench/run.sh; see bench/README.md).

  bench_e2e.py gen      --docs N --bson FILE --mapping FILE
  bench_e2e.py snapshot --bin BIN --uri URI --dsn DSN --pg-dir DIR --mongo-pid PID --work DIR --bson FILE
  bench_e2e.py stream   --bin BIN --uri URI --dsn DSN --pg-dir DIR --mongo-pid PID --work DIR
                        [--rates 1000,5000] [--seconds 8]
  bench_e2e.py rss      --bin BIN --dsn DSN --work DIR [--rows 100000,300000]

Every figure is printed as one line "e2e.<name> key=value ...". Run with /usr/bin/python3
(Debian's pymongo/bson), psycopg2. MongoDB is the project's test server (or any URI)."""
import argparse
import json
import multiprocessing as mp
import os
import random
import sqlite3
import struct
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import psycopg2
import psycopg2.extras
from bson import ObjectId, encode
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient, ReplaceOne

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "integration"))
import astest  # noqa: E402  (shared with the integration tests)

CLK_TCK = os.sysconf("SC_CLK_TCK")

CUSTOMERS_MAPPING = """mapping: customers
collection: customers
table: customers
direction: to-sql
key: id
columns:
  id:       { field: _id,                  type: objectid }
  email:    { field: email,                type: text, required: true }
  name:     { field: profile.name,         type: text }
  age:      { field: profile.age,          type: bigint }
  city:     { field: profile.address.city, type: text }
  balance:  { field: account.balance,      type: numeric }
  currency: { field: account.currency,     type: text }
  created:  { field: created,              type: timestamptz }
  active:   { field: active,               type: boolean }
  score:    { field: score,                type: double }
  tags:     { field: tags,                 type: jsonb }
  orders:   { field: orders,               type: jsonb }
  extra:    { field: "*",                  type: jsonb }
conflict: { strategy: lww }
on_error: dead-letter
"""

TICKS_MAPPING = """mapping: ticks
collection: ticks
table: ticks
key: id
columns:
  id:    { field: _id,       type: bigint }
  t:     { field: t,         type: double }
  name:  { field: name,      type: text }
  qty:   { field: stock.qty, type: bigint }
  price: { field: price,     type: numeric }
  tags:  { field: tags,      type: jsonb }
  extra: { field: "*",       type: jsonb }
conflict: { strategy: lww }
on_error: dead-letter
"""

ROWS_MAPPING = """mapping: rows
collection: rows
table: rows
key: id
columns:
  id:    { field: _id,   type: bigint }
  name:  { field: name,  type: text }
  email: { field: email, type: text }
  qty:   { field: qty,   type: bigint }
  price: { field: price, type: numeric }
  score: { field: score, type: double }
  tags:  { field: tags,  type: jsonb }
"""

CITIES = ["Springfield", "Shelbyville", "Ogdenville", "North Haverbrook", "Capital City",
          "Brockway", "Cypress Creek", "Waverly Hills"]
TAGS = ["alpha", "beta", "gamma", "delta", "vip", "newsletter", "b2b", "trial", "churn-risk"]
EPOCH = datetime(2023, 1, 1, tzinfo=timezone.utc)


def out(line):
    print(line, flush=True)


def note(msg):
    print("  # " + msg, file=sys.stderr, flush=True)


def dec(cents):
    return Decimal128("%d.%02d" % (cents // 100, cents % 100))


def customer(i, rnd):
    oid = ObjectId(struct.pack(">I", 1700000000 + i // 1000) + struct.pack(">Q", i))
    orders = [{"sku": "SKU-%05d" % rnd.randrange(100000), "qty": rnd.randint(1, 5),
               "price": dec(rnd.randrange(100, 50000)),
               "at": EPOCH + timedelta(seconds=i * 37 + k)} for k in range(rnd.randint(0, 3))]
    return {
        "_id": oid,
        "email": "user%d@example.com" % i,
        "profile": {"name": "User Number %d" % i, "age": 18 + i % 70,
                    "address": {"street": "%d Main Street" % (i % 9999), "city": CITIES[i % len(CITIES)],
                                "zip": "%05d" % (i * 7 % 100000)}},
        "account": {"balance": dec(rnd.randrange(0, 10 ** 8)), "currency": "EUR",
                    "opened": EPOCH - timedelta(days=i % 2000)},
        "created": EPOCH + timedelta(seconds=i * 37, milliseconds=i % 1000),
        "active": i % 3 != 0,
        "score": rnd.random() * 100,
        "tags": rnd.sample(TAGS, 3),
        "orders": orders,
        "plan": ["free", "pro", "gold"][i % 3],
        "visits": Int64(i * 3),
        "notes": "customer since %d; prefers email" % (2000 + i % 24),
    }


# ---------------------------------------------------------------- process accounting
def cpu_s(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    except (OSError, IndexError):
        return 0.0


def children(ppid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == ppid:
                kids.append(int(d))
        except (OSError, IndexError):
            pass
    return kids


class Cpu:
    """CPU-seconds of the connector, the PostgreSQL cluster (postmaster + every child alive at
    either end of the window, minus excluded backends) and the MongoDB server process."""

    def __init__(self, conn_pid, pg_dir, mongo_pid, exclude=()):
        with open(os.path.join(pg_dir, "data", "postmaster.pid")) as f:
            self.postmaster = int(f.readline())
        self.conn_pid, self.mongo_pid, self.exclude = conn_pid, mongo_pid, set(exclude)

    def sample(self):
        pg = {p: cpu_s(p) for p in [self.postmaster] + children(self.postmaster) if p not in self.exclude}
        return {"t": time.time(), "conn": cpu_s(self.conn_pid), "pg": pg,
                "mongo": cpu_s(self.mongo_pid) if self.mongo_pid else 0.0}

    @staticmethod
    def delta(a, b):
        pg = sum(v - a["pg"].get(p, 0.0) for p, v in b["pg"].items())
        return b["conn"] - a["conn"], pg, b["mongo"] - a["mongo"]


def vmhwm_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


free_port = astest.free_port
pg_exec = astest.pg_exec


def write_config(work, nodes, mapping_text, batch="{ max_rows: 1000, max_latency: 20ms }"):
    name = mapping_text.split("\n", 1)[0].split(":", 1)[1].strip()
    return astest.write_config(work, [nodes], [(name, mapping_text)], batch=batch,
                               extra="log: { level: warn }\n")


def start_connector(binary, cfg, work, extra=()):
    log = open(os.path.join(work, "connector.log"), "ab")
    return subprocess.Popen([binary, "run", "-c", cfg] + list(extra), stdout=log, stderr=log)


def pg_node(dsn):
    return "  pg:\n    kind: postgres\n    dsn: \"%s\"\n" % dsn


def mongo_node(uri, db):
    return "  mongo:\n    kind: mongodb\n    uri: \"%s\"\n    database: %s\n" % (uri, db)


# Each benchmark gets its own database (dropped first): its own changelog and consumers, so
# earlier runs leave nothing behind to read or purge.
fresh_db = astest.fresh_pg_db


def drop_db(dsn, name):
    con = psycopg2.connect(dsn)
    con.autocommit = True
    con.cursor().execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
    con.close()


def read_bson_file(path):
    with open(path, "rb") as f:
        data = f.read()
    docs, off = [], 0
    while off < len(data):
        n = struct.unpack_from("<i", data, off)[0]
        docs.append(RawBSONDocument(data[off:off + n]))
        off += n
    return docs


# ---------------------------------------------------------------- gen
def cmd_gen(a):
    rnd = random.Random(42)
    with open(a.bson, "wb") as f:
        for i in range(a.docs):
            f.write(encode(customer(i, rnd)))
    with open(a.mapping, "w") as f:
        f.write(CUSTOMERS_MAPPING)


# ---------------------------------------------------------------- snapshot through the test server
def cmd_snapshot(a):
    db = "bench_snap_%d" % os.getpid()
    client = MongoClient(a.uri)
    coll = client[db]["customers"]
    docs = read_bson_file(a.bson)
    n = len(docs)
    t0 = time.time()
    for i in range(0, n, 1000):
        coll.insert_many(docs[i:i + 1000], ordered=False)
    t_ins = time.time() - t0
    # the server's own find rate: sorted scan, documents left raw (not decoded) in the client
    best_find = 0.0
    for _ in range(2):
        t0 = time.time()
        raw = coll.with_options(codec_options=CodecOptions(document_class=RawBSONDocument))
        cnt = sum(1 for _ in raw.find({}, sort=[("_id", 1)], batch_size=1000))
        dt = time.time() - t0
        best_find = max(best_find, cnt / dt)
    work = a.work
    os.makedirs(work, exist_ok=True)
    admin_dsn, a.dsn = a.dsn, fresh_db(a.dsn, "bench_snapshot")
    cfg = write_config(work, mongo_node(a.uri, db) + pg_node(a.dsn), CUSTOMERS_MAPPING)
    port = free_port()
    t_start = time.time()
    p = start_connector(a.bin, cfg, work, ["--exit-when-idle", "2s", "--metrics", "127.0.0.1:%d" % port])
    cpu = Cpu(p.pid, a.pg_dir, a.mongo_pid)
    c0 = cpu.sample()
    con = None
    done_at, hwm = None, 0
    while p.poll() is None and time.time() - t_start < 600:
        hwm = max(hwm, vmhwm_kib(p.pid))
        try:
            if con is None:
                con = psycopg2.connect(a.dsn)
                con.autocommit = True
            cur = con.cursor()
            cur.execute("select count(*) from public.customers")
            if cur.fetchone()[0] >= n:
                done_at = time.time()
                c1 = cpu.sample()
                break
        except psycopg2.Error:
            pass
        time.sleep(0.05)
    if done_at is None:
        out("e2e.snapshot_via_test_server FAILED: %s rows not reached (connector exit %s; see %s/connector.log)"
            % (n, p.poll(), work))
        p.kill()
        return 1
    hwm = max(hwm, vmhwm_kib(p.pid))
    rc = p.wait(120)
    dc, dpg, dm = Cpu.delta(c0, c1)
    dt = done_at - t_start
    out("e2e.snapshot_via_test_server rows_per_s=%.0f rows=%d seconds=%.2f vmhwm_mib=%.1f exit=%d "
        "(the Python test server alone: sorted find %.0f docs/s, insert_many %.0f docs/s)"
        % (n / dt, n, dt, hwm / 1024.0, rc, best_find, n / t_ins))
    out("e2e.snapshot_cpu connector_cpu_s=%.2f pg_cpu_s=%.2f mongo_server_cpu_s=%.2f "
        "connector_us_per_row=%.1f share_of_servers=%.2f"
        % (dc, dpg, dm, dc / n * 1e6, dc / max(1e-9, dpg + dm)))
    con.close()
    client.drop_database(db)
    drop_db(admin_dsn, "bench_snapshot")
    return 0


# ---------------------------------------------------------------- streaming
def tick_doc(i, t):
    return {"_id": Int64(i), "t": t, "name": "tick %d" % i, "stock": {"qty": i % 1000},
            "price": dec(i % 100000), "tags": ["a", "b", i % 7], "src": "bench"}


def pg_reader(dsn, lo, expected, done_ev, stop_ev, result_path, pid_q):
    """Polls PostgreSQL for new ids in [lo, lo+expected) every ~1 ms; records arrival times."""
    con = psycopg2.connect(dsn)
    con.autocommit = True
    cur = con.cursor()
    cur.execute("select pg_backend_pid()")
    pid_q.put(cur.fetchone()[0])
    seen = {}
    last = lo - 1
    deadline = None
    while not stop_ev.is_set():
        cur.execute("select id from public.ticks where id > %s and id < %s", (last, lo + 10 ** 8))
        now = time.time()
        for (i,) in cur.fetchall():
            if i not in seen:
                seen[i] = now
        while last + 1 in seen:
            last += 1
        if done_ev.is_set():
            if deadline is None:
                deadline = time.time() + 60
            if len(seen) >= expected.value or time.time() > deadline:
                break
        time.sleep(0.001)
    with open(result_path, "w") as f:
        json.dump(seen, f)


def mongo_reader(uri, db, lo, expected, done_ev, stop_ev, result_path, ready_ev):
    """Change stream on the collection; records the arrival time of each id >= lo."""
    client = MongoClient(uri)
    coll = client[db]["ticks"]
    seen = {}
    deadline = None
    with coll.watch(max_await_time_ms=50) as cs:
        ready_ev.set()
        while not stop_ev.is_set():
            ev = cs.try_next()
            if ev is not None:
                i = ev.get("documentKey", {}).get("_id")
                if isinstance(i, int) and i >= lo and i not in seen:
                    seen[i] = time.time()
                continue
            if done_ev.is_set():
                if deadline is None:
                    deadline = time.time() + 60
                if len(seen) >= expected.value or time.time() > deadline:
                    break
    with open(result_path, "w") as f:
        json.dump(seen, f)


def write_mongo(uri, db, lo, rate, seconds, tick=0.01):
    coll = MongoClient(uri)[db]["ticks"]
    per = max(1, int(round(rate * tick)))
    sent = []  # (id, submit, ack)
    i = lo
    t0 = time.time()
    k = 0
    while time.time() - t0 < seconds:
        target = t0 + k * tick
        now = time.time()
        if target > now:
            time.sleep(target - now)
        sub = time.time()
        docs = [tick_doc(j, sub) for j in range(i, i + per)]
        coll.insert_many(docs, ordered=True)
        ack = time.time()
        sent.extend((j, sub, ack) for j in range(i, i + per))
        i += per
        k += 1
    return sent, time.time() - t0


def write_pg(dsn, lo, rate, seconds, tick=0.01):
    con = psycopg2.connect(dsn)
    cur = con.cursor()
    # The private server runs with synchronous_commit = off: its WAL is then flushed by the WAL
    # writer every wal_writer_delay (200 ms) under a steady load, and logical decoding sends
    # only flushed WAL, so a change waited up to 200 ms inside PostgreSQL before any consumer
    # could see it (pg_to_mongo p50 130-290 ms). The writer commits synchronously (fsync is
    # off: no disk wait), as an application on a default server does.
    cur.execute("set synchronous_commit = on")
    con.commit()
    per = max(1, int(round(rate * tick)))
    sent = []
    i = lo
    t0 = time.time()
    k = 0
    while time.time() - t0 < seconds:
        target = t0 + k * tick
        now = time.time()
        if target > now:
            time.sleep(target - now)
        sub = time.time()
        psycopg2.extras.execute_values(
            cur, "insert into public.ticks (id, t, name, qty, price, tags) values %s",
            [(j, sub, "tick %d" % j, j % 1000, "%d.%02d" % (j % 100000 // 100, j % 100),
              json.dumps(["a", "b", j % 7])) for j in range(i, i + per)], page_size=per)
        con.commit()
        ack = time.time()
        sent.extend((j, sub, ack) for j in range(i, i + per))
        i += per
        k += 1
    con.close()
    return sent, time.time() - t0


def stream_phase(a, direction, rate, seconds, lo, db, conn_pid, work):
    ctx = mp.get_context("fork")
    done_ev, stop_ev, ready_ev = ctx.Event(), ctx.Event(), ctx.Event()
    expected = ctx.Value("q", 1 << 62)
    res = os.path.join(work, "arrivals_%s_%d.json" % (direction, rate))
    exclude = []
    if direction == "mongo_to_pg":
        pid_q = ctx.Queue()
        rd = ctx.Process(target=pg_reader, args=(a.dsn, lo, expected, done_ev, stop_ev, res, pid_q))
        rd.start()
        exclude.append(pid_q.get(timeout=30))
    else:
        rd = ctx.Process(target=mongo_reader, args=(a.uri, db, lo, expected, done_ev, stop_ev, res, ready_ev))
        rd.start()
        ready_ev.wait(30)
    time.sleep(0.3)
    cpu = Cpu(conn_pid, a.pg_dir, a.mongo_pid, exclude)
    c0 = cpu.sample()
    if direction == "mongo_to_pg":
        sent, wdur = write_mongo(a.uri, db, lo, rate, seconds)
    else:
        sent, wdur = write_pg(a.dsn, lo, rate, seconds)
    expected.value = len(sent)
    done_ev.set()
    rd.join(120)
    if rd.is_alive():
        stop_ev.set()
        rd.join(10)
    c1 = cpu.sample()
    with open(res) as f:
        seen = {int(k): v for k, v in json.load(f).items()}
    lat_ack = [(seen[i] - ack) * 1000 for i, sub, ack in sent if i in seen]
    lat_sub = [(seen[i] - sub) * 1000 for i, sub, ack in sent if i in seen]
    delivered = len(lat_ack)
    first_sub = sent[0][1]
    last_arr = max(seen.values()) if seen else first_sub
    sustained = delivered / max(1e-9, last_arr - first_sub)
    offered = len(sent) / wdur
    out("e2e.stream_%s target_per_s=%d offered_per_s=%.0f sustained_per_s=%.0f delivered=%d/%d "
        "lat_ms_p50=%.1f lat_ms_p99=%.1f lat_ms_max=%.1f (from commit ack; from submit: p50=%.1f p99=%.1f) "
        "drain_s=%.2f"
        % (direction, rate, offered, sustained, delivered, len(sent), pct(lat_ack, 50), pct(lat_ack, 99),
           max(lat_ack) if lat_ack else float("nan"), pct(lat_sub, 50), pct(lat_sub, 99),
           last_arr - (first_sub + wdur)))
    dc, dpg, dm = Cpu.delta(c0, c1)
    out("e2e.cpu_%s target_per_s=%d connector_us_per_delta=%.1f connector_cpu_s=%.2f pg_cpu_s=%.2f "
        "mongo_server_cpu_s=%.2f share_of_servers=%.2f (target <= 0.25; window %.1f s)"
        % (direction, rate, dc / max(1, delivered) * 1e6, dc, dpg, dm, dc / max(1e-9, dpg + dm),
           c1_time(c0, c1)))
    return delivered


def c1_time(c0, c1):
    return c1.get("t", 0) - c0.get("t", 0)


def server_capacity(uri, n=10000):
    """What the MongoDB server alone sustains for the writes each direction needs: insert_many
    of tick documents (the Mongo -> SQL writer) and bulk replace-upserts of 1000 in a
    transaction (what the connector's MongoDB sink sends), both from pymongo."""
    client = MongoClient(uri)
    coll = client["bench_capacity"]["ticks"]
    coll.drop()
    t0 = time.time()
    for i in range(0, n, 50):
        coll.insert_many([tick_doc(j, 0.0) for j in range(i, i + 50)])
    ins = n / (time.time() - t0)
    t0 = time.time()
    for i in range(0, n, 1000):
        ops = [ReplaceOne({"_id": Int64(j)}, tick_doc(j, 1.0), upsert=True) for j in range(n + i, n + i + 1000)]
        with client.start_session() as sess:
            with sess.start_transaction():
                coll.bulk_write(ops, ordered=True, session=sess)
    rep = n / (time.time() - t0)
    client.drop_database("bench_capacity")
    out("e2e.test_server_capacity insert_many_50_per_s=%.0f bulk_replace_upsert_txn_per_s=%.0f "
        "(the Python MongoDB test server alone, driven by pymongo)" % (ins, rep))


def cmd_stream(a):
    server_capacity(a.uri)
    db = "bench_stream_%d" % os.getpid()
    work = a.work
    os.makedirs(work, exist_ok=True)
    admin_dsn, a.dsn = a.dsn, fresh_db(a.dsn, "bench_stream")
    cfg = write_config(work, mongo_node(a.uri, db) + pg_node(a.dsn), TICKS_MAPPING)
    p = start_connector(a.bin, cfg, work)
    client = MongoClient(a.uri)
    coll = client[db]["ticks"]
    # warm-up: one write each way, wait until it has crossed
    ok = False
    end = time.time() + 60
    while time.time() < end and p.poll() is None:
        try:
            pg_exec(a.dsn, "select 1 from public.ticks limit 1")
            break
        except psycopg2.Error:
            time.sleep(0.2)
    coll.insert_one(tick_doc(1, time.time()))
    pg_exec(a.dsn, "insert into public.ticks (id, t, name) values (2, 0, 'warm')")
    while time.time() < end and p.poll() is None:
        if coll.find_one({"_id": 2}) and pg_exec(a.dsn, "select 1 from public.ticks where id = 1"):
            ok = True
            break
        time.sleep(0.1)
    if not ok:
        out("e2e.stream FAILED: warm-up rows did not cross (connector exit %s; see %s/connector.log)" % (p.poll(), work))
        p.kill()
        return 1
    time.sleep(1.0)
    lo = 1000
    for rate in a.rates:
        for direction in ("mongo_to_pg", "pg_to_mongo"):
            stream_phase(a, direction, rate, a.seconds, lo, db, p.pid, work)
            lo += 10 ** 8
            time.sleep(1.0)
    out("e2e.stream_rss vmhwm_mib=%.1f" % (vmhwm_kib(p.pid) / 1024.0))
    p.terminate()
    p.wait(60)
    client.drop_database(db)
    drop_db(admin_dsn, "bench_stream")
    return 0


# ---------------------------------------------------------------- peak RSS (SQLite -> PostgreSQL)
def cmd_rss(a):
    parts = []
    for n in a.rows:
        work = os.path.join(a.work, "rss_%d" % n)
        os.makedirs(work, exist_ok=True)
        dbp = os.path.join(work, "src.db")
        dsn = fresh_db(a.dsn, "bench_rss")
        nodes = "  lite:\n    kind: sqlite\n    path: \"%s\"\n%s" % (dbp, pg_node(dsn))
        cfg = write_config(work, nodes, ROWS_MAPPING)
        r = subprocess.run([a.bin, "install", "-c", cfg], capture_output=True, text=True)
        if r.returncode != 0:
            out("e2e.snapshot_peak_rss FAILED: install: %s" % r.stderr.strip())
            return 1
        con = sqlite3.connect(dbp)
        con.executemany("insert into rows (id, name, email, qty, price, score, tags) values (?,?,?,?,?,?,?)",
                        ((i, "row number %d" % i, "user%d@example.com" % i, i * 7919 % 100000,
                          "%d.%02d" % (i // 100, i % 100), i / 7.0, '["x", %d]' % (i % 10))
                         for i in range(1, n + 1)))
        con.execute("delete from _arraysync_changelog")
        con.commit()
        con.close()
        t0 = time.time()
        p = start_connector(a.bin, cfg, work, ["--exit-when-idle", "2s"])
        hwm, done_at = 0, None
        pc = psycopg2.connect(dsn)
        pc.autocommit = True
        while p.poll() is None:
            hwm = max(hwm, vmhwm_kib(p.pid))
            if done_at is None:
                cur = pc.cursor()
                cur.execute("select count(*) from public.rows")
                if cur.fetchone()[0] >= n:
                    done_at = time.time()
            time.sleep(0.1)
        pc.close()
        rc = p.returncode
        if done_at is None:
            out("e2e.snapshot_peak_rss FAILED: %d rows did not arrive (exit %s; see %s/connector.log)" % (n, rc, work))
            return 1
        note("sqlite->pg snapshot of %d rows: %.0f rows/s, VmHWM %.1f MiB, exit %d"
             % (n, n / (done_at - t0), hwm / 1024.0, rc))
        parts.append((n, hwm / 1024.0, n / (done_at - t0)))
        drop_db(a.dsn, "bench_rss")
    out("e2e.snapshot_peak_rss " + " ".join("rows=%d vmhwm_mib=%.1f" % (n, m) for n, m, _ in parts) +
        " (SQLite -> PostgreSQL through arraysync run; target <= 64 MiB, flat in the row count)")
    out("e2e.snapshot_sqlite_to_pg " + " ".join("rows=%d rows_per_s=%.0f" % (n, r) for n, _, r in parts))
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--docs", type=int, required=True)
    g.add_argument("--bson", required=True)
    g.add_argument("--mapping", required=True)
    for name in ("snapshot", "stream", "rss"):
        s = sub.add_parser(name)
        s.add_argument("--bin", required=True)
        s.add_argument("--dsn", required=True)
        s.add_argument("--work", required=True)
        if name != "rss":
            s.add_argument("--uri", required=True)
            s.add_argument("--pg-dir", required=True)
            s.add_argument("--mongo-pid", type=int, default=0)
        if name == "snapshot":
            s.add_argument("--bson", required=True)
        if name == "stream":
            s.add_argument("--rates", type=lambda x: [int(v) for v in x.split(",")], default=[1000, 5000])
            s.add_argument("--seconds", type=float, default=8.0)
        if name == "rss":
            s.add_argument("--rows", type=lambda x: [int(v) for v in x.split(",")], default=[100000, 300000])
    a = ap.parse_args()
    return {"gen": cmd_gen, "snapshot": cmd_snapshot, "stream": cmd_stream, "rss": cmd_rss}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())

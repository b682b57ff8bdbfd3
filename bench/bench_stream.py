#!/usr/bin/python3
"""Streaming through `arraysync run` between SQLite and PostgreSQL, no Python in the data path
(driven by bench/bench_stream.sh; see bench/README.md, "bench_stream").

  bench_stream.py --bin BIN --dsn DSN --work DIR [--rows 50000] [--rate 1000] [--seconds 8]
                  [--perf-dir DIR] [--pg-async-commit]

This process only generates load (sqlite3 / psycopg2 bulk statements) and reads clocks; the
connector moves every row. Per direction (sqlite_to_pg, pg_to_sqlite):

* `stream.<dir>.bulk`: ROWS rows written into the source as fast as the source takes them
  (transactions of 1000, one multi-row statement each); `connector_rows_per_s` = ROWS / (time
  the last row is visible in the target - time the first write started); baseline
  `direct_rows_per_s`: the same rows written by the same statements straight into the target
  (its own table, same schema, same triggers), measured in the same run; `ratio` =
  connector / direct. `connector_us_per_delta` = the connector's CPU (utime+stime from
  /proc/PID/stat) over the phase / ROWS.
* `stream.<dir>.paced`: RATE rows/s for SECONDS s in ticks of 10 ms (one transaction per tick).
  A trigger on the target's table records each row's arrival (clock_timestamp() on
  PostgreSQL; unixepoch + fraction on SQLite) in a side table the connector does not map;
  `lat_ms_*` = arrival - the writer's commit return. Connector CPU per delta over the phase.

With --perf-dir, `perf record -g` samples the connector during each phase
(perf-<dir>-bulk.data, perf-<dir>-paced.data there)."""
import argparse
import os
import sqlite3
import subprocess
import sys
import time

import psycopg2

CLK_TCK = os.sysconf("SC_CLK_TCK")

MAPPING = """mapping: rows
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
conflict: %s
on_error: dead-letter
"""
# --strategy: the mapping's conflict block (script: a trivial resolve, or the balance example's
# shape: keep the row with the higher qty)
STRATEGY = {
    "lww": "{ strategy: lww }",
    "vector": "{ strategy: vector }",
    "script": "{ strategy: script, script: ../resolve.lua }",
    "script-always": "{ strategy: script, script: ../resolve.lua, call: always }",
}
SCRIPT = """function resolve(mine, theirs, ctx)
  if mine.qty ~= ctx.null and theirs.qty ~= ctx.null and mine.qty > theirs.qty then return mine end
  return theirs
end
"""
COLS = "id, name, email, qty, price, score, tags"


def out(line):
    print(line, flush=True)


def note(msg):
    print("  # " + msg, file=sys.stderr, flush=True)


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def row(i):
    return (i, "row number %d" % i, "user%d@example.com" % i, i * 7919 % 100000,
            "%d.%02d" % (i // 100, i % 100), i / 7.0, '["x", %d]' % (i % 10))


class Lite:
    def __init__(self, path):
        self.con = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.con.execute("pragma busy_timeout = 30000")

    def write(self, lo, hi):  # rows lo..hi-1 in one transaction, one statement
        rows = [row(i) for i in range(lo, hi)]
        ph = ",".join(["(?,?,?,?,?,?,?)"] * len(rows))
        self.con.execute("begin immediate")
        self.con.execute("insert into rows (%s) values %s" % (COLS, ph), [v for r in rows for v in r])
        self.con.execute("commit")

    def count_ge(self, lo):
        return self.con.execute("select count(*) from rows where id >= ?", (lo,)).fetchone()[0]

    def update(self, lo, hi, tag):  # one transaction: every row of lo..hi-1 gets name = tag, qty + 1
        self.con.execute("begin immediate")
        self.con.execute("update rows set name = ?, qty = qty + 1 where id >= ? and id < ?", (tag, lo, hi))
        self.con.execute("commit")

    def count_named(self, tag):
        return self.con.execute("select count(*) from rows where name = ?", (tag,)).fetchone()[0]


class Pg:
    def __init__(self, dsn, sync_commit="on"):
        self.con = psycopg2.connect(dsn)
        self.con.autocommit = False
        # The private server runs with synchronous_commit = off: its WAL is then flushed by the
        # WAL writer every wal_writer_delay (200 ms), and logical decoding only sends flushed
        # WAL, so a change would wait up to 200 ms inside PostgreSQL before any consumer could
        # see it. The writer commits synchronously (fsync is off: no disk wait) unless
        # --pg-async-commit asks for the server's setting.
        cur = self.con.cursor()
        cur.execute("set synchronous_commit = " + sync_commit)
        self.con.commit()

    def write(self, lo, hi):
        rows = [row(i) for i in range(lo, hi)]
        ph = ",".join(["(%s,%s,%s,%s,%s::numeric,%s,%s::jsonb)"] * len(rows))
        cur = self.con.cursor()
        cur.execute("insert into public.rows (%s) values %s" % (COLS, ph), [v for r in rows for v in r])
        self.con.commit()

    def count_ge(self, lo):
        cur = self.con.cursor()
        cur.execute("select count(*) from public.rows where id >= %s", (lo,))
        n = cur.fetchone()[0]
        self.con.commit()
        return n

    def update(self, lo, hi, tag):
        cur = self.con.cursor()
        cur.execute("update public.rows set name = %s, qty = qty + 1 where id >= %s and id < %s", (tag, lo, hi))
        self.con.commit()

    def count_named(self, tag):
        cur = self.con.cursor()
        cur.execute("select count(*) from public.rows where name = %s", (tag,))
        n = cur.fetchone()[0]
        self.con.commit()
        return n


def wait_count(side, lo, n, timeout=120.0):
    end = time.time() + timeout
    while time.time() < end:
        if side.count_ge(lo) >= n:
            return time.time()
        time.sleep(0.002)
    return None


def start_perf(perf_dir, name, pid):
    if not perf_dir:
        return None
    perf = subprocess.Popen(["perf", "record", "-g", "-q", "-o",
                             os.path.join(perf_dir, "perf-%s.data" % name), "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return perf


def stop_perf(perf):
    if perf:
        perf.send_signal(2)
        perf.wait(60)


def bulk(name, src, dst, direct, lo, n, pid, perf_dir):
    # baseline: the same statements straight into the target's own copy of the table
    t0 = time.time()
    for a in range(lo, lo + n, 1000):
        direct.write(a, min(a + 1000, lo + n))
    direct_s = time.time() - t0
    perf = start_perf(perf_dir, name + "-bulk", pid)
    c0 = cpu_s(pid)
    t0 = time.time()
    for a in range(lo, lo + n, 1000):
        src.write(a, min(a + 1000, lo + n))
    written = time.time() - t0
    done = wait_count(dst, lo, n)
    c1 = cpu_s(pid)
    stop_perf(perf)
    if done is None:
        out("stream.%s.bulk FAILED: rows did not arrive" % name)
        return False
    conn_s = done - t0
    out("stream.%s.bulk rows=%d connector_rows_per_s=%.0f direct_rows_per_s=%.0f ratio=%.2f "
        "connector_us_per_delta=%.1f connector_cpu_s=%.2f (source writes took %.2f s)"
        % (name, n, n / conn_s, n / direct_s, direct_s / conn_s, (c1 - c0) * 1e6 / n, c1 - c0, written))
    return True


def bulk_updates(name, src, dst, lo, n, pid):
    """Every row of lo..lo+n-1 updated on src (batches of 1000 rows per transaction); done when
    dst holds them all: the resolver decides against versions it knows (the rows exist)."""
    tag = "upd-%s-%d" % (name, time.time_ns())
    c0 = cpu_s(pid)
    t0 = time.time()
    for a in range(lo, lo + n, 1000):
        src.update(a, min(a + 1000, lo + n), tag)
    end = time.time() + 120
    while time.time() < end and dst.count_named(tag) < n:
        time.sleep(0.002)
    done = time.time()
    c1 = cpu_s(pid)
    if dst.count_named(tag) < n:
        out("stream.%s.updates FAILED: updates did not arrive" % name)
        return False
    out("stream.%s.updates rows=%d connector_rows_per_s=%.0f connector_us_per_delta=%.1f "
        "connector_cpu_s=%.2f" % (name, n, n / (done - t0), (c1 - c0) * 1e6 / n, c1 - c0))
    return True


def paced(name, src, arrivals, lo, rate, seconds, pid, perf_dir):
    per_tick = max(1, rate // 100)
    ticks = int(seconds * 100)
    commit_at = {}
    perf = start_perf(perf_dir, name + "-paced", pid)
    c0 = cpu_s(pid)
    t0 = time.time()
    a = lo
    for k in range(ticks):
        target = t0 + k * 0.01
        d = target - time.time()
        if d > 0:
            time.sleep(d)
        src.write(a, a + per_tick)
        now = time.time()
        for i in range(a, a + per_tick):
            commit_at[i] = now
        a += per_tick
    offered_s = time.time() - t0
    n = a - lo
    got = {}
    end = time.time() + 60
    while len(got) < n and time.time() < end:
        got = arrivals(lo)
        if len(got) < n:
            time.sleep(0.05)
    c1 = cpu_s(pid)
    stop_perf(perf)
    if len(got) < n:
        out("stream.%s.paced FAILED: %d/%d rows arrived" % (name, len(got), n))
        return False
    lat = sorted((got[i] - commit_at[i]) * 1000.0 for i in range(lo, a))
    last = max(got.values())

    def pct(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))]
    out("stream.%s.paced target_per_s=%d offered_per_s=%.0f sustained_per_s=%.0f delivered=%d/%d "
        "lat_ms_p50=%.1f lat_ms_p99=%.1f lat_ms_max=%.1f connector_us_per_delta=%.1f"
        % (name, rate, n / offered_s, n / (last - t0), len(got), n, pct(0.5), pct(0.99), lat[-1],
           (c1 - c0) * 1e6 / n))
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--rows", type=int, default=50000)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--perf-dir")
    ap.add_argument("--pg-async-commit", action="store_true")
    ap.add_argument("--strategy", choices=sorted(STRATEGY), default="lww",
                    help="the mapping's conflict strategy")
    ap.add_argument("--bulk-only", action="store_true",
                    help="the bulk phases only (inserts, then updates of the same rows)")
    a = ap.parse_args()
    os.makedirs(os.path.join(a.work, "mappings"), exist_ok=True)
    with open(os.path.join(a.work, "mappings", "rows.yaml"), "w") as f:
        f.write(MAPPING % STRATEGY[a.strategy])
    with open(os.path.join(a.work, "resolve.lua"), "w") as f:
        f.write(SCRIPT)
    dbp = os.path.join(a.work, "lite.db")
    cfg = os.path.join(a.work, "arraysync.yaml")
    with open(cfg, "w") as f:
        f.write("nodes:\n  lite:\n    kind: sqlite\n    path: \"%s\"\n  pg:\n    kind: postgres\n"
                "    dsn: \"%s\"\nstate: state.db\ntopology: { type: peer-to-peer }\n"
                "mappings: \"mappings/*.yaml\"\nbatch: { max_rows: 1000, max_latency: 20ms }\n"
                "log: { level: warn }\n" % (dbp, a.dsn))
    r = subprocess.run([a.bin, "install", "-c", cfg], capture_output=True, text=True, cwd=a.work)
    if r.returncode != 0:
        out("stream FAILED: install: %s" % r.stderr.strip())
        return 1
    pg, lite = Pg(a.dsn, "off" if a.pg_async_commit else "on"), Lite(dbp)
    # arrival recorders: side tables the connector does not map, filled by plain triggers
    cur = pg.con.cursor()
    cur.execute("create table arrivals (id bigint primary key, at double precision);"
                "create function rec_arrival() returns trigger language plpgsql as $$ begin "
                "insert into arrivals values (NEW.id, extract(epoch from clock_timestamp())); "
                "return NEW; end $$;"
                "create trigger rec_arrival after insert on public.rows for each row "
                "execute function rec_arrival();"
                "create table direct_rows (like public.rows including all)")
    pg.con.commit()
    lite.con.execute("create table arrivals (id integer primary key, at real)")
    lite.con.execute("create trigger rec_arrival after insert on rows begin insert into arrivals "
                     "values (new.id, (julianday('now') - 2440587.5) * 86400.0); end")
    lite.con.execute("create table direct_rows as select * from rows where 0")

    class Direct:  # the target's own statements into a table of the same columns
        def __init__(self, side, table):
            self.side, self.table = side, table

        def write(self, lo, hi):
            rows = [row(i) for i in range(lo, hi)]
            if isinstance(self.side, Pg):
                ph = ",".join(["(%s,%s,%s,%s,%s::numeric,%s,%s::jsonb)"] * len(rows))
                c = self.side.con.cursor()
                c.execute("insert into %s (%s) values %s" % (self.table, COLS, ph),
                          [v for r in rows for v in r])
                self.side.con.commit()
            else:
                ph = ",".join(["(?,?,?,?,?,?,?)"] * len(rows))
                self.side.con.execute("begin immediate")
                self.side.con.execute("insert into %s (%s) values %s" % (self.table, COLS, ph),
                                      [v for r in rows for v in r])
                self.side.con.execute("commit")

    def pg_arrivals(lo):
        c = pg.con.cursor()
        c.execute("select id, at from arrivals where id >= %s", (lo,))
        d = dict(c.fetchall())
        pg.con.commit()
        return d

    def lite_arrivals(lo):
        return dict(lite.con.execute("select id, at from arrivals where id >= ?", (lo,)).fetchall())

    log = open(os.path.join(a.work, "connector.log"), "ab")
    p = subprocess.Popen([a.bin, "run", "-c", cfg], stdout=log, stderr=log, cwd=a.work)
    ok = True
    try:
        time.sleep(2.0)  # both streams open (empty tables: nothing to copy)
        ok = bulk("sqlite_to_pg", lite, pg, Direct(pg, "direct_rows"), 1, a.rows, p.pid, a.perf_dir)
        ok = bulk("pg_to_sqlite", pg, lite, Direct(lite, "direct_rows"), 10 ** 8, a.rows, p.pid,
                  a.perf_dir) and ok
        if a.bulk_only:
            ok = bulk_updates("sqlite_to_pg", lite, pg, 1, a.rows, p.pid) and ok
            ok = bulk_updates("pg_to_sqlite", pg, lite, 10 ** 8, a.rows, p.pid) and ok
            return 0 if ok else 1
        time.sleep(1.0)
        ok = paced("sqlite_to_pg", lite, pg_arrivals, 2 * 10 ** 8, a.rate, a.seconds, p.pid, a.perf_dir) and ok
        time.sleep(1.0)
        ok = paced("pg_to_sqlite", pg, lite_arrivals, 3 * 10 ** 8, a.rate, a.seconds, p.pid, a.perf_dir) and ok
    finally:
        p.terminate()
        p.wait(60)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

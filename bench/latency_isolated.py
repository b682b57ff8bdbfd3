"""Latency of single, isolated changes through `arraysync run` (MongoDB <-> PostgreSQL): one
write at a time, 50 ms apart, timed from the writer's commit acknowledgement until a reader on
the other side sees it (polling every 0.2 ms). Complements bench_e2e.py's streaming figures,
which measure the same under a sustained load.

usage: latency_isolated.py --bin ARRAYSYNC --uri MONGODB_URI --dsn PG_DSN --work DIR [--n 100]
prints: e2e.isolated_latency direction=... n=... p50_ms=... p90_ms=... p99_ms=... max_ms=..."""
import argparse
import os
import subprocess
import time

import psycopg2
from pymongo import MongoClient

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--uri", required=True)
ap.add_argument("--dsn", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("--n", type=int, default=100)
a = ap.parse_args()
os.makedirs(os.path.join(a.work, "m"), exist_ok=True)
with open(os.path.join(a.work, "m", "notes.yaml"), "w") as f:
    f.write("mapping: notes\nkey: id\ncolumns:\n  id: { field: _id, type: text }\n"
            "  body: { field: body, type: text }\n")
db = "latency_%d" % os.getpid()
cfg = os.path.join(a.work, "arraysync.yaml")
with open(cfg, "w") as f:
    f.write('nodes:\n  mongo: { kind: mongodb, uri: "%s", database: %s }\n'
            '  pg: { kind: postgres, dsn: "%s" }\nstate: state.db\nmappings: "m/*.yaml"\n'
            "batch: { max_rows: 1000, max_latency: 10ms }\n" % (a.uri, db, a.dsn))
log = open(os.path.join(a.work, "connector.log"), "wb")
proc = subprocess.Popen([a.bin, "run", "-c", cfg], stdout=log, stderr=log)
coll = MongoClient(a.uri)[db]["notes"]
con = psycopg2.connect(a.dsn)
con.autocommit = True
cur = con.cursor()
deadline = time.time() + 30
while time.time() < deadline:  # wait until the connector has created the table
    try:
        cur.execute("select 1 from notes limit 1")
        break
    except psycopg2.Error:
        time.sleep(0.1)
time.sleep(0.5)


def report(direction, lats):
    lats.sort()
    q = lambda f: lats[min(len(lats) - 1, int(f * len(lats)))]
    print("e2e.isolated_latency direction=%s n=%d p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f max_ms=%.1f"
          % (direction, len(lats), q(0.5), q(0.9), q(0.99), lats[-1]), flush=True)


lats = []
for i in range(a.n):
    coll.insert_one({"_id": "m%d" % i, "body": "x"})
    t = time.time()
    while True:
        cur.execute("select 1 from notes where id = %s", ("m%d" % i,))
        if cur.fetchone():
            break
        time.sleep(0.0002)
    lats.append((time.time() - t) * 1000)
    time.sleep(0.05)
report("mongo_to_pg", lats)
lats = []
for i in range(a.n):
    cur.execute("insert into notes (id, body) values (%s, 'y')", ("p%d" % i,))
    t = time.time()
    while not coll.find_one({"_id": "p%d" % i}):
        time.sleep(0.0002)
    lats.append((time.time() - t) * 1000)
    time.sleep(0.05)
report("pg_to_mongo", lats)
proc.terminate()
proc.wait(30)
MongoClient(a.uri).drop_database(db)

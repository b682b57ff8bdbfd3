#!/usr/bin/python3
"""Which keys get a conflict under `strategy: vector`, against an oracle, with writers on all
three nodes at once (MongoDB through its URI only, PostgreSQL, SQLite) while the connector runs.

Every write sets one column (val or tag) of an existing key to a token no other write uses,
and reads the row it writes over in the same atomic step (MongoDB findOneAndUpdate returning
the document before; PostgreSQL SELECT ... FOR UPDATE then UPDATE in one transaction; SQLite
BEGIN IMMEDIATE): the tokens in that row name the writes it was made on top of. A write's
ancestors are those writes and theirs. Two writes of one key are concurrent when neither is an
ancestor of the other; the oracle says a key must have a conflict recorded exactly when two
concurrent writes of it set the same column (concurrent writes of different columns merge, and
sequential ones never conflict: docs/ARCHITECTURE.md "Version vectors"), and every conflict
recorded must be such a key, or (at most one per run) one of a change made on top of another
node's write of that column right after the connector wrote it there (counted, printed). Keys are of four kinds
(written by every node in either column, often or rarely; by two nodes in a column each; by one
node), so the oracle's answer differs from key to key. At the end every node must hold the same
rows. Two known gaps are counted and allowed once per run each (docs/STATUS.md): a concurrent
pair decided without a conflict, and a node's own write put back (a later write of that node
did not see its earlier one: the connector wrote an older value there in between).

usage: conflict_oracle.py --bin build/arraysync --work DIR [--topology p2p|hub|ring]
                          [--duration 15] [--seed N] [--pg-dsn DSN]
                          [--pg-capture auto|logical|triggers] [--max-extra 1]
                          [--max-missed 1] [--max-undone 1]"""
import argparse
import json
import os
import random
import shutil
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import astest  # noqa: E402
from astest import check, results  # noqa: E402

MAPPING = """mapping: items
collection: items
table: items
key: id
columns:
  id:  { field: _id, type: text }
  val: { field: val, type: text }
  tag: { field: tag, type: text }
conflict: { strategy: vector }
"""
# key sets: shared (every node, either column: conflicts likely), sparse (every node, either
# column, rarely written: some conflict, some not), disjoint (MongoDB writes val, PostgreSQL tag:
# concurrent but never the same column), solo (SQLite alone: sequential)
SHARED = ["k%d" % i for i in range(4)]
SPARSE = ["p%d" % i for i in range(24)]
DISJOINT = ["d%d" % i for i in range(6)]
SOLO = ["s%d" % i for i in range(6)]
KEYS = SHARED + SPARSE + DISJOINT + SOLO
COLS = ["val", "tag"]


def pick(node, rnd):
    """A key and column for the next write of node."""
    r = rnd.random()
    if r < 0.3:
        return rnd.choice(SHARED), rnd.choice(COLS)
    if r < 0.6:
        return rnd.choice(SPARSE), rnd.choice(COLS)
    if node == "mongo":
        return rnd.choice(DISJOINT), "val"
    if node == "pg":
        return rnd.choice(DISJOINT), "tag"
    return rnd.choice(SOLO), rnd.choice(COLS)
TOPOLOGIES = {"p2p": "{ type: peer-to-peer }", "hub": "{ type: hub-and-spoke, hub: pg }",
              "ring": "{ type: ring, order: [mongo, pg, lite] }"}


def writer(node, conn, stop, seed, log, errors):
    """Writes tokens "<node>.<n>" until stop; log gets (node, key, column, token, base row)."""
    rnd = random.Random(seed)
    n = 0
    while not stop.is_set():
        k, col = pick(node, rnd)
        n += 1
        token = "%s.%d" % (node, n)
        try:
            base = conn(k, col, token)
            log.append((node, k, col, token, base, time.time()))
        except Exception as e:  # a busy database: the write did not happen, the writer goes on
            errors.append("%s: %s" % (node, e))
        time.sleep(rnd.uniform(0.02, 0.15))


def mongo_conn(m):
    from pymongo import ReturnDocument

    def write(k, col, token):
        d = m.find_one_and_update({"_id": k}, {"$set": {col: token}}, return_document=ReturnDocument.BEFORE)
        return (d.get("val"), d.get("tag"))
    return write


def pg_conn(dsn):
    import psycopg2

    def write(k, col, token):
        c = psycopg2.connect(dsn)
        try:
            cur = c.cursor()
            cur.execute("select val, tag from items where id = %s for update", (k,))
            base = cur.fetchone()
            cur.execute("update items set %s = %%s where id = %%s" % col, (token, k))
            c.commit()
            return tuple(base)
        finally:
            c.close()
    return write


def lite_conn(path):
    def write(k, col, token):
        c = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            c.execute("begin immediate")
            base = c.execute("select val, tag from items where id = ?", (k,)).fetchone()
            c.execute("update items set %s = ? where id = ?" % col, (token, k))
            c.execute("commit")
            return tuple(base)
        except Exception:
            if c.in_transaction:
                c.execute("rollback")
            raise
        finally:
            c.close()
    return write


def oracle(log):
    """Keys that must have a conflict: two concurrent writes of one column; and keys of a
    column only one node writes where a write did not see that node's own earlier one (the
    connector put an older value back on that node in between: not a user's concurrent edit)."""
    by_token = {w[3]: w for w in log}
    anc = {}

    def ancestors(tok):
        if tok in anc:
            return anc[tok]
        out = set()
        stack = [t for t in by_token[tok][4] if t in by_token]
        while stack:
            t = stack.pop()
            if t in out:
                continue
            out.add(t)
            stack.extend(x for x in by_token[t][4] if x in by_token and x not in out)
        anc[tok] = out
        return out
    want, undone = {}, {}
    for k in KEYS:
        ws = [w for w in log if w[1] == k]
        for i in range(len(ws)):
            for j in range(i + 1, len(ws)):
                a, b = ws[i], ws[j]
                if a[2] != b[2]:
                    continue
                if a[3] in ancestors(b[3]) or b[3] in ancestors(a[3]):
                    continue
                # a column only one node writes: its writes can only miss each other when the
                # connector put an older value back in between (on other keys a write of
                # another node that won also separates them)
                one_writer = k in DISJOINT or k in SOLO
                (undone if one_writer and a[0] == b[0] else want).setdefault(k, (a[3], b[3]))
    return want, undone


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--topology", default="p2p", choices=sorted(TOPOLOGIES))
    ap.add_argument("--duration", type=float, default=15)
    ap.add_argument("--settle-after", help="the connector's versions.settle_after (default: its own)")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--pg-dsn", help="a PostgreSQL server to use (else a private one is started)")
    ap.add_argument("--pg-capture", default="auto",
                    help="the PostgreSQL node's capture (with triggers commit times decide races there)")
    ap.add_argument("--max-extra", type=int, default=1,
                    help="conflicts the oracle does not see allowed per run (explained ones only)")
    ap.add_argument("--max-missed", type=int, default=1,
                    help="concurrent same-column keys allowed without a conflict per run (a known gap)")
    ap.add_argument("--max-undone", type=int, default=1,
                    help="keys allowed where the connector put a node's own write back (a known gap)")
    a = ap.parse_args()
    work = os.path.abspath(a.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    print("conflict_oracle: seed %d, %s" % (a.seed, a.topology), flush=True)
    uri = astest.mongo_uri(os.path.join(work, "mongo-server"))
    pg_admin = a.pg_dsn or astest.start_pg(os.path.join(work, "pg-server"))
    pg = astest.fresh_pg_db(pg_admin, "oracle_%s_%d" % (a.topology, os.getpid()))
    lite = os.path.join(work, "lite.db")
    from pymongo import MongoClient
    mc = MongoClient(uri, serverSelectionTimeoutMS=10000)
    mdb = "oracle_%s_%d" % (a.topology, os.getpid())
    m = mc[mdb]["items"]
    nodes = [astest.node_yaml("mongo", "mongodb", uri=uri, database=mdb),
             astest.node_yaml("pg", "postgres", dsn=pg, capture=a.pg_capture), astest.node_yaml("lite", "sqlite", path=lite)]
    extra = "versions: { settle_after: %s }\n" % a.settle_after if a.settle_after else ""
    cfg = astest.write_config(work, nodes, [("items", MAPPING)], topology=TOPOLOGIES[a.topology], extra=extra)
    check("install", astest.cli(a.bin, cfg, "install").returncode == 0)
    m.insert_many([{"_id": k, "val": "init", "tag": "init"} for k in KEYS])
    check("first run", astest.cli(a.bin, cfg, "run", "--exit-when-idle", "2s", timeout=120).returncode == 0)
    conn = astest.Connector(a.bin, cfg, os.path.join(work, "connector.log"))
    conn.start()
    stop = threading.Event()
    log, errors = [], []
    threads = [threading.Thread(target=writer, args=("mongo", mongo_conn(m), stop, a.seed, log, errors)),
               threading.Thread(target=writer, args=("pg", pg_conn(pg), stop, a.seed + 1, log, errors)),
               threading.Thread(target=writer, args=("lite", lite_conn(lite), stop, a.seed + 2, log, errors))]
    for t in threads:
        t.start()
    time.sleep(a.duration)
    stop.set()
    for t in threads:
        t.join()
    conn.stop()
    r = astest.cli(a.bin, cfg, "run", "--exit-when-idle", "3s", timeout=300)
    check("final run", r.returncode == 0, r.stderr[-500:])
    rows = {"mongo": {d["_id"]: (d.get("val"), d.get("tag")) for d in m.find()},
            "pg": {x[0]: (x[1], x[2]) for x in astest.pg_exec(pg, "select id, val, tag from items")}}
    c = sqlite3.connect(lite, timeout=30)
    rows["lite"] = {x[0]: (x[1], x[2]) for x in c.execute("select id, val, tag from items")}
    c.close()
    check("every node holds the same rows", rows["mongo"] == rows["pg"] == rows["lite"],
          json.dumps(rows, sort_keys=True)[:1500])
    want, undone = oracle(log)
    cl = astest.cli(a.bin, cfg, "conflicts", "list", "--json")
    got = {}
    for x in json.loads(cl.stdout or "[]"):
        k = x["key"].get("id") if isinstance(x["key"], dict) else x["key"]
        got.setdefault(k, []).append(x.get("columns"))
    print("writes: %d (%s), write errors: %d; concurrent same-column keys: %s; conflicts recorded: %s" % (
        len(log), ", ".join("%s %d" % (nd, sum(1 for w in log if w[0] == nd)) for nd in ("mongo", "pg", "lite")),
        len(errors), sorted(want), sorted(got)), flush=True)
    check("every writer wrote", all(sum(1 for w in log if w[0] == nd) > 10 for nd in ("mongo", "pg", "lite")),
          "; ".join(errors[:5]))
    check("the oracle names no disjoint-column or single-writer key", not (set(want) & set(DISJOINT + SOLO)),
          sorted(set(want) & set(DISJOINT + SOLO)))
    # Two known gaps (docs/STATUS.md, "Conflicts"), counted and printed, at most --max-missed
    # and --max-undone keys each per run: a concurrent pair decided without a conflict when the
    # connector wrote that node twice before deciding the change (its write record keeps the
    # last write only), and a node's own newer value briefly replaced by an older one (a
    # queued write-back that ran before the connector saw the node's newer change).
    missing = sorted(set(want) - set(got))
    print("concurrent same-column keys without a conflict: %d %s; keys where a node's own write was "
          "put back: %d %s" % (len(missing), [(k, want[k]) for k in missing], len(undone),
                               sorted(undone.items())), flush=True)
    check("a conflict is recorded for every key two concurrent writes of one column touched (at most %d "
          "missed)" % a.max_missed, len(missing) <= a.max_missed,
          "missing %s (pairs %s)" % (missing, [want[k] for k in missing]))
    check("at most %d key(s) where the connector put a node's own write back" % a.max_undone,
          len(undone) <= a.max_undone, sorted(undone.items()))
    # The connector counts a node's change as concurrent with its own last write to that node
    # when the change comes before that write in the node's commit order (docs/ARCHITECTURE.md,
    # "Races and repairs"): exact on SQLite; on PostgreSQL (logical decoding) and MongoDB the
    # write's place is an upper bound read right after its commit, so a change committed in
    # that round trip on top of the write counts as concurrent too. Where a node gives no order
    # (PostgreSQL with trigger capture) commit times decide, with a 0.1 s allowance, and a
    # change made on top of the write that soon gets a conflict the oracle does not see.
    # Such extra keys must have a same-column write made on top of another node's write
    # (within 5 s of it: the replication delay plus the window, with room for a loaded
    # machine), and there may be at most one per run here (the times alone gave 0-5 per run);
    # any other extra conflict is a failure.
    extra = sorted(set(got) - set(want))
    by_token = {w[3]: w for w in log}

    def soon_on_top(k):
        return any(w[1] == k and b in by_token and by_token[b][0] != w[0] and by_token[b][2] == w[2] and
                   0 <= w[5] - by_token[b][5] < 5.0 for w in log for b in w[4])
    unexplained = [k for k in extra if not soon_on_top(k)]
    print("conflicts the oracle does not see (a change right after the connector's write): %d of %d keys %s" % (
        len(extra), len(got), extra), flush=True)
    check("every other recorded conflict is one the oracle sees", not unexplained, unexplained)
    check("at most %d such conflict(s) (the commit order decides, not the clocks)" % a.max_extra,
          len(extra) <= a.max_extra, extra)
    with open(os.path.join(work, "writes.json"), "w") as f:
        json.dump({"log": log, "want": want, "got": got}, f, indent=1)
    mc.drop_database(mdb)
    mc.close()
    print("conflict_oracle: %s" % ("all passed" if not results["failed"] else "%d failed" % results["failed"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

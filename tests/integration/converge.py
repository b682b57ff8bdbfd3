#!/usr/bin/python3
"""Convergence harness: concurrent writers on every node of a topology, optional kill -9 of the
connector and dropped database connections, then quiescence and a field-by-field comparison of
every key on every node, with last-write-wins oracle checks.

usage: converge.py --bin build/arraysync --work DIR [--topology ring|peer-to-peer|hub-and-spoke]
                   [--nodes mongo:mongodb,pg:postgres,lite:sqlite] [--order a,b,c] [--hub NODE]
                   [--writers 2] [--rate 20] [--duration 20] [--ops all|full] [--kill 2-6]
                   [--drop 3-8] [--probe 1] [--quiesce 60] [--stall 30] [--seed N]
                   [--log-level debug] [--pg-dsn DSN]           (--help: every flag)
       converge.py --self-test      the oracle and the comparison against synthetic outcomes

MongoDB only through ARRAYSYNC_TEST_MONGODB_URI (the project's test server is started when it is
not set); PostgreSQL via --pg-dsn or a private server started here (tests/scripts/pg_server.sh);
SQLite files in the work directory. Run with /usr/bin/python3 (Debian's pymongo, psycopg2).

The mapping `items`: id text key (_id), val text, tag text, n bigint (meta.n). Every writer is a
process with its own client; it writes a shared, contended key set (s000..) and keys of its own
(<writer>-N): full inserts, full upserts (replace), updates of one column and of several, nested
meta.n set and increment, a single-column upsert, clearing a column, deletes (and re-inserts);
--ops full: whole-row inserts, upserts and deletes only. Meanwhile: optional kill -9 of the
connector (restarted at once), optional dropped connections (pg_terminate_backend of the
connector's backends, MongoDB failCommand closeConnection), `arraysync status --json` once a
second (largest lag_ms per stream), and probes: a full upsert of key p-NODE on one node at a time,
timed until every other node holds it (end-to-end lag per path; status lag_ms only reflects
deltas that were applied, not those that lost or were skipped).

Checks, after the writers stop and the connector drains (polled until every node is equal for
--settle seconds, or --quiesce seconds pass, or nothing changed for --stall seconds):
  equal       every node holds the same keys with the same val, tag, n;
  provenance  every value a node holds for a key (field by field) was written for that key by
              some writer (no invented or mixed-in values); every present key was created by one;
  last write  where one write of a key started more than --margin seconds after every other write
              of that key had returned, its fields hold on every node (a delete: absent everywhere).
Writes are logged as JSON lines (WORK/writes.jsonl: key, node, writer, op, fields set, t0, t1,
outcome) for a later oracle (version vectors: which writes were concurrent); the final contents
of every node go to WORK/final.json. Exit status 0 only when every check passes."""
import argparse
import json
import multiprocessing as mp
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import astest  # noqa: E402

MAPPING = """mapping: items
collection: items
table: items
key: id
columns:
  id:  { field: _id,    type: text }
  val: { field: val,    type: text }
  tag: { field: tag,    type: text }
  n:   { field: meta.n, type: bigint }
conflict: { strategy: lww }
on_error: dead-letter
"""
COLS = ("val", "tag", "n")
KINDS = ("mongodb", "postgres", "sqlite")

# op -> weight, for shared keys and for a writer's own existing keys
OPS = {"all": [("insert", 8), ("upsert", 14), ("set1", 18), ("setN", 14), ("setn", 10), ("inc", 10),
               ("upsert1", 6), ("clear", 4), ("delete", 16)],
       # whole rows only (as in the original report: upserts and deletes)
       "full": [("insert", 10), ("upsert", 30), ("delete", 16)]}


# ---------------------------------------------------------------- node access
class Unknown(Exception):
    """The outcome of a write is not known (the connection broke while it ran)."""


class MongoSide:
    def __init__(self, uri, db):
        from pymongo import MongoClient
        self.client = MongoClient(uri, appname="converge", serverSelectionTimeoutMS=10000)
        self.c = self.client[db]["items"]

    def close(self):
        self.client.close()

    def rows(self):
        out = {}
        for d in self.c.find({}):
            meta = d.get("meta")
            n = meta.get("n") if isinstance(meta, dict) else None
            out[d["_id"]] = (d.get("val"), d.get("tag"), None if n is None else int(n))
        return out

    def get(self, k):
        d = self.c.find_one({"_id": k})
        if d is None:
            return None
        meta = d.get("meta")
        n = meta.get("n") if isinstance(meta, dict) else None
        return (d.get("val"), d.get("tag"), None if n is None else int(n))

    def write(self, op, k, f):
        """Runs one operation; returns the fields it set (dict; None for a delete) or False when
        it changed nothing. f: candidate field values. Raises Unknown."""
        from pymongo import ReturnDocument
        from pymongo.errors import ConnectionFailure, DuplicateKeyError, OperationFailure
        c = self.c
        try:
            if op == "insert":
                try:
                    c.insert_one({"_id": k, "val": f["val"], "tag": f["tag"], "meta": {"n": f["n"]}})
                except DuplicateKeyError:
                    return False
                return dict(f)
            if op == "upsert":
                c.replace_one({"_id": k}, {"val": f["val"], "tag": f["tag"], "meta": {"n": f["n"]}}, upsert=True)
                return dict(f)
            if op == "set1":
                col = "val" if f["n"] % 2 else "tag"
                return {col: f[col]} if c.update_one({"_id": k}, {"$set": {col: f[col]}}).matched_count else False
            if op == "setN":
                r = c.update_one({"_id": k}, {"$set": {"val": f["val"], "tag": f["tag"], "meta.n": f["n"]}})
                return dict(f) if r.matched_count else False
            if op == "setn":
                return {"n": f["n"]} if c.update_one({"_id": k}, {"$set": {"meta.n": f["n"]}}).matched_count else False
            if op == "inc":
                try:
                    d = c.find_one_and_update({"_id": k}, {"$inc": {"meta.n": 1}}, projection={"meta": 1},
                                              return_document=ReturnDocument.AFTER)
                except OperationFailure:  # meta.n is null (a SQL NULL came over): not a number
                    return False
                return {"n": int(d["meta"]["n"])} if d else False
            if op == "upsert1":
                r = c.update_one({"_id": k}, {"$set": {"val": f["val"]}}, upsert=True)
                return {"val": f["val"], "tag": None, "n": None} if r.upserted_id is not None else {"val": f["val"]}
            if op == "clear":  # a document without tag: MongoDB changes nothing, no change event
                return {"tag": None} if c.update_one({"_id": k}, {"$unset": {"tag": ""}}).modified_count else False
            if op == "delete":
                return None if c.delete_one({"_id": k}).deleted_count else False
        except (DuplicateKeyError, OperationFailure):
            return False
        except ConnectionFailure as e:
            raise Unknown(str(e))
        raise ValueError(op)


class SqlSide:
    """PostgreSQL (psycopg2) or SQLite (sqlite3), autocommit, one connection."""

    def __init__(self, kind, target):
        self.kind, self.target, self.con = kind, target, None

    def connect(self):
        if self.con is None:
            if self.kind == "postgres":
                import psycopg2
                self.con = psycopg2.connect(self.target, application_name="converge", connect_timeout=10)
                self.con.autocommit = True
            else:
                import sqlite3
                self.con = sqlite3.connect(self.target, timeout=30, isolation_level=None)
        return self.con

    def close(self):
        if self.con is not None:
            try:
                self.con.close()
            except Exception:
                pass
            self.con = None

    def q(self, sql):
        return sql if self.kind == "sqlite" else sql.replace("?", "%s")

    def ex(self, sql, params=()):
        cur = self.connect().cursor()
        cur.execute(self.q(sql), params)
        return cur

    def rows(self):
        try:
            return {r[0]: (r[1], r[2], None if r[3] is None else int(r[3]))
                    for r in self.ex("select id, val, tag, n from items").fetchall()}
        finally:
            if self.kind == "sqlite":
                self.close()  # no long-lived reader holding the WAL

    def get(self, k):
        r = self.ex("select val, tag, n from items where id = ?", (k,)).fetchone()
        return None if r is None else (r[0], r[1], None if r[2] is None else int(r[2]))

    def _errors(self):
        if self.kind == "postgres":
            import psycopg2
            return psycopg2.IntegrityError, (psycopg2.OperationalError, psycopg2.InterfaceError), psycopg2.Error
        import sqlite3
        return sqlite3.IntegrityError, (), sqlite3.Error

    def write(self, op, k, f):
        integrity, broken, other = self._errors()
        refused = integrity
        if self.kind == "postgres":
            import psycopg2.extensions
            refused = psycopg2.extensions.TransactionRollbackError  # deadlock, serialization
        try:
            return self._write(op, k, f)
        except (integrity, refused):
            self._rollback()
            return False
        except broken as e:  # the connection broke: the statement may or may not have committed
            self.close()
            raise Unknown(str(e))
        except other:  # refused (busy, ...): nothing changed
            self._rollback()
            if self.kind == "postgres":
                self.close()
            return False

    def _rollback(self):
        if self.kind == "sqlite" and self.con is not None and self.con.in_transaction:
            try:
                self.con.execute("rollback")
            except Exception:
                pass

    def _write(self, op, k, f):
        if op == "insert":
            self.ex("insert into items (id, val, tag, n) values (?, ?, ?, ?)", (k, f["val"], f["tag"], f["n"]))
            return dict(f)
        if op == "upsert":
            self.ex("insert into items (id, val, tag, n) values (?, ?, ?, ?) on conflict (id) do update set "
                    "val = excluded.val, tag = excluded.tag, n = excluded.n", (k, f["val"], f["tag"], f["n"]))
            return dict(f)
        if op == "set1":
            col = "val" if f["n"] % 2 else "tag"
            return {col: f[col]} if self.ex("update items set %s = ? where id = ?" % col, (f[col], k)).rowcount else False
        if op == "setN":
            r = self.ex("update items set val = ?, tag = ?, n = ? where id = ?", (f["val"], f["tag"], f["n"], k))
            return dict(f) if r.rowcount else False
        if op == "setn":
            return {"n": f["n"]} if self.ex("update items set n = ? where id = ?", (f["n"], k)).rowcount else False
        if op == "inc":
            rows = self.ex("update items set n = coalesce(n, 0) + 1 where id = ? returning n", (k,)).fetchall()
            return {"n": int(rows[0][0])} if rows else False
        if op == "upsert1":
            if self.kind == "postgres":
                rows = self.ex("insert into items (id, val) values (?, ?) on conflict (id) do update set "
                               "val = excluded.val returning (xmax = 0)", (k, f["val"])).fetchall()
                inserted = bool(rows[0][0])
            else:
                con = self.connect()
                con.execute("begin immediate")
                inserted = con.execute("select 1 from items where id = ?", (k,)).fetchone() is None
                if inserted:
                    con.execute("insert into items (id, val) values (?, ?)", (k, f["val"]))
                else:
                    con.execute("update items set val = ? where id = ?", (f["val"], k))
                con.execute("commit")
            return {"val": f["val"], "tag": None, "n": None} if inserted else {"val": f["val"]}
        if op == "clear":  # only where tag is set: clearing a NULL changes nothing (trigger capture
            # logs no change then, logical decoding may), so the oracle could not count it either way
            r = self.ex("update items set tag = null where id = ? and tag is not null", (k,))
            return {"tag": None} if r.rowcount else False
        if op == "delete":
            return None if self.ex("delete from items where id = ?", (k,)).rowcount else False
        raise ValueError(op)


def open_side(node):
    if node["kind"] == "mongodb":
        return MongoSide(node["uri"], node["database"])
    return SqlSide(node["kind"], node["dsn"] if node["kind"] == "postgres" else node["path"])


# ---------------------------------------------------------------- writers
def writer_main(spec):
    """One writer process: writes until spec['end'], one JSON line per write to spec['log'] and a
    summary to spec['summary']."""
    rnd = random.Random(spec["seed"])
    side = open_side(spec["node"])
    wid, node = spec["id"], spec["node"]["name"]
    shared = ["s%03d" % i for i in range(spec["shared"])]
    own = []
    ops, weights = [o for o, _ in OPS[spec["ops"]]], [w for _, w in OPS[spec["ops"]]]
    seq = 0
    stats = {"attempts": 0, "writes": 0, "noop": 0, "unknown": 0}
    interval = 1.0 / spec["rate"]
    while time.time() < spec["start"]:
        time.sleep(0.01)
    nxt = time.time()
    with open(spec["log"], "w") as log:
        while time.time() < spec["end"]:
            nxt += interval * rnd.uniform(0.5, 1.5)
            delay = nxt - time.time()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:
                nxt = time.time()  # behind by more than a second: do not burst to catch up
            seq += 1
            if rnd.random() < spec["shared_frac"]:
                k, op = rnd.choice(shared), rnd.choices(ops, weights)[0]
            elif not own or rnd.random() < 0.2:
                k, op = "%s-%d" % (wid, len(own)), "insert"
                own.append(k)
            else:
                k, op = rnd.choice(own), rnd.choices(ops, weights)[0]
            f = {"val": "%s.%d" % (wid, seq), "tag": "t%s.%d" % (wid, seq), "n": spec["nbase"] + seq}
            stats["attempts"] += 1
            t0 = time.time()
            try:
                res = side.write(op, k, f)
                outcome = "ok"
            except Unknown as e:
                res, outcome = None, "unknown"
                stats["unknown"] += 1
                print("writer %s: %s %s: outcome unknown: %s" % (wid, op, k, str(e)[:200]), file=sys.stderr)
                time.sleep(0.2)
            t1 = time.time()
            if res is False:
                stats["noop"] += 1
                continue
            if outcome == "unknown":  # what it would have set (an increment: any n, see oracle)
                col = "val" if f["n"] % 2 else "tag"
                res = {"insert": dict(f), "upsert": dict(f), "setN": dict(f), "set1": {col: f[col]},
                       "setn": {"n": f["n"]}, "inc": {}, "clear": {"tag": None}, "delete": None,
                       "upsert1": {"val": f["val"], "tag": None, "n": None}}[op]
            stats["writes"] += 1
            log.write(json.dumps({"k": k, "node": node, "w": wid, "op": op, "set": res, "t0": t0, "t1": t1,
                                  "outcome": outcome}) + "\n")
    side.close()
    with open(spec["summary"], "w") as f:
        json.dump(stats, f)


# ---------------------------------------------------------------- disturbances
class Killer(threading.Thread):
    """SIGKILLs the connector every lo..hi seconds and restarts it at once."""

    def __init__(self, conn, lo, hi, rnd, stop):
        super().__init__(daemon=True)
        self.conn, self.lo, self.hi, self.rnd, self.stop_ev = conn, lo, hi, rnd, stop
        self.kills = 0

    def run(self):
        while not self.stop_ev.wait(self.rnd.uniform(self.lo, self.hi)):
            self.conn.kill9()
            self.kills += 1
            self.conn.start()


class Dropper(threading.Thread):
    """Every lo..hi seconds: terminates the connector's PostgreSQL backends and makes the MongoDB
    server close the connector's next connections (failCommand; ignored where refused)."""

    def __init__(self, nodes, lo, hi, rnd, stop):
        super().__init__(daemon=True)
        self.nodes, self.lo, self.hi, self.rnd, self.stop_ev = nodes, lo, hi, rnd, stop
        self.drops, self.refused = 0, 0

    def run(self):
        while not self.stop_ev.wait(self.rnd.uniform(self.lo, self.hi)):
            for n in self.nodes:
                try:
                    if n["kind"] == "postgres":
                        astest.pg_exec(n["dsn"], "select pg_terminate_backend(pid) from pg_stat_activity "
                                       "where application_name like 'arraysync%%' and datname = current_database()")
                    elif n["kind"] == "mongodb":
                        from pymongo import MongoClient
                        with MongoClient(n["uri"], serverSelectionTimeoutMS=5000) as c:
                            c.admin.command("configureFailPoint", "failCommand", mode={"times": 2},
                                            data={"failCommands": ["getMore", "update", "insert", "delete", "find",
                                                                   "aggregate", "commitTransaction"],
                                                  "closeConnection": True, "appName": "arraysync"})
                    else:
                        continue
                    self.drops += 1
                except Exception:
                    self.refused += 1


class Prober(threading.Thread):
    """End-to-end lag, measured from outside: every `every` seconds one node in turn gets a full
    upsert of its probe key p-NODE; the time until every other node holds it is recorded per
    (source, target). The probe writes are logged like any other write (and checked)."""

    def __init__(self, nodes, every, stop, timeout=60.0):
        super().__init__(daemon=True)
        self.nodes, self.every, self.stop_ev, self.timeout = nodes, every, stop, timeout
        self.lat = {}       # (src, dst) -> [seconds]
        self.missed = {}    # (src, dst) -> probes not seen within the timeout
        self.cut = 0        # probes still travelling when the load ended (not counted)
        self.log = []
        self.errors = 0

    def run(self):
        sides = {n["name"]: open_side(n) for n in self.nodes}
        seq = 0
        try:
            while not self.stop_ev.wait(self.every):
                src = self.nodes[seq % len(self.nodes)]["name"]
                seq += 1
                k = "p-" + src
                f = {"val": "probe.%s.%d" % (src, seq), "tag": "probe", "n": seq}
                t0 = time.time()
                try:
                    sides[src].write("upsert", k, f)
                except Exception:
                    self.errors += 1
                    continue
                t1 = time.time()
                self.log.append({"k": k, "node": src, "w": "probe", "op": "upsert", "set": dict(f), "t0": t0,
                                 "t1": t1, "outcome": "ok"})
                waiting = {n["name"] for n in self.nodes} - {src}
                while waiting and time.time() - t1 < self.timeout and not self.stop_ev.is_set():
                    for dst in sorted(waiting):
                        try:
                            got = sides[dst].get(k)
                        except Exception:
                            if isinstance(sides[dst], SqlSide):
                                sides[dst].close()
                            continue
                        if got is not None and got[0] == f["val"]:
                            self.lat.setdefault((src, dst), []).append(time.time() - t1)
                            waiting.discard(dst)
                    time.sleep(0.02)
                if waiting and self.stop_ev.is_set():
                    self.cut += 1
                    continue
                for dst in waiting:
                    self.missed[(src, dst)] = self.missed.get((src, dst), 0) + 1
        finally:
            for sd in sides.values():
                sd.close()

    def report(self):
        out = []
        for path in sorted(set(self.lat) | set(self.missed)):
            xs = sorted(self.lat.get(path, []))
            med = xs[len(xs) // 2] if xs else float("nan")
            out.append("  %s->%s probes=%d median=%.3fs max=%.3fs not_arrived_in_%gs=%d" % (
                path[0], path[1], len(xs), med, xs[-1] if xs else float("nan"), self.timeout,
                self.missed.get(path, 0)))
        if self.cut:
            out.append("  (%d probe(s) still travelling when the load ended: not counted)" % self.cut)
        return out


class StatusPoller(threading.Thread):
    """Polls `arraysync status --json` once a second: largest lag_ms per stream, last status."""

    def __init__(self, conn):
        super().__init__(daemon=True)
        self.conn = conn
        self.stop_ev = threading.Event()
        self.max_lag = {}
        self.last = None
        self.polls = 0

    def run(self):
        while not self.stop_ev.wait(1.0):
            self.poll()

    def poll(self):
        st = self.conn.status()
        if st is None:
            return None
        self.polls += 1
        self.last = st
        for s in st.get("streams", []):
            self.max_lag[s["stream"]] = max(self.max_lag.get(s["stream"], 0), s.get("lag_ms") or 0)
        return st


def parse_range(s):
    lo, _, hi = s.partition("-")
    return float(lo), float(hi or lo)


# ---------------------------------------------------------------- comparison and oracle
def snapshot(sides):
    return {name: side.rows() for name, side in sides.items()}


def differing(snap):
    names = list(snap)
    keys = set()
    for rows in snap.values():
        keys |= set(rows)
    return sorted(k for k in keys if len({repr(snap[n].get(k, "<absent>")) for n in names}) > 1)


def fmt_row(r):
    return "<absent>" if r is None else "(val=%s tag=%s n=%s)" % r


def fmt_write(w):
    return "%s %s %s %s [%.3f..%.3f]%s" % (w["node"], w["w"], w["op"], json.dumps(w["set"]), w["t0"], w["t1"],
                                           "" if w["outcome"] == "ok" else " (" + w["outcome"] + ")")


def oracle(snap, log, margin):
    """Provenance and last-write checks; returns (problems, keys the last-write check covered)."""
    by_key = {}
    for w in log:
        by_key.setdefault(w["k"], []).append(w)
    problems = []
    # provenance: field by field
    written = {}
    for k, ws in by_key.items():
        vals = {c: set() for c in COLS}
        for w in ws:
            for c, v in (w["set"] or {}).items():
                vals[c].add(v)
            if w["op"] == "inc" and w["outcome"] != "ok":
                vals["n"].add("*")  # an increment of unknown outcome: any value
        written[k] = vals
    for name, rows in snap.items():
        for k, r in rows.items():
            if k not in by_key:
                problems.append(("provenance", k, "%s holds key %s %s that no writer created" % (name, k, fmt_row(r))))
                continue
            if not any(w["op"] in ("insert", "upsert", "upsert1") for w in by_key[k]):
                problems.append(("provenance", k, "%s holds key %s, but no write could have created it" % (name, k)))
            for c, v in zip(COLS, r):
                if v not in written[k][c] and "*" not in written[k][c]:
                    problems.append(("provenance", k, "%s key %s: %s = %r was never written for this key"
                                     % (name, k, c, v)))
    # last write: one that started more than margin after all others had returned
    covered = 0
    for k, ws in by_key.items():
        ws = sorted(ws, key=lambda w: w["t0"])
        last = ws[-1]
        if last["outcome"] != "ok" or any(w["t1"] + margin >= last["t0"] for w in ws[:-1]):
            continue
        covered += 1
        for name, rows in snap.items():
            r = rows.get(k)
            if last["set"] is None:
                if r is not None:
                    problems.append(("last-write", k, "%s key %s: the last write was a delete (%s), the node holds %s"
                                     % (name, k, fmt_write(last), fmt_row(r))))
                continue
            if r is None:
                problems.append(("last-write", k, "%s key %s: absent, but the last write was %s"
                                 % (name, k, fmt_write(last))))
                continue
            got = dict(zip(COLS, r))
            bad = {c: got[c] for c, v in last["set"].items() if got[c] != v}
            if bad:
                problems.append(("last-write", k, "%s key %s holds %s, but the last write was %s"
                                 % (name, k, fmt_row(r), fmt_write(last))))
    return problems, covered


def contention(log, window=1.0):
    """Shared keys written from two different nodes within `window` seconds of each other."""
    by_key = {}
    for w in log:
        if w["w"] != "probe" and w["k"][:1] == "s" and w["k"][1:].isdigit():
            by_key.setdefault(w["k"], []).append(w)
    pairs, keys = 0, 0
    for ws in by_key.values():
        ws.sort(key=lambda w: w["t0"])
        n = sum(1 for a, b in zip(ws, ws[1:]) if a["node"] != b["node"] and b["t0"] - a["t1"] < window)
        pairs += n
        keys += n > 0
    return pairs, keys


def self_test():
    """The checks themselves must be able to fail: synthetic logs and snapshots."""
    def w(k, node, op, st, t0, outcome="ok"):
        return {"k": k, "node": node, "w": node + ".0", "op": op, "set": st, "t0": t0, "t1": t0 + 0.01,
                "outcome": outcome}
    log = [w("s000", "a", "upsert", {"val": "a.1", "tag": "ta.1", "n": 1}, 10.0),
           w("s000", "b", "set1", {"val": "b.2"}, 10.5),
           w("s000", "a", "setn", {"n": 7}, 12.0),          # last, alone: must win
           w("s001", "a", "insert", {"val": "a.3", "tag": "ta.3", "n": 3}, 10.0),
           w("s001", "b", "delete", None, 12.0),             # last, alone: absent everywhere
           w("s002", "a", "upsert", {"val": "a.4", "tag": "ta.4", "n": 4}, 10.0),
           w("s002", "b", "upsert", {"val": "b.5", "tag": "tb.5", "n": 5}, 10.2),  # concurrent: either
           w("s003", "a", "upsert1", {"val": "a.6", "tag": None, "n": None}, 10.0),
           w("s003", "b", "inc", {}, 10.1, "unknown")]
    good = {"a": {"s000": ("b.2", "ta.1", 7), "s002": ("b.5", "tb.5", 5), "s003": ("a.6", None, 99)},
            "b": {"s000": ("b.2", "ta.1", 7), "s002": ("b.5", "tb.5", 5), "s003": ("a.6", None, 99)}}
    failures = []

    def expect(name, cond):
        print("%s self-test: %s" % ("PASS" if cond else "FAIL", name))
        if not cond:
            failures.append(name)
    probs, covered = oracle(good, log, 1.0)
    expect("a consistent outcome passes (no differences, no oracle findings)",
           not differing(good) and not probs and covered == 2)
    bad = {"a": dict(good["a"]), "b": dict(good["b"])}
    bad["b"]["s002"] = ("a.4", "tb.5", 5)
    expect("a differing key is found", differing(bad) == ["s002"])
    probs, _ = oracle(bad, log, 1.0)
    expect("a mixed row (fields of two writes) is not a provenance finding when each field was written",
           not [p for p in probs if p[0] == "provenance"])
    bad["b"]["s002"] = ("a.4", None, 5)
    probs, _ = oracle(bad, log, 1.0)
    expect("a value never written (tag = None) is a provenance finding",
           any(p[0] == "provenance" and p[1] == "s002" for p in probs))
    bad = {"a": dict(good["a"]), "b": dict(good["b"])}
    bad["a"]["s000"] = ("b.2", "ta.1", 1)
    probs, _ = oracle(bad, log, 1.0)
    expect("the last write losing is a last-write finding", any(p[0] == "last-write" and p[1] == "s000" for p in probs))
    bad = {"a": dict(good["a"]), "b": dict(good["b"])}
    bad["a"]["s001"] = ("a.3", "ta.3", 3)
    probs, _ = oracle(bad, log, 1.0)
    expect("a key alive after its last write, a delete, is a last-write finding",
           any(p[0] == "last-write" and p[1] == "s001" for p in probs))
    bad["b"]["zzz"] = ("x", "y", 1)
    probs, _ = oracle(bad, log, 1.0)
    expect("a key nobody wrote is a provenance finding", any(p[0] == "provenance" and p[1] == "zzz" for p in probs))
    probs, covered = oracle(good, log, 3.0)
    expect("a wider margin covers fewer keys", covered == 0)
    return 1 if failures else 0


# ---------------------------------------------------------------- main
def parse_args():
    if "--self-test" in sys.argv:
        sys.exit(self_test())
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="the arraysync binary")
    ap.add_argument("--work", required=True, help="work directory (config, logs, SQLite files)")
    ap.add_argument("--topology", default="peer-to-peer", choices=["peer-to-peer", "hub-and-spoke", "ring"])
    ap.add_argument("--nodes", default="mongo:mongodb,pg:postgres,lite:sqlite",
                    help="NAME:KIND,... (kinds: mongodb, postgres, sqlite; more than one of a kind is fine)")
    ap.add_argument("--order", help="ring order, NAME,NAME,... (default: the --nodes order)")
    ap.add_argument("--hub", help="hub-and-spoke hub (default: the first node)")
    ap.add_argument("--writers", type=int, default=2, help="writer processes per node")
    ap.add_argument("--rate", type=float, default=20.0, help="writes per second per writer")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    ap.add_argument("--shared", type=int, default=60, help="shared (contended) keys")
    ap.add_argument("--shared-frac", type=float, default=0.5, help="fraction of writes to shared keys")
    ap.add_argument("--ops", default="all", choices=sorted(OPS),
                    help="all: every kind of write; full: whole-row inserts, upserts and deletes only")
    ap.add_argument("--kill", help="SIGKILL and restart the connector every LO-HI seconds during the load")
    ap.add_argument("--drop", help="drop the connector's database connections every LO-HI seconds")
    ap.add_argument("--probe", type=float, default=1.0,
                    help="end-to-end lag probe every S seconds during the load (0: none)")
    ap.add_argument("--quiesce", type=float, default=60.0, help="longest wait for convergence (s)")
    ap.add_argument("--settle", type=float, default=3.0, help="nodes equal this long = converged (s)")
    ap.add_argument("--stall", type=float, default=30.0,
                    help="stop waiting when neither data nor stream counters changed this long (0: never)")
    ap.add_argument("--margin", type=float, default=1.0, help="last-write oracle margin (s)")
    ap.add_argument("--strategy", default="lww", choices=["lww", "vector"],
                    help="the mapping's conflict strategy (vector: no last-write oracle, causal order wins)")
    ap.add_argument("--settle-after", help="the connector's versions.settle_after (default: its own)")
    ap.add_argument("--seed", type=int, help="random seed (printed; default: from the clock)")
    ap.add_argument("--log-level", default="debug", help="connector --log-level")
    ap.add_argument("--pg-dsn", help="PostgreSQL server DSN (default: a private server started here)")
    ap.add_argument("--name", default="converge", help="prefix of databases created for this run")
    ap.add_argument("--show", type=int, default=40, help="differing keys printed in full")
    return ap.parse_args()


def setup_nodes(args, work):
    nodes = []
    pg_admin = args.pg_dsn
    uri = None
    for spec in args.nodes.split(","):
        name, _, kind = spec.strip().partition(":")
        if kind not in KINDS:
            sys.exit("converge: node %r: kind must be one of %s" % (spec, ", ".join(KINDS)))
        n = {"name": name, "kind": kind}
        dbname = "%s_%s_%d" % (args.name, name, os.getpid())
        if kind == "mongodb":
            uri = uri or astest.mongo_uri(os.path.join(work, "mongo-server"))
            n.update(uri=uri, database=dbname)
        elif kind == "postgres":
            pg_admin = pg_admin or astest.start_pg(os.path.join(work, "pg-server"))
            n.update(dsn=astest.fresh_pg_db(pg_admin, dbname), admin=pg_admin, dbname=dbname)
        else:
            n.update(path=os.path.join(work, name + ".db"))
        nodes.append(n)
    return nodes


def topology_yaml(args, nodes):
    names = [n["name"] for n in nodes]
    if args.topology == "ring":
        order = args.order.split(",") if args.order else names
        return "{ type: ring, order: [%s] }" % ", ".join(order), "order=" + ",".join(order)
    if args.topology == "hub-and-spoke":
        hub = args.hub or names[0]
        return "{ type: hub-and-spoke, hub: %s }" % hub, "hub=" + hub
    return "{ type: peer-to-peer }", ""


def drop_databases(nodes):
    for n in nodes:
        try:
            if n["kind"] == "mongodb":
                from pymongo import MongoClient
                with MongoClient(n["uri"], serverSelectionTimeoutMS=5000) as c:
                    c.drop_database(n["database"])
            elif n["kind"] == "postgres":
                astest.pg_exec(n["admin"], "select 1")  # the server is still there
                import psycopg2
                con = psycopg2.connect(n["admin"])
                con.autocommit = True
                con.cursor().execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % n["dbname"])
                con.close()
        except Exception as e:
            print("converge: cleanup of %s: %s" % (n["name"], e), file=sys.stderr)


def wait_quiet(args, sides, conn, poller):
    """Polls until every node is equal for args.settle seconds, or the timeout, or a stall.
    Returns (converged, seconds waited, why)."""
    t_stop = time.time()
    equal_since, sig, sig_since = None, None, time.time()
    while True:
        now = time.time()
        snap = snapshot(sides)
        diff = differing(snap)
        st = poller.poll()
        counters = tuple((s["stream"], s.get("captured"), s.get("applied"), s.get("conflicts"))
                         for s in (st or {}).get("streams", []))
        cur = (repr(sorted((n, sorted(r.items())) for n, r in snap.items())), counters)
        if cur != sig:
            sig, sig_since = cur, now
        if not conn.alive():
            return False, now - t_stop, "the connector exited with %s" % conn.proc.returncode
        if not diff:
            if equal_since is None:
                equal_since = now
            elif now - equal_since >= args.settle:
                return True, equal_since - t_stop, "converged"
        else:
            equal_since = None
        if now - t_stop >= args.quiesce:
            return False, now - t_stop, "timeout (%d keys differ)" % len(diff)
        if args.stall and now - sig_since >= args.stall:
            return False, now - t_stop, "stalled: nothing changed for %.0f s (%d keys differ)" % (now - sig_since, len(diff))
        time.sleep(1.0)


def quick_verify(conn):
    """`arraysync verify --quick --json` once the nodes are equal: (every pair equal, summary)."""
    ok, _, summary = astest.quick_verify(conn.binary, conn.cfg)
    return ok, summary


def explain_quick(args, work, names):
    """Which keys the state store does not count as held by every node (arraysync_state_dump,
    built next to the binary), and whether its stored signatures match its records."""
    tool = os.path.join(os.path.dirname(os.path.abspath(args.bin)), "arraysync_state_dump")
    state = os.path.join(work, "state.db")
    if not os.path.exists(tool):
        print("converge: (no %s to explain it)" % tool)
        return
    r = subprocess.run([tool, state], capture_output=True, text=True, timeout=120)
    shown = 0
    for line in r.stdout.splitlines():
        o = json.loads(line)
        if "quick" in o:
            print("QUICK %s: %s (%d segments)" % (o["node"], o["quick"], o["buckets_differing"]))
        elif "key" in o and sorted(o["current"]) != sorted(names) and shown < args.show:
            shown += 1
            print("QUICK key %s held by %s only: %s" % (o["key"], ",".join(o["current"]) or "none", line))
    if r.returncode != 0:
        print("converge: state_dump exit %d: %s" % (r.returncode, r.stderr.strip()[:300]))


def main():
    args = parse_args()
    seed = args.seed if args.seed is not None else int(time.time() * 1000) % 1000000007
    rnd = random.Random(seed)
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    nodes = setup_nodes(args, work)
    names = [n["name"] for n in nodes]
    topo, topo_desc = topology_yaml(args, nodes)
    label = "topology=%s%s nodes=%s writers=%d/node rate=%g/s duration=%gs ops=%s kill=%s drop=%s seed=%d" % (
        args.topology, " " + topo_desc if topo_desc else "", ",".join("%s:%s" % (n["name"], n["kind"]) for n in nodes),
        args.writers, args.rate, args.duration, args.ops, args.kill or "no", args.drop or "no", seed)
    print("converge: " + label, flush=True)

    node_lines = []
    for n in nodes:
        if n["kind"] == "mongodb":
            node_lines.append(astest.node_yaml(n["name"], "mongodb", uri=n["uri"], database=n["database"]))
        elif n["kind"] == "postgres":
            node_lines.append(astest.node_yaml(n["name"], "postgres", dsn=n["dsn"]))
        else:
            node_lines.append(astest.node_yaml(n["name"], "sqlite", path=n["path"]))
    mapping = MAPPING.replace("strategy: lww", "strategy: %s" % args.strategy)
    extra = "versions: { settle_after: %s }\n" % args.settle_after if args.settle_after else ""
    cfg = astest.write_config(work, node_lines, [("items", mapping)], topology=topo, extra=extra)
    r = astest.cli(args.bin, cfg, "install")
    if r.returncode != 0:
        print("converge: install failed:\n" + r.stderr)
        return 1

    lifetime = None
    if args.kill:
        from pymongo import MongoClient
        mongos = [n for n in nodes if n["kind"] == "mongodb"]
        if mongos:
            lifetime = astest.MongoTxnLifetime(MongoClient(mongos[0]["uri"]), 2)
    conn = astest.Connector(args.bin, cfg, os.path.join(work, "connector.log"), ["--log-level", args.log_level])
    conn.start()
    poller = StatusPoller(conn)
    # streams up and past their (empty) snapshot before the load starts
    want = {"peer-to-peer": len(names) * (len(names) - 1), "ring": len(names),
            "hub-and-spoke": 2 * (len(names) - 1)}[args.topology]
    ok = astest.wait_until(lambda: (lambda st: st and len(st["streams"]) >= want and all(
        s["phase"] == "streaming" for s in st["streams"]))(conn.status()), 60, 0.5)
    if not ok:
        print("converge: streams did not reach the streaming phase: %s" % json.dumps(conn.status())[:1500])
        return 1

    # ---- load
    writers, procs = [], []
    start = time.time() + 1.0
    end = start + args.duration
    ctx = mp.get_context("fork")
    for ni, n in enumerate(nodes):
        for i in range(args.writers):
            wid = "%s.%d" % (n["name"], i)
            spec = {"id": wid, "node": n, "seed": rnd.randrange(1 << 30), "rate": args.rate, "start": start,
                    "end": end, "shared": args.shared, "shared_frac": args.shared_frac, "ops": args.ops,
                    "nbase": (len(writers) + 1) * 10000000, "log": os.path.join(work, "writes.%s.jsonl" % wid),
                    "summary": os.path.join(work, "writer.%s.json" % wid)}
            writers.append(spec)
            p = ctx.Process(target=writer_main, args=(spec,), daemon=True)
            p.start()
            procs.append(p)
    stop_ev = threading.Event()
    killer = dropper = prober = None
    if args.probe > 0:
        prober = Prober(nodes, args.probe, stop_ev)
    if args.kill:
        lo, hi = parse_range(args.kill)
        killer = Killer(conn, lo, hi, random.Random(rnd.randrange(1 << 30)), stop_ev)
    if args.drop:
        lo, hi = parse_range(args.drop)
        dropper = Dropper(nodes, lo, hi, random.Random(rnd.randrange(1 << 30)), stop_ev)
    time.sleep(max(0.0, start - time.time()))
    for t in (killer, dropper, prober):
        if t:
            t.start()
    poller.start()
    for p in procs:
        p.join(max(1.0, end + 60 - time.time()))
        if p.is_alive():
            print("converge: writer pid %d still running 60 s after the end: terminated" % p.pid)
            p.terminate()
            p.join()
    stop_ev.set()
    for t in (killer, dropper, prober):
        if t:
            t.join()
    lag_at_end = {s["stream"]: s.get("lag_ms") for s in (poller.last or {}).get("streams", [])}
    load_s = time.time() - start
    if not conn.alive():
        print("converge: the connector is not running at the end of the load (exit %s): restarted"
              % conn.proc.returncode)
        conn.start()

    # ---- merge the write log
    log = []
    for spec in writers:
        try:
            with open(spec["log"]) as f:
                log.extend(json.loads(line) for line in f if line.strip())
        except (OSError, ValueError) as e:
            print("converge: write log of %s: %s" % (spec["id"], e))
    if prober:
        log.extend(prober.log)
    log.sort(key=lambda w: w["t0"])
    with open(os.path.join(work, "writes.jsonl"), "w") as f:
        for w in log:
            f.write(json.dumps(w) + "\n")
    wstats = {}
    for spec in writers:
        try:
            with open(spec["summary"]) as f:
                wstats[spec["id"]] = json.load(f)
        except (OSError, ValueError):
            wstats[spec["id"]] = None

    # ---- quiescence
    sides = {n["name"]: open_side(n) for n in nodes}
    converged, waited, why = wait_quiet(args, sides, conn, poller)
    poller.stop_ev.set()
    snap = snapshot(sides)
    diff = differing(snap)
    with open(os.path.join(work, "final.json"), "w") as f:
        json.dump({n: {k: list(v) for k, v in sorted(r.items())} for n, r in snap.items()}, f)
    if args.strategy == "lww":
        problems, covered = oracle(snap, log, args.margin)
    else:  # version vectors: the order of causally related writes, not the clocks, decides
        problems, covered = [], 0
    rc_stop = conn.stop()
    final_status = conn.status()
    quick = quick_verify(conn) if not diff else None
    if lifetime:
        lifetime.restore()

    # ---- report
    by_key = {}
    for w in log:
        by_key.setdefault(w["k"], []).append(w)
    allkeys = set()
    for rows in snap.values():
        allkeys |= set(rows)
    print("load: %.1f s, writer summaries:" % load_s)
    for wid, s in wstats.items():
        print("  %-10s %s" % (wid, json.dumps(s)))
    per_node = {}
    per_op = {}
    for w in log:
        per_node[w["node"]] = per_node.get(w["node"], 0) + 1
        per_op[w["op"]] = per_op.get(w["op"], 0) + 1
    pairs, ckeys = contention(log)
    print("writes: %d (%.0f/s); per node %s; per op %s; outcome unknown %d" % (
        len(log), len(log) / max(load_s, 0.001), json.dumps(per_node, sort_keys=True), json.dumps(per_op, sort_keys=True),
        sum(1 for w in log if w["outcome"] != "ok")))
    print("contention: %d pairs of writes from different nodes within 1 s on %d shared keys" % (pairs, ckeys))
    print("restarts (kill -9): %d; connection drops: %d%s" % (
        killer.kills if killer else 0, dropper.drops if dropper else 0,
        " (%d refused)" % dropper.refused if dropper and dropper.refused else ""))
    print("streams (largest lag_ms seen during load + drain, lag_ms at end of load, final status):")
    for s in (final_status or poller.last or {}).get("streams", []):
        print("  %-14s max_lag_ms=%-7s end_of_load_lag_ms=%-7s phase=%s captured=%s applied=%s skipped=%s "
              "conflicts=%s dead=%s%s" % (s["stream"], poller.max_lag.get(s["stream"], "?"), lag_at_end.get(s["stream"], "?"),
                                         s["phase"], s["captured"], s["applied"], s["skipped"], s["conflicts"],
                                         s["dead_letters"], (" error=" + s["error"]) if s.get("error") else ""))
    if final_status:
        print("dead letters open: %s; conflicts recorded: %s" % (final_status.get("dead_letters_open"),
                                                                  final_status.get("conflicts")))
    if prober:
        print("probes (a full upsert on one node until every other node holds it, during the load):")
        print("\n".join(prober.report()) or "  none")
    print("drain: %s after %.1f s; connector stop exit %s" % (why, waited, rc_stop))
    for k in diff[:args.show]:
        print("DIFF %s: %s" % (k, "  ".join("%s=%s" % (n, fmt_row(snap[n].get(k))) for n in names)))
        for w in by_key.get(k, [])[-4:]:
            print("      write %s" % fmt_write(w))
    if len(diff) > args.show:
        print("DIFF ... and %d more: %s" % (len(diff) - args.show, " ".join(diff[args.show:][:200])))
    kinds = {}
    for kind, k, msg in problems:
        kinds[kind] = kinds.get(kind, 0) + 1
    for kind, k, msg in problems[:args.show]:
        print("ORACLE %s: %s" % (kind, msg))
    if quick is not None:
        print("verify --quick (the state store's signatures, every pair): %s" % quick[1])
    ok = not diff and not problems and len(log) > 0 and all(per_node.get(n, 0) > 0 for n in names)
    if quick is not None and not quick[0]:
        print("converge: the nodes are equal but verify --quick says they differ")
        explain_quick(args, work, names)
        ok = False
    if not all(per_node.get(n, 0) > 0 for n in names):
        print("converge: a node got no writes at all: the load did not run")
    print("converge: %s %s keys=%d differing=%d oracle_violations=%d (%s) last_write_checked=%d writes=%d "
          "restarts=%d drain=%.1fs (%s)" % (
              "PASS" if ok else "FAIL", label, len(allkeys), len(diff), len(problems),
              ", ".join("%s %d" % kv for kv in sorted(kinds.items())) or "none", covered, len(log),
              killer.kills if killer else 0, waited, why), flush=True)
    for s in sides.values():
        s.close()
    drop_databases(nodes)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

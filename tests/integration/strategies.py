#!/usr/bin/python3
"""Deterministic integration test of the conflict strategies `vector` (fallback lww and
keep-local) and `script` over three nodes — MongoDB (through its URI only), PostgreSQL and
SQLite — in every topology (peer-to-peer, hub-and-spoke, ring).

Every edit is made while the connector is stopped; then `arraysync run --exit-when-idle 3s`.
Per case (topology x strategy), on one database set of its own:
  1. install; rows inserted on one node; run: every node holds them.
  2. (connector stopped) on different nodes:
     a  key ka: val changed on A, tag on B (disjoint columns)  -> both everywhere, no conflict;
     b  key kb: val changed on A, 1.1 s later on B             -> every node equal, exactly one
        conflict for kb (columns ["val"], both nodes' versions); lww: B's value, open;
        keep-local: the fallback's chosen node's value, open; script: the merged value
        (sorted "a+b"), resolved, chosen "merged";
     n  (script only) key kn: n changed on A and on B          -> the script's sum everywhere,
        a conflict recorded (resolved);
     c  key kc: val changed on A (first half of a sequential pair);
     d  key kd: deleted on A, tag updated on B                 -> the row everywhere with the
        update, a conflict recorded for kd.
     run.
  3. kc: val changed on B (after A's change reached it): run -> B's value, no conflict for kc.
     `conflicts resolve ID --take NODE` for an open conflict (vector cases: kb, taking the side
     whose value is not in place); run -> every node holds that node's row, conflict resolved.
The conflict log must hold exactly the expected keys. Rows are compared whole on all three
nodes through independent clients (pymongo, psycopg2, sqlite3).
The `always` cases (script with `call: always`, every topology) make sequential edits instead:
a decrease of n that the script refuses (every node keeps the higher value, the editing node is
repaired), an increase and other columns that it lets through, no conflict recorded; then a
script row that does not fit its column (a dead letter naming it, the change through, one open
conflict).

usage: strategies.py --bin build/arraysync --work DIR [--pg-dsn DSN] [--case NAME ...]
MongoDB: ARRAYSYNC_TEST_MONGODB_URI, or the project's test server started here."""
import argparse
import json
import os
import sqlite3
import subprocess
import sys
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
conflict: %s
on_error: dead-letter
"""
# The merge function of the script cases: val -> both values joined in sorted order, n -> the
# sum of both increments over the common ancestor (or of both values when there is none), every
# other column as mine.
SCRIPT = """-- written by tests/integration/strategies.py
local function num(v, ctx)
  if v == nil or v == ctx.null then return 0 end
  return v
end

function resolve(mine, theirs, ctx)
  local row = {}
  if mine.val ~= theirs.val then
    local a, b = mine.val, theirs.val
    if a == ctx.null then a = "" end
    if b == ctx.null then b = "" end
    if b < a then a, b = b, a end
    row.val = a .. "+" .. b
  end
  if mine.n ~= theirs.n then
    local base = ctx.base and num(ctx.base.n, ctx) or 0
    row.n = num(mine.n, ctx) + num(theirs.n, ctx) - base
  end
  return row
end
"""
# call: always — the script decides every change, not only conflicts: `n` never decreases, every
# other column as the change says.
ALWAYS_SCRIPT = """-- written by tests/integration/strategies.py
function resolve(mine, theirs, ctx)
  if ctx.conflict then return nil, "not expected here" end
  if theirs.tag == "bad" then
    theirs.n = "not a number"  -- a value that does not fit its column: a dead letter
    return theirs
  end
  if mine.n ~= ctx.null and theirs.n ~= ctx.null and theirs.n < mine.n then
    theirs.n = mine.n
  end
  return theirs
end
"""
STRATEGIES = {
    "lww": "{ strategy: vector, fallback: lww }",
    "keep-local": "{ strategy: vector, fallback: keep-local }",
    "script": "{ strategy: script, script: ../merge.lua }",
    "always": "{ strategy: script, script: ../merge.lua, call: always }",
}
TOPOLOGIES = {
    "p2p": "{ type: peer-to-peer }",
    "hub": "{ type: hub-and-spoke, hub: pg }",
    "ring": "{ type: ring, order: [mongo, pg, lite] }",
}
NODES = ["mongo", "pg", "lite"]
CASES = [(t, s) for t in ("p2p", "hub", "ring") for s in ("lww", "keep-local", "script", "always")]

# Checks known to fail, by exact name -> why (printed as XFAIL; an unexpected pass is printed
# loudly). Empty: every check holds. (The two causes once listed here are fixed: PostgreSQL
# logical capture now names the columns an UPDATE changed (REPLICA IDENTITY FULL, set by install),
# and a raced change is concurrent only with the version that was the connector's last write.)
XFAIL = {}

results = {"passed": 0, "failed": 0, "xfail": 0, "xpass": 0}
args_capture = "auto"


def check(name, ok, detail=""):
    why = XFAIL.get(name) if args_capture == "auto" else None
    if why is not None:
        if ok:
            results["xpass"] += 1
            print("XPASS %s (listed as expected failure: %s)" % (name, why), flush=True)
        else:
            results["xfail"] += 1
            print("XFAIL %s: %s [%s]" % (name, detail, why), flush=True)
        return ok
    results["passed" if ok else "failed"] += 1
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, (": " + detail) if detail and not ok else ""), flush=True)
    return ok


# ---------------------------------------------------------------- node access
class Nodes:
    """The three nodes of one case, each through its own client."""

    def __init__(self, uri, mdb, pg_dsn, lite_path):
        from pymongo import MongoClient
        self.mc = MongoClient(uri, appname="strategies", serverSelectionTimeoutMS=10000)
        self.m = self.mc[mdb]["items"]
        self.pg_dsn, self.lite = pg_dsn, lite_path

    def close(self):
        self.mc.close()

    def _pg(self, sql, params=()):
        return astest.pg_exec(self.pg_dsn, sql.replace("?", "%s"), params)

    def _lite(self, sql, params=()):
        con = sqlite3.connect(self.lite, timeout=30)
        try:
            rows = con.execute(sql, params).fetchall()
            con.commit()
            return rows
        finally:
            con.close()

    def _sql(self, node, sql, params=()):
        return self._pg(sql, params) if node == "pg" else self._lite(sql, params)

    def insert(self, node, k, val, tag, n):
        if node == "mongo":
            self.m.insert_one({"_id": k, "val": val, "tag": tag, "meta": {"n": n}})
        else:
            self._sql(node, "insert into items (id, val, tag, n) values (?, ?, ?, ?)", (k, val, tag, n))

    def set(self, node, k, col, v):
        if node == "mongo":
            r = self.m.update_one({"_id": k}, {"$set": {"meta.n" if col == "n" else col: v}})
            assert r.matched_count == 1, (node, k)
        else:
            self._sql(node, "update items set %s = ? where id = ?" % col, (v, k))

    def delete(self, node, k):
        if node == "mongo":
            assert self.m.delete_one({"_id": k}).deleted_count == 1, (node, k)
        else:
            self._sql(node, "delete from items where id = ?", (k,))

    def rows(self, node):
        """{id: (val, tag, n)}; a MongoDB document with any other field shows it as a 4th item."""
        out = {}
        if node == "mongo":
            for d in self.m.find({}):
                extra = sorted(set(d) - {"_id", "val", "tag", "meta"})
                meta = d.get("meta", {})
                if set(meta) - {"n"}:
                    extra.append("meta:" + ",".join(sorted(set(meta) - {"n"})))
                row = (d.get("val", "<absent>"), d.get("tag", "<absent>"), meta.get("n", "<absent>"))
                out[d["_id"]] = row + (tuple(extra),) if extra else row
        else:
            for r in self._sql(node, "select id, val, tag, n from items"):
                out[r[0]] = (r[1], r[2], None if r[3] is None else int(r[3]))
        return out

    def all_rows(self):
        return {n: self.rows(n) for n in NODES}


# ---------------------------------------------------------------- one case
class Case:
    def __init__(self, args, idx, topo, strat, uri, pg_admin):
        self.args, self.topo, self.strat = args, topo, strat
        self.name = "%s-%s" % (topo, strat)
        self.work = os.path.join(args.work, self.name)
        os.makedirs(self.work, exist_ok=True)
        dbname = "strat_%s_%s_%d" % (topo, strat.replace("-", "_"), os.getpid())
        self.mdb = dbname
        self.pg_admin, self.pg_db = pg_admin, dbname
        pg_dsn = astest.fresh_pg_db(pg_admin, dbname)
        lite = os.path.join(self.work, "lite.db")
        self.nodes = Nodes(uri, dbname, pg_dsn, lite)
        # script cases: MongoDB with pre- and post-images (the collection is created with them
        # below), so its updates carry the row they were made on top of (ctx.base) as
        # PostgreSQL's (logical decoding, REPLICA IDENTITY FULL) and SQLite's do
        mopts = {"full_document": "whenAvailable"} if strat == "script" else {}
        self.pre_images = strat == "script"
        node_lines = [astest.node_yaml("mongo", "mongodb", uri=uri, database=dbname, **mopts),
                      astest.node_yaml("pg", "postgres", dsn=pg_dsn, capture=args.pg_capture),
                      astest.node_yaml("lite", "sqlite", path=lite)]
        if strat in ("script", "always"):
            with open(os.path.join(self.work, "merge.lua"), "w") as f:
                f.write(SCRIPT if strat == "script" else ALWAYS_SCRIPT)
        # the open conflicts mirrored into a SQL node's table (conflicts: { node, table }): in
        # every other case the mapping's own block, which wins over the configuration's (that
        # one then names the other SQL node and a table that must stay empty)
        self.mirror = ("pg", "lite")[list(TOPOLOGIES).index(topo) % 2]
        self.other = "lite" if self.mirror == "pg" else "pg"
        self.own_block = idx % 2 == 1
        mapping = MAPPING % STRATEGIES[strat]
        if self.own_block:
            mapping += "conflicts: { node: %s, table: app_conflicts }\n" % self.mirror
            extra = "conflicts: { node: %s, table: other_conflicts }\n" % self.other
        else:
            extra = "conflicts: { node: %s, table: app_conflicts }\n" % self.mirror
        if args.settle_after:
            extra += "versions: { settle_after: %s }\n" % args.settle_after
        self.cfg = astest.write_config(self.work, node_lines, [("items", mapping)],
                                       topology=TOPOLOGIES[topo], extra=extra)
        self.log = os.path.join(self.work, "connector.log")
        # who does what: rotated per case so every pair of kinds plays every role
        r = lambda j: NODES[(idx + j) % 3]  # noqa: E731
        self.ins = r(0)
        self.a = (r(0), r(1))      # ka: val on first, tag on second
        self.b = (r(1), r(2))      # kb: val on first, then val on second
        t = list(TOPOLOGIES).index(topo)
        self.nn = (NODES[t], NODES[(t + 1) % 3])  # kn (script): n on both; each pair of kinds once
        self.c = (r(0), r(2))      # kc: val on first, run, val on second
        self.d = (r(2), r(1))      # kd: delete on first, tag update on second

    def chk(self, what, ok, detail=""):
        return check("%s.%s" % (self.name, what), ok, detail)

    def cli(self, *a):
        return astest.cli(self.args.bin, self.cfg, *a, timeout=120)

    def run(self, what):
        t0 = time.time()
        with open(self.log, "a") as log:
            log.write("==== run: %s\n" % what)
            log.flush()
            try:
                p = subprocess.run([self.args.bin, "run", "-c", self.cfg, "--exit-when-idle", "3s",
                                    "--log-level", self.args.log_level], stdout=log, stderr=log, timeout=120)
                rc = p.returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        self.chk("run.%s" % what, rc == 0, "exit %s (log %s)" % (rc, self.log))
        return time.time() - t0

    def conflicts(self):
        r = self.cli("conflicts", "list", "--json")
        if r.returncode != 0:
            self.chk("conflicts.list", False, r.stderr.strip())
            return []
        return json.loads(r.stdout)

    def expect_rows(self, what, want):
        """Every node holds exactly `want` ({id: (val, tag, n)})."""
        got = self.nodes.all_rows()
        for n in NODES:
            diff = {k: (got[n].get(k), want.get(k)) for k in set(got[n]) | set(want) if got[n].get(k) != want.get(k)}
            self.chk("%s.%s" % (what, n), not diff, "key: (held, expected) %s" % diff)
        return got

    def mirrored(self):
        """{id: key} of the rows in the mirror table."""
        rows = self.nodes._sql(self.mirror, "select id, key from app_conflicts")
        return {int(r[0]): (r[1] if isinstance(r[1], dict) else json.loads(r[1])) for r in rows}

    def check_mirror(self, what, cs):
        """The mirror table holds exactly the open conflicts, each with its key."""
        want = {c["id"]: c["key"] for c in cs if c["status"] == "open"}
        try:
            got = self.mirrored()
        except Exception as e:  # noqa: BLE001 - a missing table is a failed check
            got = repr(e)
        self.chk("%s.mirror" % what, got == want, "table %s holds %s, open conflicts %s" % (self.mirror, got, want))
        if self.own_block:  # the configuration's table holds none of this mapping's conflicts
            try:
                other = self.nodes._sql(self.other, "select id from other_conflicts")
            except Exception:  # noqa: BLE001 - never created: nothing mirrored there
                other = []
            self.chk("%s.mirror_own_block" % what, not other, "%s's other_conflicts holds %s" % (self.other, other))
        return got

    def by_key(self, conflicts):
        out = {}
        for c in conflicts:
            out.setdefault(c["key"].get("id") if isinstance(c["key"], dict) else str(c["key"]), []).append(c)
        return out

    def check_versions(self, what, c, nodes, vals):
        """The conflict records both sides: their nodes, and (when given) their val values."""
        vs = c.get("versions") or []
        got_nodes = sorted(v.get("node") or "" for v in vs)
        self.chk(what + ".nodes", got_nodes == sorted(nodes), "versions' nodes %s, want %s" % (got_nodes, sorted(nodes)))
        if vals:
            got = {v.get("node"): (v.get("row") or {}).get("val", "<absent>") for v in vs}
            want = dict(zip(nodes, vals))
            self.chk(what + ".values", got == want, "versions' val %s, want %s" % (got, want))

    # ---- the steps
    def go_always(self):
        """call: always, sequential edits (each run in between): a decrease of n loses on every
        node (its own node is repaired), an increase and a change of other columns apply, and
        nothing is recorded as a conflict."""
        t0 = time.time()
        N = self.nodes
        r = self.cli("install")
        if not self.chk("install", r.returncode == 0, r.stderr.strip()):
            return
        want = {"kz": ("v0", "t0", 100), "ky": ("w0", "u0", 7)}
        for k, row in want.items():
            N.insert(self.ins, k, *row)
        self.run("initial")
        self.expect_rows("initial", want)
        A, B = self.a  # two different nodes
        N.set(A, "kz", "n", 50)  # a decrease: the script keeps mine's n
        N.set(A, "ky", "val", "w1-" + A)  # another key, another column: applies
        want["ky"] = ("w1-" + A,) + want["ky"][1:]
        self.run("decrease")
        self.expect_rows("decrease", want)
        N.set(B, "kz", "n", 300)
        N.set(B, "kz", "val", "v1-" + B)
        want["kz"] = ("v1-" + B, "t0", 300)
        self.run("increase")
        self.expect_rows("increase", want)
        N.set(A, "kz", "tag", "t1-" + A)  # n unchanged: the change as it is
        want["kz"] = ("v1-" + B, "t1-" + A, 300)
        self.run("other")
        self.expect_rows("other", want)
        self.chk("always.no_conflicts", self.conflicts() == [], json.dumps(self.conflicts())[:1500])
        # a script row that does not fit: a dead letter naming the column; the change goes
        # through as it is and is recorded as a conflict (open)
        N.set(B, "ky", "tag", "bad")
        want["ky"] = (want["ky"][0], "bad", want["ky"][2])
        self.run("bad")
        self.expect_rows("bad", want)
        cs = self.conflicts()
        self.chk("bad.conflict", [(c["key"], c["status"]) for c in cs] == [({"id": "ky"}, "open")],
                 json.dumps(cs)[:1500])
        r = self.cli("dlq", "list", "--json")
        dl = json.loads(r.stdout) if r.returncode == 0 else []
        err = (dl[0].get("error") or "") if len(dl) == 1 else ""
        self.chk("bad.dead_letter", len(dl) == 1 and "ky" in (dl[0].get("key") or "") and
                 'column "n"' in err and "items" in err, r.stdout + r.stderr)
        print("%s: %.1f s" % (self.name, time.time() - t0), flush=True)

    def go(self):
        if self.strat == "always":
            return self.go_always()
        t0 = time.time()
        N = self.nodes
        if self.pre_images:
            N.m.database.create_collection("items", changeStreamPreAndPostImages={"enabled": True})
        r = self.cli("install")
        if not self.chk("install", r.returncode == 0, r.stderr.strip()):
            return
        # 1. rows inserted on one node reach every node
        want = {}
        for i, k in enumerate(("ka", "kb", "kc", "kd", "kn", "kz")):
            want[k] = ("v0-" + k, "t0-" + k, 100 * (i + 1))
            N.insert(self.ins, k, *want[k])
        self.run("initial")
        self.expect_rows("initial", want)
        self.chk("initial.no_conflicts", self.conflicts() == [])

        # 2. concurrent edits, connector stopped
        A, B = self.a
        N.set(A, "ka", "val", "va-" + A)
        N.set(B, "ka", "tag", "ta-" + B)
        want["ka"] = ("va-" + A, "ta-" + B, want["ka"][2])
        if self.strat == "script":
            nA, nB = self.nn
            N.set(nA, "kn", "n", want["kn"][2] + 7)
            N.set(nB, "kn", "n", want["kn"][2] + 30)
        cA, _ = self.c
        N.set(cA, "kc", "val", "vc-" + cA)
        want["kc"] = ("vc-" + cA,) + want["kc"][1:]
        dDel, dUpd = self.d
        N.delete(dDel, "kd")
        N.set(dUpd, "kd", "tag", "td-" + dUpd)
        want["kd"] = (want["kd"][0], "td-" + dUpd, want["kd"][2])
        bA, bB = self.b
        N.set(bA, "kb", "val", "vb-" + bA)
        time.sleep(1.1)  # B's write is the later one by any clock resolution
        N.set(bB, "kb", "val", "vb-" + bB)
        self.run("concurrent")

        got = N.all_rows()
        kb = {n: got[n].get("kb") for n in NODES}
        if self.strat == "lww":
            want["kb"] = ("vb-" + bB,) + want["kb"][1:]
        elif self.strat == "script":
            want["kb"] = ("+".join(sorted(["vb-" + bA, "vb-" + bB])),) + want["kb"][1:]
            # ctx.base: the row the incoming change was made on top of (every node kind gives it
            # here; PostgreSQL trigger capture does not): both increments over the ancestor
            n0 = want["kn"][2]
            if args_capture == "triggers" and "pg" in self.nn:
                # without a base the script sums both values; which side comes in decides
                held = got["mongo"].get("kn")
                self.chk("n.sum_without_base", held is not None and held[2] in (n0 + 37, 2 * n0 + 37),
                         "kn held %s" % (held,))
                want["kn"] = held if held is not None else want["kn"]
            else:
                want["kn"] = want["kn"][:2] + (n0 + 37,)
        else:  # keep-local: whichever was in place; all equal, one of the two
            first = kb["mongo"]
            self.chk("b.keep_local.one_of_both", first is not None and first[0] in ("vb-" + bA, "vb-" + bB),
                     "kb held %s" % kb)
            want["kb"] = first if first is not None else want["kb"]
        self.expect_rows("concurrent", want)

        cs = self.conflicts()
        keys = self.by_key(cs)
        want_keys = ["kb", "kd", "kn"] if self.strat == "script" else ["kb", "kd"]
        self.chk("concurrent.conflict_keys", sorted(keys) == want_keys,
                 "conflicts recorded for %s, want %s: %s" % (sorted(keys), want_keys, json.dumps(cs)[:2000]))
        self.chk("a.no_conflict", "ka" not in keys)
        self.chk("c.no_conflict_yet", "kc" not in keys)
        kbc = keys.get("kb", [])
        if self.chk("b.one_conflict", len(kbc) == 1, "%d conflicts for kb: %s" % (len(kbc), json.dumps(kbc)[:1500])):
            c = kbc[0]
            self.chk("b.mapping", c["mapping"] == "items", c["mapping"])
            self.chk("b.key", c["key"] == {"id": "kb"}, json.dumps(c["key"]))
            self.chk("b.columns", c["columns"] == ["val"], json.dumps(c["columns"]))
            self.check_versions("b.versions", c, [bA, bB], ["vb-" + bA, "vb-" + bB])
            if self.strat == "script":
                self.chk("b.status", c["status"] == "resolved", c["status"])
                self.chk("b.chosen", c["chosen"] == "merged", str(c["chosen"]))
            else:
                self.chk("b.status", c["status"] == "open", c["status"])
                if self.strat == "lww":
                    self.chk("b.chosen", c["chosen"] == bB, "chosen %s, want %s (the later write)" % (c["chosen"], bB))
                else:
                    held = kb["mongo"][0] if kb["mongo"] else None
                    self.chk("b.chosen_in_place", c["chosen"] in (bA, bB) and held == "vb-" + c["chosen"],
                             "chosen %s, every node holds val %s" % (c["chosen"], held))
        kdc = keys.get("kd", [])
        if self.chk("d.one_conflict", len(kdc) == 1, "%d conflicts for kd: %s" % (len(kdc), json.dumps(kdc)[:1500])):
            self.check_versions("d.versions", kdc[0], [dDel, dUpd], None)
        if self.strat == "script":
            self.chk("n.no_conflict_recorded_open", all(c["status"] == "resolved" for c in keys.get("kn", [])),
                     json.dumps(keys.get("kn")))
        self.check_mirror("concurrent", cs)
        # an application settles kd's conflict by deleting its row from the mirror table
        settled = [c["id"] for c in kdc if c["status"] == "open"]
        self.chk("d.open", len(settled) == 1, json.dumps(kdc)[:500])
        for i in settled:
            self.nodes._sql(self.mirror, "delete from app_conflicts where id = ?", (i,))

        # 3. the sequential edit of kc, and a conflict resolved by hand
        _, cB = self.c
        N.set(cB, "kc", "val", "vc2-" + cB)
        want["kc"] = ("vc2-" + cB,) + want["kc"][1:]
        take = None
        if self.strat != "script" and len(kbc) == 1:
            c = kbc[0]
            take = bA if c["chosen"] == bB else bB  # the side not in place: a visible change
            r = self.cli("conflicts", "resolve", str(c["id"]), "--take", take)
            self.chk("resolve.exit", r.returncode == 0, r.stdout + r.stderr)
            want["kb"] = ("vb-" + take,) + want["kb"][1:]
        self.run("sequential+resolved")
        self.expect_rows("final", want)
        cs2 = self.conflicts()
        keys2 = self.by_key(cs2)
        self.chk("final.conflict_keys", sorted(keys2) == sorted(keys),
                 "conflicts recorded for %s, want %s" % (sorted(keys2), sorted(keys)))
        self.chk("c.no_conflict", "kc" not in keys2)
        if take is not None and len(keys2.get("kb", [])) == 1:
            c = keys2["kb"][0]
            self.chk("resolve.status", c["status"] == "resolved" and c["chosen"] == take,
                     "status %s chosen %s, want resolved %s" % (c["status"], c["chosen"], take))
            rr = c.get("resolved_row") or {}
            self.chk("resolve.row", rr.get("val") == "vb-" + take, json.dumps(rr))
        for c in keys2.get("kd", []):
            self.chk("d.settled_by_table", c["status"] == "resolved" or c["id"] not in settled,
                     "status %s" % c["status"])
        self.check_mirror("final", cs2)
        print("%s: %.1f s" % (self.name, time.time() - t0), flush=True)

    def drop(self):
        self.nodes.mc.drop_database(self.mdb)
        self.nodes.close()
        try:
            import psycopg2
            con = psycopg2.connect(self.pg_admin)
            con.autocommit = True
            con.cursor().execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.pg_db)
            con.close()
        except Exception as e:
            print("cleanup of %s: %s" % (self.pg_db, e), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--pg-dsn")
    ap.add_argument("--log-level", default="debug")
    ap.add_argument("--pg-capture", default="auto", choices=["auto", "logical", "triggers"],
                    help="the PostgreSQL node's capture mode")
    ap.add_argument("--settle-after", help="the connector's versions.settle_after (default: its own)")
    ap.add_argument("--case", action="append", help="TOPOLOGY-STRATEGY (default: all nine)")
    args = ap.parse_args()
    global args_capture
    args_capture = args.pg_capture
    args.work = os.path.abspath(args.work)
    os.makedirs(args.work, exist_ok=True)
    uri = astest.mongo_uri(os.path.join(args.work, "mongo-server"))
    pg_admin = args.pg_dsn or astest.start_pg(os.path.join(args.work, "pg-server"))
    cases = [(i, t, s) for i, (t, s) in enumerate(CASES) if not args.case or "%s-%s" % (t, s) in args.case]
    if not cases:
        sys.exit("strategies: no such case %s" % args.case)
    t0 = time.time()
    for i, t, s in cases:
        c = Case(args, i, t, s, uri, pg_admin)
        try:
            c.go()
        except Exception as e:  # a broken step fails the case, the others still run
            import traceback
            traceback.print_exc()
            check("%s.exception" % c.name, False, repr(e))
        finally:
            c.drop()
    print("strategies: %d passed, %d failed, %d expected failures, %d unexpected passes (%.0f s)" % (
        results["passed"], results["failed"], results["xfail"], results["xpass"], time.time() - t0))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

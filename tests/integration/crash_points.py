"""Crashes put exactly where a kill -9 can land (ARRAYSYNC_TEST_CRASH_AT, a test-only hook).

after-commit-with-dead: a batch committed on its target, where an update found no row
(the target writes nothing for it and the engine is to write the key's whole winning row
there), and the process dies right after the commit. The next start finds the batch
committed (the target's checkpoint is the batch's): the target must still get the row.
Before, that write was queued after the commit: the target was recorded as holding the row's
version and never got the row.

Two SQLite files a and b, peer-to-peer:
  1. a inserts k1, k2; both nodes get them.
  2. k1 disappears from b without a change the connector sees (deleted, and b's changelog
     row of that delete removed): the connector still counts b as holding k1.
  3. a updates one column of k1 and k2; run with the crash point: the a->b batch commits
     (k1's update finds no row on b, k2's applies), then the process is killed.
  4. run again: b holds k1 whole (a's row), k2 updated; both files equal.

a rewrite the only copy: a local change the connector overwrote on its node waits, in the
state store's repair queue, to be written back there (a rewrite: it outlives a kill -9). When
the connector has since deleted the row on that node, and on every other node too (a delete
older than the changes, relayed before they were seen: soak p2p-kill, trigger capture), the
rewrite must write the whole row, and no node holds the changes' values: the rewrites' stored
changes do. Two SQLite files c and d:
  1. c inserts k; 2. d updates its tag; both nodes hold (v-c, t-d).
  3. k disappears from both files unseen (deleted, their changelog rows removed); the state
     store gets the rewrites the engine queues in that case: c's insert back to c (its tag
     lost to d's since: an update of val alone, which finds no row there) and d's tag back
     to d. Run: both hold (v-c, t-d) again (before, both rewrites stayed queued: "no node is
     known to hold the winner of column val").
usage: crash_points.py --bin BUILD/arraysync --work DIR"""
import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import astest  # noqa: E402
from astest import check, results  # noqa: E402

MAPPING = """mapping: items
table: items
key: id
columns:
  id:  { type: text }
  val: { type: text }
  tag: { type: text }
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    work = os.path.abspath(a.work)
    os.makedirs(work, exist_ok=True)
    after_commit_with_dead(a, os.path.join(work, "dead"))
    rewrite_only_copy(a, os.path.join(work, "lost"))
    print("crash_points: %d passed, %d failed" % (results["passed"], results["failed"]))
    return 1 if results["failed"] else 0


def sqlite_nodes(a, work, names):
    os.makedirs(work, exist_ok=True)
    paths = {n: os.path.join(work, n + ".db") for n in names}
    nodes = [astest.node_yaml(n, "sqlite", path=p) for n, p in sorted(paths.items())]
    cfg = astest.write_config(work, nodes, [("items", MAPPING)])
    log = os.path.join(work, "connector.log")

    def sql(node, q, params=()):
        con = sqlite3.connect(paths[node], timeout=30)
        try:
            rows = con.execute(q, params).fetchall()
            con.commit()
            return rows
        finally:
            con.close()

    def run(what, crash=None):
        env = dict(os.environ)
        if crash:
            env["ARRAYSYNC_TEST_CRASH_AT"] = crash
        with open(log, "a") as f:
            f.write("==== run: %s\n" % what)
            f.flush()
            try:
                p = subprocess.run([a.bin, "run", "-c", cfg, "--exit-when-idle", "3s", "--log-level", "debug"],
                                   stdout=f, stderr=f, timeout=60, env=env)
            except subprocess.TimeoutExpired:  # killed: never idle (a repair that cannot run)
                return "not idle after 60 s"
        return p.returncode

    def rows(node):
        return {r[0]: (r[1], r[2]) for r in sql(node, "select id, val, tag from items")}

    def vanish(node, key):  # the row leaves the file unseen: its delete's changelog row goes too
        con = sqlite3.connect(paths[node], timeout=30)
        top = con.execute("select coalesce(max(seq), 0) from _arraysync_changelog").fetchone()[0]
        con.execute("delete from items where id = ?", (key,))
        con.execute("delete from _arraysync_changelog where seq > ?", (top,))
        con.commit()
        con.close()

    return cfg, log, sql, run, rows, vanish


def rewrite_only_copy(a, work):
    cfg, log, sql, run, rows, vanish = sqlite_nodes(a, work, ("c", "d"))
    r = astest.cli(a.bin, cfg, "install")
    if not check("lost: install", r.returncode == 0, r.stderr.strip()):
        return
    sql("c", "insert into items (id, val, tag) values ('k', 'v-c', 't-c')")
    rc = run("1 (insert on c)")
    check("lost 1: run exits 0 and d holds c's row", rc == 0 and rows("d") == {"k": ("v-c", "t-c")},
          "exit %r, d %r" % (rc, rows("d")))
    sql("d", "update items set tag = 't-d' where id = 'k'")
    rc = run("2 (tag updated on d)")
    want = {"k": ("v-c", "t-d")}
    check("lost 2: run exits 0 and c holds d's tag", rc == 0 and rows("c") == want, "exit %r, c %r" % (rc, rows("c")))
    dump = subprocess.run([os.path.join(os.path.dirname(a.bin), "arraysync_state_dump"),
                           os.path.join(work, "state.db")], capture_output=True, text=True, timeout=60)
    recs = [json.loads(x) for x in dump.stdout.splitlines() if x.startswith("{") and '"key"' in x]
    rec = next((x for x in recs if x.get("key") == '{"id":"k"}'), None)
    tag = next((c for c in (rec or {}).get("cols", []) if c.get("origin") == "d"), None)
    if not check("lost 2: the state store has c's row version and d's tag version",
                 rec is not None and rec.get("origin") == "c" and tag is not None,
                 dump.stdout[-500:] + dump.stderr[-300:]):
        return
    vanish("c", "k")
    vanish("d", "k")
    # both changes overwritten on their nodes, their rewrites queued: c's insert (its tag lost
    # to d's since, so an update of val alone, which finds no row), d's update of tag
    mine = {"mapping": "items", "op": "insert", "key": {"id": "k"}, "cols": {"val": "v-c", "tag": "t-c"},
            "origin": "c", "echo": False, "ts": rec["hlc"] >> 8, "hlc": rec["hlc"]}
    theirs = {"mapping": "items", "op": "update", "key": {"id": "k"}, "cols": {"tag": "t-d"},
              "origin": "d", "echo": False, "ts": tag["hlc"] >> 8, "hlc": tag["hlc"]}
    st = sqlite3.connect(os.path.join(work, "state.db"), timeout=30)
    for node, other, change in (("c", "d", mine), ("d", "c", theirs)):
        st.execute("insert into repairs (created_us, mapping, key, node, read_from, delta) values "
                   "(?, 'items', '{\"id\":\"k\"}', ?, ?, ?)",
                   (int(time.time() * 1e6), node, other, json.dumps(change)))
    st.commit()
    st.close()
    rc = run("3 (both rewrites queued; k on no node)")
    check("lost 3: run exits 0", rc == 0, "exit %r (log %s)" % (rc, log))
    check("lost 3: c gets the whole row back from the stored changes", rows("c") == want, repr(rows("c")))
    check("lost 3: d gets the whole row back too", rows("d") == want, repr(rows("d")))
    st = sqlite3.connect(os.path.join(work, "state.db"), timeout=30)
    left = st.execute("select count(*) from repairs").fetchone()[0]
    st.close()
    check("lost 3: no repair left pending", left == 0, "%d pending" % left)


def after_commit_with_dead(a, work):
    cfg, log, sql, run, rows, vanish = sqlite_nodes(a, work, ("a", "b"))
    paths = {n: os.path.join(work, n + ".db") for n in ("a", "b")}
    r = astest.cli(a.bin, cfg, "install")
    if not check("install", r.returncode == 0, r.stderr.strip()):
        return
    for k in ("k1", "k2"):
        sql("a", "insert into items (id, val, tag) values (?, ?, ?)", (k, "v0-" + k, "t0-" + k))
    rc = run("1 (inserts on a)")
    check("1: run exits 0 and b holds a's rows", rc == 0 and rows("b") == rows("a") and len(rows("a")) == 2,
          "exit %r, a %r, b %r" % (rc, rows("a"), rows("b")))

    # k1 leaves b unseen: its delete's changelog row is removed with it
    con = sqlite3.connect(paths["b"], timeout=30)
    top = con.execute("select coalesce(max(seq), 0) from _arraysync_changelog").fetchone()[0]
    con.execute("delete from items where id = 'k1'")
    con.execute("delete from _arraysync_changelog where seq > ?", (top,))
    con.commit()
    con.close()
    sql("a", "update items set val = 'v1-k1' where id = 'k1'")
    sql("a", "update items set val = 'v1-k2' where id = 'k2'")
    rc = run("2 (a's updates; killed after the batch committed on b)", crash="after-commit-with-dead")
    check("2: the process was killed at the crash point", rc == -signal.SIGKILL, "exit %r (log %s)" % (rc, log))
    check("2: b took k2's update and has no k1", rows("b") == {"k2": ("v1-k2", "t0-k2")}, repr(rows("b")))

    rc = run("3 (after the crash)")
    want = {"k1": ("v1-k1", "t0-k1"), "k2": ("v1-k2", "t0-k2")}
    check("3: run exits 0", rc == 0, "exit %r (log %s)" % (rc, log))
    check("3: a holds its rows", rows("a") == want, repr(rows("a")))
    check("3: b gets k1's whole row though the batch that found it missing committed before the crash",
          rows("b") == want, repr(rows("b")))


if __name__ == "__main__":
    sys.exit(main())

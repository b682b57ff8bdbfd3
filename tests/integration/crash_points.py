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
usage: crash_points.py --bin BUILD/arraysync --work DIR"""
import argparse
import os
import signal
import sqlite3
import subprocess
import sys

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
    paths = {n: os.path.join(work, n + ".db") for n in ("a", "b")}
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
            p = subprocess.run([a.bin, "run", "-c", cfg, "--exit-when-idle", "3s", "--log-level", "debug"],
                               stdout=f, stderr=f, timeout=120, env=env)
        return p.returncode

    def rows(node):
        return {r[0]: (r[1], r[2]) for r in sql(node, "select id, val, tag from items")}

    r = astest.cli(a.bin, cfg, "install")
    if not check("install", r.returncode == 0, r.stderr.strip()):
        return 1
    for k in ("k1", "k2"):
        sql("a", "insert into items (id, val, tag) values (?, ?, ?)", (k, "v0-" + k, "t0-" + k))
    rc = run("1 (inserts on a)")
    check("1: run exits 0 and b holds a's rows", rc == 0 and rows("b") == rows("a") and len(rows("a")) == 2,
          "exit %d, a %r, b %r" % (rc, rows("a"), rows("b")))

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
    check("2: the process was killed at the crash point", rc == -signal.SIGKILL, "exit %d (log %s)" % (rc, log))
    check("2: b took k2's update and has no k1", rows("b") == {"k2": ("v1-k2", "t0-k2")}, repr(rows("b")))

    rc = run("3 (after the crash)")
    want = {"k1": ("v1-k1", "t0-k1"), "k2": ("v1-k2", "t0-k2")}
    check("3: run exits 0", rc == 0, "exit %d (log %s)" % (rc, log))
    check("3: a holds its rows", rows("a") == want, repr(rows("a")))
    check("3: b gets k1's whole row though the batch that found it missing committed before the crash",
          rows("b") == want, repr(rows("b")))
    print("crash_points: %d passed, %d failed" % (results["passed"], results["failed"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

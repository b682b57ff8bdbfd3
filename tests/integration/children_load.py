#!/usr/bin/python3
"""Child tables under a randomized two-sided load with kill -9: writers on MongoDB (every array
operation: $push, $pull, $set of an element field, $unset of one, $pop, the whole array
replaced) and on SQLite files (child inserts, updates, deletes; parents too) change the same
parents at once, while the connector is killed -9 and restarted every few seconds; then every
node must hold, parent by parent, the same array: the same elements in the same order with the
same fields (the element fields no column maps included). With --nested each order holds an
array `lines` kept in a nested child table (order_lines), which the writers change too ($push,
$set of orders.0.lines.0.item, $pop; SQL inserts, updates and deletes of inner rows).

usage: children_load.py --bin build/arraysync --work DIR [--topology peer-to-peer|ring|
                        hub-and-spoke] [--lites N] [--pgs N] [--capture auto|triggers]
                        [--duration 30] [--kill 2-5] [--seed N] [--nested]"""
import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import astest  # noqa: E402

MAPPING = """mapping: customers
collection: customers
table: customers
key: id
columns:
  id:   { field: _id, type: text }
  name: { field: name, type: text }
children:
  - table: orders
    field: orders
    key: sku
    columns:
      sku:  { field: sku, type: text }
      qty:  { field: qty, type: int64 }
      rest: { field: "*", type: jsonb }
"""
NESTED = """    children:
      - table: order_lines
        field: lines
        columns:
          item:  { field: item, type: text }
          extra: { field: "*", type: jsonb }
"""
KEYS = ["k%02d" % i for i in range(12)]


def mongo_writer(uri, stop, seed, counts, nested=False):
    from pymongo import MongoClient
    rnd = random.Random(seed)
    m = MongoClient(uri, serverSelectionTimeoutMS=10000)["childload"]["customers"]
    n = 0
    while not stop.is_set():
        k = rnd.choice(KEYS)
        n += 1
        sku = "m%d" % n
        op = rnd.randrange(10 if nested else 7)
        try:
            if op == 7:
                m.update_one({"_id": k, "orders.0": {"$exists": True}},
                             {"$push": {"orders.0.lines": {"item": "mi%d" % n, "tag": n}}})
            elif op == 8:
                m.update_one({"_id": k, "orders.0.lines.0": {"$exists": True}},
                             {"$set": {"orders.0.lines.0.item": "ms%d" % n}})
            elif op == 9:
                m.update_one({"_id": k, "orders.0.lines.0": {"$exists": True}}, {"$pop": {"orders.0.lines": 1}})
            elif op == 0:
                m.update_one({"_id": k}, {"$push": {"orders": {"sku": sku, "qty": rnd.randrange(100),
                                                               "note": "n%d" % n}},
                                          "$setOnInsert": {"name": "mongo"}}, upsert=True)
            elif op == 1:
                d = m.find_one({"_id": k}) or {}
                if d.get("orders"):
                    m.update_one({"_id": k}, {"$pull": {"orders": {"sku": rnd.choice(d["orders"]).get("sku")}}})
            elif op == 2:
                m.update_one({"_id": k, "orders.0": {"$exists": True}}, {"$set": {"orders.0.qty": n}})
            elif op == 3:
                m.update_one({"_id": k, "orders.0": {"$exists": True}}, {"$unset": {"orders.0.note": ""}})
            elif op == 4:
                m.update_one({"_id": k}, {"$pop": {"orders": 1}})
            elif op == 5:
                m.update_one({"_id": k}, {"$set": {"name": "m%d" % n,
                                                   "orders": [{"sku": sku + "a", "qty": 1, "note": {"deep": n}},
                                                              {"sku": sku + "b", "qty": 2}]}}, upsert=True)
            else:
                m.update_one({"_id": k}, {"$set": {"name": "m%d" % n}}, upsert=True)
            counts["mongo"] += 1
        except Exception as e:  # a write the server refused is not the connector's fault
            counts["mongo_err"] += 1
            if counts["mongo_err"] < 5:
                print("mongo writer:", e, flush=True)
        time.sleep(rnd.uniform(0.005, 0.03))


def lite_writer(path, name, stop, seed, counts, nested=False):
    rnd = random.Random(seed)
    n = 0
    first = ("select customers_id, sku from orders where customers_id = ? order by position limit 1")
    while not stop.is_set():
        k = rnd.choice(KEYS)
        n += 1
        sku = "%s%d" % (name, n)
        op = rnd.randrange(8 if nested else 5)
        c = sqlite3.connect(path, timeout=30)
        try:
            c.execute("pragma foreign_keys = on")
            o = c.execute(first, (k,)).fetchone() if op >= 5 else None
            if op >= 5 and o is None:
                pass
            elif op == 5:
                pos = c.execute("select coalesce(max(position) + 1, 0) from order_lines where orders_customers_id = ? "
                                "and orders_sku = ?", o).fetchone()[0]
                c.execute("insert into order_lines (orders_customers_id, orders_sku, position, item, extra) "
                          "values (?, ?, ?, ?, ?)", o + (pos, "%si%d" % (name, n), json.dumps({"x": n})))
            elif op == 6:
                c.execute("update order_lines set item = ? where orders_customers_id = ? and orders_sku = ? and "
                          "position = 0", ("%su%d" % (name, n),) + o)
            elif op == 7:
                c.execute("delete from order_lines where orders_customers_id = ? and orders_sku = ? and position = "
                          "(select max(position) from order_lines where orders_customers_id = ? and orders_sku = ?)",
                          o + o)
            elif op == 0:
                c.execute("insert or ignore into customers (id, name) values (?, ?)", (k, name))
                pos = c.execute("select coalesce(max(position) + 1, 0) from orders where customers_id = ?",
                                (k,)).fetchone()[0]
                c.execute("insert into orders (customers_id, position, sku, qty, rest) values (?, ?, ?, ?, ?)",
                          (k, pos, sku, rnd.randrange(100), json.dumps({"w": n})))
            elif op == 1:
                c.execute("update orders set qty = ? where rowid = (select rowid from orders where customers_id = ? "
                          "order by position limit 1)", (n, k))
            elif op == 2:
                c.execute("delete from orders where rowid = (select rowid from orders where customers_id = ? "
                          "order by position desc limit 1)", (k,))
            elif op == 3:
                c.execute("update customers set name = ? where id = ?", ("%s%d" % (name, n), k))
            else:
                c.execute("update orders set rest = json_set(coalesce(rest, '{}'), '$.v', ?) where rowid = "
                          "(select rowid from orders where customers_id = ? order by position limit 1)", (n, k))
            c.commit()
            counts[name] += 1
        except sqlite3.Error:  # busy, or a row the connector removed meanwhile (a foreign key):
            counts[name + "_err"] += 1  # the writer goes on
        finally:
            c.close()  # never a transaction left open (it would hold the file's write lock)
        time.sleep(rnd.uniform(0.005, 0.03))


def pg_writer(dsn, name, stop, seed, counts, nested=False):
    import psycopg2
    rnd = random.Random(seed)
    n = 0
    first = "(customers_id, sku) = (select customers_id, sku from orders where customers_id = %s order by position {} limit 1)"
    while not stop.is_set():
        k = rnd.choice(KEYS)
        n += 1
        sku = "%s%d" % (name, n)
        op = rnd.randrange(8 if nested else 5)
        c = psycopg2.connect(dsn)
        try:
            cur = c.cursor()
            o = None
            if op >= 5:
                cur.execute("select customers_id, sku from orders where customers_id = %s order by position limit 1", (k,))
                o = cur.fetchone()
            if op >= 5 and o is None:
                pass
            elif op == 5:
                cur.execute("select coalesce(max(position) + 1, 0) from order_lines where orders_customers_id = %s "
                            "and orders_sku = %s", o)
                pos = cur.fetchone()[0]
                cur.execute("insert into order_lines (orders_customers_id, orders_sku, position, item, extra) "
                            "values (%s, %s, %s, %s, %s)", o + (pos, "%si%d" % (name, n), json.dumps({"x": n})))
            elif op == 6:
                cur.execute("update order_lines set item = %s where orders_customers_id = %s and orders_sku = %s and "
                            "position = 0", ("%su%d" % (name, n),) + o)
            elif op == 7:
                cur.execute("delete from order_lines where orders_customers_id = %s and orders_sku = %s and position = "
                            "(select max(position) from order_lines where orders_customers_id = %s and "
                            "orders_sku = %s)", o + o)
            elif op == 0:
                cur.execute("insert into customers (id, name) values (%s, %s) on conflict do nothing", (k, name))
                cur.execute("select coalesce(max(position) + 1, 0) from orders where customers_id = %s", (k,))
                pos = cur.fetchone()[0]
                cur.execute("insert into orders (customers_id, position, sku, qty, rest) values (%s, %s, %s, %s, %s)",
                            (k, pos, sku, rnd.randrange(100), json.dumps({"w": n})))
            elif op == 1:
                cur.execute("update orders set qty = %s where " + first.format(""), (n, k))
            elif op == 2:
                cur.execute("delete from orders where " + first.format("desc"), (k,))
            elif op == 3:
                cur.execute("update customers set name = %s where id = %s", ("%s%d" % (name, n), k))
            else:
                cur.execute("update orders set rest = coalesce(rest, '{}'::jsonb) || jsonb_build_object('v', %s::int) "
                            "where " + first.format(""), (n, k))
            c.commit()
            counts[name] += 1
        except psycopg2.Error:  # a conflict with the connector's own write: the writer goes on
            counts[name + "_err"] += 1
        finally:
            c.close()
        time.sleep(rnd.uniform(0.005, 0.03))


def sql_state(rows, orders, lines, loads):
    """{key: {name, orders: [element dict, with its lines when it has some]}} from the rows of
    customers, orders and order_lines (in position order)."""
    out = {}
    for (k, name) in rows:
        out[k] = {"name": name, "orders": []}
    inner = {}
    for (k, sku, item, extra) in lines:
        e = {} if item is None else {"item": item}
        e.update(loads(extra) or {})
        inner.setdefault((k, sku), []).append(e)
    for (k, sku, qty, rest) in orders:
        e = {"sku": sku}
        if qty is not None:
            e["qty"] = qty
        e.update(loads(rest) or {})
        if (k, sku) in inner:
            e["lines"] = inner[(k, sku)]
        out.setdefault(k, {"name": None, "orders": []})["orders"].append(e)
    return out


def pg_state(dsn, nested):
    import psycopg2
    c = psycopg2.connect(dsn)
    cur = c.cursor()

    def q(sql):
        cur.execute(sql)
        return cur.fetchall()
    lines = q("select orders_customers_id, orders_sku, item, extra from order_lines order by orders_customers_id, "
              "orders_sku, position") if nested else []
    out = sql_state(q("select id, name from customers"),
                    q("select customers_id, sku, qty, rest from orders order by customers_id, position, sku"),
                    lines, lambda v: v)
    c.close()
    return out


def lite_state(path, nested):
    c = sqlite3.connect(path, timeout=30)
    lines = c.execute("select orders_customers_id, orders_sku, item, extra from order_lines order by "
                      "orders_customers_id, orders_sku, position").fetchall() if nested else []
    out = sql_state(c.execute("select id, name from customers").fetchall(),
                    c.execute("select customers_id, sku, qty, rest from orders order by customers_id, position, "
                              "sku").fetchall(), lines, lambda v: json.loads(v) if v else None)
    c.close()
    return out


def mongo_state(m):
    out = {}
    for d in m.find():
        orders = [dict(e) for e in d.get("orders") or []]
        for e in orders:  # an empty inner array is no inner rows, as SQL gives it back
            if "lines" in e:
                e["lines"] = [dict(x) for x in e["lines"] or []]
                if not e["lines"]:
                    del e["lines"]
        out[d["_id"]] = {"name": d.get("name"), "orders": orders}
    return out


def final_writes(m, lites, pgs, nested):
    """After the load, one element written on MongoDB (with a field no column maps, and an inner
    element with one when nested) and one on a SQL node (with an inner row when nested): what the
    end checks count no longer depends on where the random writes left the arrays."""
    el = {"sku": "final-m", "qty": 1, "note": "final"}
    if nested:
        el["lines"] = [{"item": "final-mi", "tag": 0}]
    m.update_one({"_id": KEYS[0]}, {"$push": {"orders": el}, "$setOnInsert": {"name": "final"}}, upsert=True)
    stmts = [("insert into customers (id, name) values (?, 'final') on conflict do nothing", (KEYS[1],)),
             ("insert into orders (customers_id, position, sku, qty) select ?, coalesce(max(position) + 1, 0), "
              "'final-s', 2 from orders where customers_id = ?", (KEYS[1], KEYS[1]))]
    if nested:
        stmts.append(("insert into order_lines (orders_customers_id, orders_sku, position, item) "
                      "values (?, 'final-s', 0, 'final-si')", (KEYS[1],)))
    if lites:
        c = sqlite3.connect(next(iter(lites.values())), timeout=30)
        for q, args in stmts:
            c.execute(q, args)
        c.commit()
    else:
        import psycopg2
        c = psycopg2.connect(next(iter(pgs.values())))
        cur = c.cursor()
        for q, args in stmts:
            cur.execute(q.replace("?", "%s"), args)
        c.commit()
    c.close()
    return {"sku": "final-s", "qty": 2} if not nested else {"sku": "final-s", "qty": 2,
                                                            "lines": [{"item": "final-si"}]}


def explain(a, work, keys):
    """For keys the nodes disagree on: what the state store holds of each and the connector's
    last trace lines about it (its decisions and commits), so that a failure seen once, in CI,
    can still be read afterwards."""
    tool = os.path.join(os.path.dirname(os.path.abspath(a.bin)), "arraysync_state_dump")
    dump = []
    if os.path.exists(tool):
        r = subprocess.run([tool, os.path.join(work, "state.db"), "customers"], capture_output=True,
                           text=True, timeout=120)
        dump = r.stdout.splitlines()
    dlq = astest.cli(a.bin, os.path.join(work, "arraysync.yaml"), "dlq", "list", timeout=120)
    dead = (dlq.stdout or dlq.stderr or "").splitlines()
    print("DLQ %s" % (dead[0] if dead else "exit %d" % dlq.returncode))
    lines = []
    for name in ("connector.log", "final.log"):
        try:
            with open(os.path.join(work, name), errors="replace") as f:
                lines += f.read().splitlines()
        except OSError:
            pass
    warns = [x for x in lines if "Z warn " in x or "Z error " in x]
    print("WARN %d warning lines, the last %d:" % (len(warns), min(len(warns), 10)))
    for x in warns[-10:]:
        print("  " + x[:300])
    for k in keys:
        tag = '{"id":"%s"}' % k
        for line in dump:
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if o.get("key") == tag:
                print("STATE %s: %s" % (k, line[:1500]))
        for x in [x for x in dead if k in x][:5]:
            print("DLQ %s: %s" % (k, x[:400]))
        about = [x for x in lines if tag in x]
        print("TRACE %s: %d lines about it, the last %d:" % (k, len(about), min(len(about), 40)))
        for x in about[-40:]:
            print("  " + x[:400])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--topology", default="peer-to-peer")
    ap.add_argument("--lites", type=int, default=1)
    ap.add_argument("--pgs", type=int, default=0)
    ap.add_argument("--capture", default="auto")
    ap.add_argument("--full-document", default="whenAvailable",
                    help="the MongoDB node's full_document (whenAvailable: post-images, exact; "
                         "updateLookup: each stream reads the document when it reads the event)")
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--kill", default="2-5")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--nested", action="store_true", help="orders hold lines, a nested child table")
    a = ap.parse_args()
    work = os.path.abspath(a.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    print("children_load: seed %d, %s, %d SQLite node(s), %d PostgreSQL node(s)%s, MongoDB %s" % (
        a.seed, a.topology, a.lites, a.pgs, "" if a.pgs == 0 else " (capture %s)" % a.capture,
        a.full_document), flush=True)
    uri = astest.mongo_uri(os.path.join(work, "mongo-server"))
    from pymongo import MongoClient
    mc = MongoClient(uri, serverSelectionTimeoutMS=10000)
    m = mc["childload"]["customers"]
    lites = {"lite%d" % i: os.path.join(work, "lite%d.db" % i) for i in range(1, a.lites + 1)}
    if a.full_document == "whenAvailable":
        m.database.create_collection("customers", changeStreamPreAndPostImages={"enabled": True})
    nodes = [astest.node_yaml("mongo", "mongodb", uri=uri, database="childload", full_document=a.full_document)]
    nodes += [astest.node_yaml(nm, "sqlite", path=p) for nm, p in lites.items()]
    pgs = {}
    if a.pgs:
        admin = astest.start_pg(os.path.join(work, "pg-server"))
        pgs = {"pg%d" % i: astest.fresh_pg_db(admin, "childload%d" % i) for i in range(1, a.pgs + 1)}
    nodes += [astest.node_yaml(nm, "postgres", dsn=d, capture=a.capture) for nm, d in pgs.items()]
    topo = {"peer-to-peer": "{ type: peer-to-peer }",
            "ring": "{ type: ring, order: [%s] }" % ", ".join(["mongo"] + list(lites) + list(pgs)),
            "hub-and-spoke": "{ type: hub-and-spoke, hub: mongo }"}[a.topology]
    cfg = astest.write_config(work, nodes, [("customers", MAPPING + (NESTED if a.nested else ""))], topology=topo)
    if astest.cli(a.bin, cfg, "install").returncode != 0:
        print("FAIL install")
        return 1
    # the first sync of the (empty) nodes is done before anyone writes: keys that two nodes
    # created before any sync are a conflict the first sync leaves alone (initial_sync)
    astest.cli(a.bin, cfg, "run", "--exit-when-idle", "1s", timeout=120)
    # traced: every decision and commit is a log line (explain() shows them after a failure)
    conn = astest.Connector(a.bin, cfg, os.path.join(work, "connector.log"),
                            args=["--log-level", "trace"])
    conn.start()
    stop = threading.Event()
    counts = {"mongo": 0, "mongo_err": 0}
    for nm in list(lites) + list(pgs):
        counts[nm] = counts[nm + "_err"] = 0
    threads = [threading.Thread(target=mongo_writer, args=(uri, stop, a.seed, counts, a.nested))]
    threads += [threading.Thread(target=lite_writer, args=(p, nm, stop, a.seed + i + 1, counts, a.nested))
                for i, (nm, p) in enumerate(lites.items())]
    threads += [threading.Thread(target=pg_writer, args=(d, nm, stop, a.seed + 100 + i, counts, a.nested))
                for i, (nm, d) in enumerate(pgs.items())]
    for t in threads:
        t.start()
    rnd = random.Random(a.seed)
    lo, hi = (float(x) for x in a.kill.split("-"))
    end = time.time() + a.duration
    kills = 0
    while time.time() < end:
        time.sleep(min(rnd.uniform(lo, hi), max(0.0, end - time.time())))
        if time.time() < end:
            conn.kill9()
            kills += 1
            conn.start()
    stop.set()
    for t in threads:
        t.join()
    conn.stop()
    sql_el = final_writes(m, lites, pgs, a.nested)
    r = astest.cli(a.bin, cfg, "run", "--log-level", "trace", "--exit-when-idle", "3s", timeout=300)
    with open(os.path.join(work, "final.log"), "w") as f:
        f.write((r.stdout or "") + (r.stderr or ""))
    states = {"mongo": mongo_state(m)}
    for nm, p in lites.items():
        states[nm] = lite_state(p, a.nested)
    for nm, d in pgs.items():
        states[nm] = pg_state(d, a.nested)
    print("writes: %s; kill -9: %d" % (json.dumps(counts), kills), flush=True)
    fails = 0 if r.returncode == 0 else 1
    if r.returncode != 0:
        print("FAIL the final run exited %d" % r.returncode)
    ref = states["mongo"]
    differing = []
    for nm, st in states.items():
        if nm == "mongo":
            continue
        diff = [k for k in sorted(set(ref) | set(st)) if ref.get(k) != st.get(k)]
        differing += [k for k in diff[:2] if k not in differing]
        ok = not diff
        fails += 0 if ok else 1
        print("%s %s holds what MongoDB holds (%d parents, %d elements)%s" % (
            "PASS" if ok else "FAIL", nm, len(ref), sum(len(v["orders"]) for v in ref.values()),
            "" if ok else ": " + "; ".join("%s mongo=%s %s=%s" % (k, ref.get(k), nm, st.get(k)) for k in diff[:3])),
            flush=True)
    fin = (sql_el in ref.get(KEYS[1], {}).get("orders", []) and
           any(e.get("sku") == "final-m" for e in ref.get(KEYS[0], {}).get("orders", [])))
    fails += 0 if fin else 1
    print("%s the elements written after the load are in MongoDB (and so on every node)" % (
        "PASS" if fin else "FAIL"), flush=True)
    vr = astest.cli(a.bin, cfg, "verify", "--json", timeout=300)
    try:
        rep = json.loads(vr.stdout or "[]")
    except ValueError:
        rep = []
    vok = vr.returncode == 0 and bool(rep) and all(p["equal"] for p in rep)
    fails += 0 if vok else 1
    print("%s arraysync verify: every pair equal (%d pairs)%s" % (
        "PASS" if vok else "FAIL", len(rep), "" if vok else ": %d %s %s" % (vr.returncode, vr.stdout[-500:],
                                                                        vr.stderr[-300:])), flush=True)
    notes = sum(1 for v in ref.values() for e in v["orders"] if "note" in e)
    print("%s unmapped element fields survive (%d elements keep a MongoDB-only field)" % (
        "PASS" if notes > 0 else "FAIL", notes), flush=True)
    fails += 0 if notes > 0 else 1
    if a.nested:
        inner = sum(len(e.get("lines", [])) for v in ref.values() for e in v["orders"])
        tags = sum(1 for v in ref.values() for e in v["orders"] for x in e.get("lines", []) if "tag" in x)
        print("%s inner arrays at the end: %d inner elements, %d keep a MongoDB-only field" % (
            "PASS" if inner > 0 and tags > 0 else "FAIL", inner, tags), flush=True)
        fails += 0 if inner > 0 and tags > 0 else 1
    with open(os.path.join(work, "final.json"), "w") as f:
        json.dump(states, f, indent=1, sort_keys=True, default=str)
    mc.drop_database("childload")
    mc.close()
    if differing:
        explain(a, work, differing[:2])
    print("children_load: %s (seed %d)" % ("all passed" if not fails else "%d failed" % fails, a.seed))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

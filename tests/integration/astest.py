"""Shared helpers of the Python integration tests (e2e.py, e2e_topology.py, converge.py, ...):
PASS/FAIL checks, free ports, the private test servers (PostgreSQL via tests/scripts/pg_server.sh, the MongoDB
test server via tests/scripts/mongo_server.sh unless ARRAYSYNC_TEST_MONGODB_URI is set), fresh
PostgreSQL databases, top-level configuration files and the connector process.

Everything listens on and connects to 127.0.0.1 only. MongoDB is reached only through a URI,
so a test runs unchanged against a real replica set."""
import atexit
import json
import os
import signal
import socket
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(ROOT, "tests", "scripts")


results = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    """Prints "PASS name" or "FAIL name: detail" (up to 1,500 characters of it), counts the
    check in results and returns ok."""
    results["passed" if ok else "failed"] += 1
    d = "" if detail is None else str(detail)
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, (": " + d[:1500]) if d and not ok else ""), flush=True)
    return ok


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_until(pred, timeout=30.0, interval=0.1):
    """Calls pred until it returns true (then True) or timeout seconds pass (then False);
    an exception in pred counts as false."""
    end = time.time() + timeout
    while True:
        try:
            if pred():
                return True
        except Exception:
            pass
        if time.time() >= end:
            return False
        time.sleep(interval)


# ---------------------------------------------------------------- servers
_STOPS = []


def _stop_servers():
    while _STOPS:
        fn = _STOPS.pop()
        try:
            fn()
        except Exception:
            pass


atexit.register(_stop_servers)


def start_pg(directory):
    """Starts a private PostgreSQL in directory (stopped at exit); returns its DSN."""
    port = free_port()
    dsn = subprocess.run([os.path.join(SCRIPTS, "pg_server.sh"), "start", directory, str(port)],
                         check=True, capture_output=True, text=True).stdout.strip()
    _STOPS.append(lambda: subprocess.run([os.path.join(SCRIPTS, "pg_server.sh"), "stop", directory],
                                         capture_output=True))
    return dsn


def mongo_uri(directory):
    """ARRAYSYNC_TEST_MONGODB_URI when set, else starts the project's MongoDB test server in
    directory (stopped at exit) and returns its URI."""
    uri = os.environ.get("ARRAYSYNC_TEST_MONGODB_URI")
    if uri:
        return uri
    port = free_port()
    subprocess.run([os.path.join(SCRIPTS, "mongo_server.sh"), "start", str(port), directory],
                   check=True, capture_output=True)
    _STOPS.append(lambda: subprocess.run([os.path.join(SCRIPTS, "mongo_server.sh"), "stop", str(port),
                                          directory], capture_output=True))
    return "mongodb://127.0.0.1:%d/?replicaSet=rs0" % port


def pg_exec(dsn, sql, params=()):
    import psycopg2
    con = psycopg2.connect(dsn)
    try:
        cur = con.cursor()
        cur.execute(sql, params)
        rows = cur.fetchall() if cur.description else []
        con.commit()
        return rows
    finally:
        con.close()


def fresh_pg_db(dsn, name):
    """Creates database `name` (dropped first) and returns a DSN for it."""
    import psycopg2
    con = psycopg2.connect(dsn)
    con.autocommit = True
    cur = con.cursor()
    cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    cur.execute('CREATE DATABASE "%s"' % name)
    con.close()
    return " ".join(p for p in dsn.split() if not p.startswith("dbname=")) + " dbname=" + name


class MongoTxnLifetime:
    """Shortens transactionLifetimeLimitSeconds (a connector killed inside a transaction leaves
    it open until then) and restores it on restore(); a server that refuses is left alone."""

    def __init__(self, client, seconds):
        self.client, self.old = client, None
        try:
            self.old = client.admin.command("getParameter", 1, transactionLifetimeLimitSeconds=1)[
                "transactionLifetimeLimitSeconds"]
            client.admin.command("setParameter", 1, transactionLifetimeLimitSeconds=seconds)
        except Exception:
            self.old = None

    def restore(self):
        if self.old is not None:
            try:
                self.client.admin.command("setParameter", 1, transactionLifetimeLimitSeconds=self.old)
            except Exception:
                pass
            self.old = None


# ---------------------------------------------------------------- configuration
def yq(s):
    """A YAML double-quoted scalar."""
    return json.dumps(str(s))


def node_yaml(name, kind, **settings):
    """One entry of `nodes:` as a flow mapping, e.g. node_yaml("pg", "postgres", dsn=DSN)."""
    parts = ["kind: %s" % kind] + ["%s: %s" % (k, yq(v)) for k, v in settings.items()]
    return "  %s: { %s }\n" % (name, ", ".join(parts))


def write_config(work, nodes, mappings, topology="{ type: peer-to-peer }",
                 batch="{ max_rows: 500, max_latency: 10ms }", extra=""):
    """Writes work/mappings/<name>.yaml for every (name, text) of mappings and
    work/arraysync.yaml with the given nodes (text of node_yaml lines); returns its path."""
    os.makedirs(os.path.join(work, "mappings"), exist_ok=True)
    for name, text in mappings:
        with open(os.path.join(work, "mappings", name + ".yaml"), "w") as f:
            f.write(text)
    cfg = os.path.join(work, "arraysync.yaml")
    with open(cfg, "w") as f:
        f.write("nodes:\n%sstate: state.db\ntopology: %s\nmappings: \"mappings/*.yaml\"\nbatch: %s\n%s"
                % ("".join(nodes), topology, batch, extra))
    return cfg


# ---------------------------------------------------------------- the connector
_CONNECTORS = []


def _kill_connectors():  # whatever happens to the test, no connector outlives it
    for c in _CONNECTORS:
        p = c.proc
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_kill_connectors)


def cli(binary, cfg, *a, timeout=60):
    """Runs `arraysync A... -c CFG`; returns the CompletedProcess (text)."""
    return subprocess.run([binary] + list(a) + ["-c", cfg], capture_output=True, text=True,
                          timeout=timeout)


def quick_verify(binary, cfg):
    """`arraysync verify --quick --json`: (every pair equal, number of pairs, summary)."""
    r = cli(binary, cfg, "verify", "--quick", "--json", timeout=60)
    try:
        pairs = json.loads(r.stdout)
    except ValueError:
        return False, 0, "exit %d: %s" % (r.returncode, (r.stderr or r.stdout).strip()[:300])
    parts = ["%s %s-%s %s" % (p["mapping"], p["nodes"][0], p["nodes"][1],
                              "equal" if p["equal"] else "DIFFERENT")
             for p in pairs]
    return r.returncode == 0 and all(p["equal"] for p in pairs), len(pairs), "; ".join(parts)


class Connector:
    """`arraysync run -c CFG` as a child process, its output appended to log_path."""

    def __init__(self, binary, cfg, log_path, args=()):
        self.binary, self.cfg, self.args = binary, cfg, list(args)
        self.log_path = log_path
        self.proc = None
        self.starts = 0
        _CONNECTORS.append(self)

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "run", "-c", self.cfg] + self.args,
                                     stdout=log, stderr=log)
        log.close()
        self.starts += 1
        return self.proc

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self, timeout=30):
        """SIGTERM; returns the exit code (SIGKILL after timeout seconds: returns None)."""
        if not self.alive():
            return self.proc.returncode if self.proc is not None else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def status(self):
        """`arraysync status --json` parsed, or None when it fails."""
        try:
            r = cli(self.binary, self.cfg, "status", "--json", timeout=30)
        except subprocess.TimeoutExpired:
            return None
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

#!/usr/bin/python3
"""Runner for MongoDB's unified test format against the ArraySync MongoDB test server.

Runs the specification tests vendored under specs/ (from the public mongodb/specifications
repository, see specs/README.md) through Debian's pymongo 3.11, the way a driver's own runner
would: initialData, createEntities, operations with expectResult / expectError, expectEvents
(command monitoring) and outcome, honouring runOnRequirements against what the server reports.
A test is skipped only for a reason written down in SKIPS below (or a version/topology
requirement the server does not meet); everything else passes or fails.

Usage: /usr/bin/python3 tests/mongo_server/spec_runner.py [--uri URI] [-k SUBSTRING] [-v]
                                                        [FILE_OR_DIR ...]
Without --uri a private server is started with tests/scripts/mongo_server.sh on a free
127.0.0.1 port and stopped at the end. Prints one line per test and a final
"N passed, N failed, N skipped" line; exits 1 if any test failed.
"""
import argparse
import datetime
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
import warnings

from bson import json_util, SON
from bson.binary import Binary
from bson.code import Code
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp
import pymongo
from pymongo import monitoring, ReturnDocument
from pymongo import change_stream as _pm_change_stream
from pymongo import helpers as _pm_helpers
from pymongo import read_preferences
from pymongo.client_session import TransactionOptions, _TxnState
from pymongo.errors import (BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError,
                            NotMasterError, WriteConcernError)
from pymongo.operations import (DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany,
                                UpdateOne)
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

warnings.simplefilter("ignore", DeprecationWarning)  # Collection.count: the spec's "count" operation

HERE = os.path.dirname(os.path.abspath(__file__))
SPECS = os.path.join(HERE, "specs")
SERVER_SH = os.path.join(HERE, "..", "scripts", "mongo_server.sh")
TEST_TIMEOUT_S = 60
SCHEMA_MAX = (1, 28)

# Tests skipped on purpose: (file, test description) -> reason. Each is a driver behaviour that
# Debian's pymongo 3.11 predates (the server is not involved); README.md lists them.
_PYMONGO_TXN_READPREF = ("pymongo 3.11 checks the transaction's read preference only after selecting a "
                         "server; with no secondary in a one-node replica set that selection times out "
                         "(30 s) instead of failing at once with the client error the test expects")
_PYMONGO_GETMORE_COMMENT = "pymongo 3.11 does not send 'comment' on getMore (drivers do since 4.4 servers)"
_PYMONGO_RESET_SESSION = ("expects the driver to send readConcern.afterClusterTime on writes in a causally "
                          "consistent session (a 2026 driver change, DRIVERS-3274); pymongo 3.11 sends it on reads only")
SKIPS = {
    ("transactions/read-pref.json", "secondary readPreference"): _PYMONGO_TXN_READPREF,
    ("transactions/run-command.json", "run command fails with explicit secondary read preference"): _PYMONGO_TXN_READPREF,
    ("transactions/run-command.json", "run command fails with secondary read preference from transaction options"):
        _PYMONGO_TXN_READPREF,
    ("transactions/transaction-options.json", "readPreference inherited from client"): _PYMONGO_TXN_READPREF,
    ("transactions/transaction-options.json", "readPreference inherited from defaultTransactionOptions"):
        _PYMONGO_TXN_READPREF,
    ("transactions/transaction-options.json", "startTransaction overrides readPreference"): _PYMONGO_TXN_READPREF,
    ("change-streams/change-streams.json", "Test that comment is set on getMore"): _PYMONGO_GETMORE_COMMENT,
    ("crud/aggregate.json", "aggregate with comment sets comment on getMore"): _PYMONGO_GETMORE_COMMENT,
    ("crud/find.json", "Find with batchSize equal to limit"):
        "expects the driver to send batchSize limit+1 when batchSize equals limit (2024 CRUD spec change); "
        "pymongo 3.11 sends batchSize = limit",
    ("transactions/commit.json", "reset session state commit"): _PYMONGO_RESET_SESSION,
    ("transactions/commit.json", "reset session state abort"): _PYMONGO_RESET_SESSION,
    ("transactions/retryable-writes.json", "increment txnNumber"): _PYMONGO_RESET_SESSION,
}
# Whole files skipped: file -> reason.
_BACKPRESSURE = ("client-side retries with backoff on SystemOverloadedError/RetryableError labels (a 2025 "
                 "driver feature); pymongo 3.11 does not implement it")
FILE_SKIPS = {
    "transactions/backpressure-retryable-abort.json": _BACKPRESSURE,
    "transactions/backpressure-retryable-commit.json": _BACKPRESSURE,
    "transactions/backpressure-retryable-reads.json": _BACKPRESSURE,
    "transactions/backpressure-retryable-writes.json": _BACKPRESSURE,
}


class Skip(Exception):
    pass


class Failure(AssertionError):
    pass


# ------------------------------------------------------------------ pymongo 3.11 shims
# pymongo 3.11 has no arguments for change stream options newer than itself
# (fullDocumentBeforeChange, showExpandedEvents, comment). The runner passes them to the
# $changeStream stage / aggregate command exactly as a newer driver sends them.
_cs_extra = threading.local()
_orig_cs_options = _pm_change_stream.ChangeStream._change_stream_options
_orig_cs_cmd_options = _pm_change_stream.ChangeStream._command_options


def _cs_options(self):
    o = _orig_cs_options(self)
    if not hasattr(self, "_as_stage_extra"):
        self._as_stage_extra = dict(getattr(_cs_extra, "stage", None) or {})
    o.update(self._as_stage_extra)
    return o


def _cs_cmd_options(self):
    o = _orig_cs_cmd_options(self)
    if not hasattr(self, "_as_cmd_extra"):
        self._as_cmd_extra = dict(getattr(_cs_extra, "cmd", None) or {})
    o.update(self._as_cmd_extra)
    return o


_pm_change_stream.ChangeStream._change_stream_options = _cs_options
_pm_change_stream.ChangeStream._command_options = _cs_cmd_options

# mongod puts errorLabels at the top level of a reply that carries a writeConcernError (the
# transactions and retryable writes specs read them there); pymongo 3.11 only looks inside the
# writeConcernError document, so commit/abort/writes would never see RetryableWriteError. The
# runner hands pymongo the top-level labels inside that document, as newer drivers read them.
_orig_check_command_response = _pm_helpers._check_command_response
_orig_check_write_command_response = _pm_helpers._check_write_command_response


def _wce_with_labels(response):
    if isinstance(response, dict) and "writeConcernError" in response and response.get("errorLabels"):
        response = dict(response)
        wce = dict(response["writeConcernError"])
        wce.setdefault("errorLabels", list(response["errorLabels"]))
        response["writeConcernError"] = wce
    return response


def _check_command_response(response, *args, **kwargs):
    return _orig_check_command_response(_wce_with_labels(response), *args, **kwargs)


def _check_write_command_response(result):
    return _orig_check_write_command_response(_wce_with_labels(result))


_pm_helpers._check_command_response = _check_command_response
_pm_helpers._check_write_command_response = _check_write_command_response
pymongo.collection._check_write_command_response = _check_write_command_response


# ------------------------------------------------------------------ values

def load_ejson(path):
    with open(path) as f:
        return json_util.loads(f.read(), json_options=json_util.JSONOptions(
            json_mode=json_util.JSONMode.RELAXED, document_class=SON, tz_aware=False,
            uuid_representation=4))


def type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, Int64):
        return "long"
    if isinstance(v, int):
        return "int" if -2 ** 31 <= v < 2 ** 31 else "long"
    if isinstance(v, float):
        return "double"
    if isinstance(v, str):
        return "string"
    if isinstance(v, Decimal128):
        return "decimal"
    if isinstance(v, ObjectId):
        return "objectId"
    if isinstance(v, datetime.datetime):
        return "date"
    if isinstance(v, Timestamp):
        return "timestamp"
    if isinstance(v, (Regex, type(re.compile("")))):
        return "regex"
    if isinstance(v, (Binary, bytes, uuid.UUID)):
        return "binData"
    if isinstance(v, list):
        return "array"
    if isinstance(v, Code):
        return "javascriptWithScope" if v.scope is not None else "javascript"
    if isinstance(v, MinKey):
        return "minKey"
    if isinstance(v, MaxKey):
        return "maxKey"
    if isinstance(v, (dict, DBRef)):
        return "object"
    return type(v).__name__


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def ms(d):
    if d.tzinfo is not None:
        d = d.replace(tzinfo=None) - d.utcoffset()
    return int((d - datetime.datetime(1970, 1, 1)).total_seconds() * 1000)


def scalar_equal(e, a):
    if is_num(e) and is_num(a):
        return e == a
    if isinstance(e, datetime.datetime) and isinstance(a, datetime.datetime):
        return ms(e) == ms(a)
    if type_name(e) != type_name(a):
        return False
    if isinstance(e, (bytes, Binary, uuid.UUID)):
        return as_bin(e) == as_bin(a)
    return e == a


def as_bin(v):
    if isinstance(v, uuid.UUID):
        return (4, v.bytes)
    if isinstance(v, Binary):
        return (v.subtype, bytes(v))
    return (0, bytes(v))


def is_op(v):
    return isinstance(v, dict) and len(v) == 1 and next(iter(v)).startswith("$$")


class Matcher(object):
    def __init__(self, runner):
        self.r = runner

    def fail(self, path, msg):
        raise Failure("%s: %s" % (path or "<root>", msg))

    def match(self, exp, act, root=True, path=""):
        if is_op(exp):
            return self.special(exp, act, True, root, path)
        if isinstance(exp, dict):
            if not isinstance(act, dict):
                self.fail(path, "expected a document, got %r" % (act,))
            for k, v in exp.items():
                p = "%s.%s" % (path, k) if path else k
                if is_op(v):
                    op = next(iter(v))
                    if op == "$$exists":
                        if bool(v[op]) != (k in act):
                            self.fail(p, "expected %s, got %r" % ("present" if v[op] else "absent", act.get(k)))
                        continue
                    if op == "$$unsetOrMatches":
                        if k in act:
                            self.match(v[op], act[k], False, p)
                        continue
                if k not in act:
                    self.fail(p, "missing (expected %r)" % (v,))
                self.match(v, act[k], False, p)
            if not root:
                extra = [k for k in act if k not in exp]
                if extra:
                    self.fail(path, "unexpected fields %s in %r" % (extra, act))
            return
        if isinstance(exp, list):
            if not isinstance(act, list):
                self.fail(path, "expected an array, got %r" % (act,))
            if len(exp) != len(act):
                self.fail(path, "expected %d elements, got %d: %r" % (len(exp), len(act), act))
            for i, (e, a) in enumerate(zip(exp, act)):
                self.match(e, a, False, "%s.%d" % (path, i))
            return
        if not scalar_equal(exp, act):
            self.fail(path, "expected %r (%s), got %r (%s)" % (exp, type_name(exp), act, type_name(act)))

    def special(self, exp, act, present, root, path):
        op, arg = next(iter(exp.items()))
        if op == "$$unsetOrMatches":
            if act is None and not present:
                return
            return self.match(arg, act, root, path)
        if op == "$$exists":
            if bool(arg) != present:
                self.fail(path, "$$exists %r" % arg)
            return
        if op == "$$type":
            names = arg if isinstance(arg, list) else [arg]
            tn = type_name(act)
            if tn not in names and not ("number" in names and tn in ("int", "long", "double", "decimal")):
                self.fail(path, "expected type %s, got %s (%r)" % (names, tn, act))
            return
        if op == "$$sessionLsid":
            self.r.entity(arg, "session")
            self.match(self.r.lsids[arg], act, False, path)
            return
        if op == "$$matchesEntity":
            self.match(self.r.entity(arg), act, root, path)
            return
        if op == "$$lte":
            if not (is_num(act) and act <= arg):
                self.fail(path, "expected <= %r, got %r" % (arg, act))
            return
        if op == "$$matchesHexBytes":
            if as_bin(act)[1] != bytes.fromhex(arg):
                self.fail(path, "bytes differ")
            return
        if op == "$$matchAsDocument":
            self.match(arg, json_util.loads(act), False, path)
            return
        if op == "$$matchAsRoot":
            self.match(arg, act, True, path)
            return
        raise Failure("unsupported special operator %s" % op)

    def exact(self, exp, act, path=""):
        """outcome comparison: same fields (any order), same BSON types, same values."""
        if isinstance(exp, dict):
            if not isinstance(act, dict) or set(exp) != set(act):
                self.fail(path, "expected %r, got %r" % (exp, act))
            for k in exp:
                self.exact(exp[k], act[k], "%s.%s" % (path, k) if path else k)
            return
        if isinstance(exp, list):
            if not isinstance(act, list) or len(exp) != len(act):
                self.fail(path, "expected %r, got %r" % (exp, act))
            for i, (e, a) in enumerate(zip(exp, act)):
                self.exact(e, a, "%s.%d" % (path, i))
            return
        if type_name(exp) != type_name(act) or not scalar_equal(exp, act):
            self.fail(path, "expected %r (%s), got %r (%s)" % (exp, type_name(exp), act, type_name(act)))


# ------------------------------------------------------------------ events

SENSITIVE = {"authenticate", "saslstart", "saslcontinue", "getnonce", "createuser", "updateuser",
             "copydbgetnonce", "copydbsaslstart", "copydb"}


class Listener(monitoring.CommandListener):
    def __init__(self, observe, ignore):
        self.observe = set(observe or [])
        self.ignore = set(ignore or []) | {"configureFailPoint"}
        self.events = []
        self.lock = threading.Lock()

    def _keep(self, name, cmd=None):
        if name in self.ignore or name.lower() in SENSITIVE:
            return False
        if name.lower() in ("hello", "ismaster") and cmd is not None and "speculativeAuthenticate" in cmd:
            return False
        return True

    def started(self, e):
        if "commandStartedEvent" in self.observe and self._keep(e.command_name, e.command):
            with self.lock:
                self.events.append(("commandStartedEvent", {
                    "command": e.command, "commandName": e.command_name, "databaseName": e.database_name}))

    def succeeded(self, e):
        if "commandSucceededEvent" in self.observe and self._keep(e.command_name):
            with self.lock:
                self.events.append(("commandSucceededEvent", {
                    "reply": e.reply, "commandName": e.command_name}))

    def failed(self, e):
        if "commandFailedEvent" in self.observe and self._keep(e.command_name):
            with self.lock:
                self.events.append(("commandFailedEvent", {"commandName": e.command_name}))


# ------------------------------------------------------------------ options

_RP_MODES = {"primary": read_preferences.Primary, "primarypreferred": read_preferences.PrimaryPreferred,
             "secondary": read_preferences.Secondary, "secondarypreferred": read_preferences.SecondaryPreferred,
             "nearest": read_preferences.Nearest}


def read_pref(d):
    cls = _RP_MODES[d["mode"].lower()]
    if cls is read_preferences.Primary:
        return cls()
    kw = {}
    if "tagSets" in d:
        kw["tag_sets"] = d["tagSets"]
    if "maxStalenessSeconds" in d:
        kw["max_staleness"] = d["maxStalenessSeconds"]
    return cls(**kw)


def write_concern(d):
    kw = {}
    if "w" in d:
        kw["w"] = d["w"]
    if "wtimeoutMS" in d:
        kw["wtimeout"] = d["wtimeoutMS"]
    if "journal" in d:
        kw["j"] = d["journal"]
    return WriteConcern(**kw)


def read_concern(d):
    return ReadConcern(d.get("level"))


def coll_db_options(d):
    kw = {}
    for k, v in (d or {}).items():
        if k == "readConcern":
            kw["read_concern"] = read_concern(v)
        elif k == "writeConcern":
            kw["write_concern"] = write_concern(v)
        elif k == "readPreference":
            kw["read_preference"] = read_pref(v)
        else:
            raise Skip("collection/database option %s is not supported by pymongo 3.11" % k)
    return kw


def version_tuple(s):
    parts = [int(x) for x in re.match(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?", s).groups(default="0")]
    return tuple(parts)


# ------------------------------------------------------------------ results

def update_result(r):
    d = {"matchedCount": r.matched_count, "modifiedCount": r.modified_count,
         "upsertedCount": 0 if r.upserted_id is None else 1}
    if r.upserted_id is not None:
        d["upsertedId"] = r.upserted_id
    return d


def bulk_result_from_api(api):
    ups = {str(u["index"]): u["_id"] for u in api.get("upserted", [])}
    return {"deletedCount": api.get("nRemoved", 0), "insertedCount": api.get("nInserted", 0),
            "matchedCount": api.get("nMatched", 0), "modifiedCount": api.get("nModified", 0),
            "upsertedCount": api.get("nUpserted", 0), "upsertedIds": ups}


def error_info(exc):
    """(is_server_error, code, codeName, message, labels, response doc) of a pymongo exception."""
    details = getattr(exc, "details", None)
    if isinstance(exc, NotMasterError):
        details = exc.errors if isinstance(exc.errors, dict) else None
    server = isinstance(exc, OperationFailure) or (isinstance(exc, NotMasterError) and bool(details))
    if isinstance(exc, BulkWriteError):
        server = True
    code = getattr(exc, "code", None)
    if code is None and isinstance(details, dict):
        code = details.get("code")
    name = details.get("codeName") if isinstance(details, dict) else None
    labels = []
    if isinstance(exc, PyMongoError):
        labels = list(getattr(exc, "_error_labels", None) or [])
    return server, code, name, str(exc), labels, details if isinstance(details, dict) else {}


# ------------------------------------------------------------------ runner

class TestRunner(object):
    def __init__(self, uri, verbose=False):
        self.uri = uri
        self.verbose = verbose
        self.internal = pymongo.MongoClient(uri)
        bi = self.internal.admin.command("buildInfo")
        self.server_version = tuple(bi["versionArray"][:3])
        hello = self.internal.admin.command("isMaster")
        self.topology = "replicaset" if hello.get("setName") else "single"
        self.params = {}
        self.m = Matcher(self)
        self.passed = self.failed = self.skipped = 0
        self.per_file = {}
        self.t0 = time.time()
        self.failures = []
        self.kill_all_sessions()

    def kill_all_sessions(self):
        try:
            self.internal.admin.command("killAllSessions", [])
        except OperationFailure as e:
            if e.code not in (11601, 13):
                raise

    # ---------------------------------------------------------- requirements
    def requirement_met(self, req):
        if "minServerVersion" in req and self.server_version < version_tuple(req["minServerVersion"]):
            return "server %s < minServerVersion %s" % (".".join(map(str, self.server_version)), req["minServerVersion"])
        if "maxServerVersion" in req and self.server_version > version_tuple(req["maxServerVersion"]):
            return "server %s > maxServerVersion %s" % (".".join(map(str, self.server_version)), req["maxServerVersion"])
        if "topologies" in req:
            tops = req["topologies"]
            if self.topology not in tops and not (self.topology == "replicaset" and "replicaset" in tops):
                return "topology %s not in %s" % (self.topology, tops)
        if req.get("serverless") == "require":
            return "requires Atlas Serverless"
        if req.get("auth") is True:
            return "requires authentication (the server has none)"
        if req.get("csfle"):
            return "requires client-side field level encryption"
        if "authMechanism" in req:
            return "requires authentication mechanism %s" % req["authMechanism"]
        for p, v in (req.get("serverParameters") or {}).items():
            if p not in self.params:
                try:
                    self.params[p] = self.internal.admin.command(SON([("getParameter", 1), (p, 1)])).get(p)
                except OperationFailure:
                    self.params[p] = None
            if self.params[p] is None or not scalar_equal(v, self.params[p]):
                return "server parameter %s is %r, not %r" % (p, self.params[p], v)
        return None

    def requirements(self, reqs):
        if not reqs:
            return None
        why = [self.requirement_met(r) for r in reqs]
        if any(w is None for w in why):
            return None
        return "; ".join(why)

    # ---------------------------------------------------------- files
    def run_file(self, path):
        rel = os.path.relpath(path, SPECS)
        if rel.startswith(".."):
            rel = os.path.basename(path)
        spec = load_ejson(path)
        sv = version_tuple(spec["schemaVersion"])
        tests = spec["tests"]
        if sv[:2] > SCHEMA_MAX:
            for t in tests:
                self.record(rel, t["description"], "fail", "schemaVersion %s not supported" % spec["schemaVersion"])
            return
        file_why = FILE_SKIPS.get(rel) or self.requirements(spec.get("runOnRequirements"))
        for t in tests:
            if self.only and self.only not in t["description"] and self.only not in rel:
                continue
            why = file_why or SKIPS.get((rel, t["description"])) or t.get("skipReason") or \
                self.requirements(t.get("runOnRequirements"))
            if why:
                self.record(rel, t["description"], "skip", why)
                continue
            self.t0 = time.time()
            try:
                self.run_test(spec, t)
                self.record(rel, t["description"], "pass")
            except Skip as e:
                self.record(rel, t["description"], "skip", str(e))
            except Failure as e:
                self.record(rel, t["description"], "fail", str(e))
            except Exception as e:
                self.record(rel, t["description"], "fail", "%s: %s\n%s" % (
                    type(e).__name__, e, traceback.format_exc() if self.verbose else ""))

    def record(self, rel, desc, kind, why=""):
        self.per_file.setdefault(rel, {"pass": 0, "fail": 0, "skip": 0})[kind] += 1
        if kind == "pass":
            self.passed += 1
        elif kind == "fail":
            self.failed += 1
            self.failures.append((rel, desc, why))
            self.kill_all_sessions()
        else:
            self.skipped += 1
        line = "%s %s: %s" % (kind.upper(), rel, desc)
        if kind != "skip" and time.time() - self.t0 >= 1.0:
            line += " (%.1f s)" % (time.time() - self.t0)
        if why and (kind != "skip" or self.verbose or True):
            line += "  -- " + why.strip().replace("\n", "\n      ")
        print(line)
        sys.stdout.flush()

    # ---------------------------------------------------------- one test
    def run_test(self, spec, test):
        self.entities = {}
        self.lsids = {}
        self.listeners = {}
        self.failpoints = []
        self.started_txn = False
        signal.signal(signal.SIGALRM, self._timeout)
        signal.alarm(TEST_TIMEOUT_S)
        try:
            self.initial_data(spec.get("initialData") or [])
            self.create_entities(spec.get("createEntities") or [])
            for lst in self.listeners.values():
                with lst.lock:
                    del lst.events[:]
            for op in test["operations"]:
                self.run_operation(op)
            for fp in self.failpoints:
                self.disable_failpoint(fp)
            self.failpoints = []
            for ee in test.get("expectEvents") or []:
                self.check_events(ee)
            for cd in test.get("outcome") or []:
                self.check_outcome(cd)
        finally:
            signal.alarm(0)
            for fp in self.failpoints:
                try:
                    self.disable_failpoint(fp)
                except Exception:
                    pass
            self.close_entities()

    def _timeout(self, signum, frame):
        raise Failure("test did not finish within %d s" % TEST_TIMEOUT_S)

    def disable_failpoint(self, name):
        self.internal.admin.command(SON([("configureFailPoint", name), ("mode", "off")]))

    def close_entities(self):
        for name, e in list(self.entities.items()):
            try:
                if isinstance(e, pymongo.client_session.ClientSession):
                    e.end_session()
                elif isinstance(e, _pm_change_stream.ChangeStream):
                    e.close()
            except Exception:
                pass
        for name, e in list(self.entities.items()):
            if isinstance(e, pymongo.MongoClient):
                try:
                    e.close()
                except Exception:
                    pass
        self.entities = {}

    def initial_data(self, data):
        majority = WriteConcern(w="majority")
        for cd in data:
            db = self.internal.get_database(cd["databaseName"], write_concern=majority)
            name = cd["collectionName"]
            db.drop_collection(name)
            db.drop_collection("enxcol_.%s.esc" % name)
            db.drop_collection("enxcol_.%s.ecoc" % name)
            if "createOptions" in cd:
                db.command(SON([("create", name)] + list(cd["createOptions"].items()) +
                               [("writeConcern", {"w": "majority"})]))
            elif not cd["documents"]:
                db.command(SON([("create", name), ("writeConcern", {"w": "majority"})]))
            if cd["documents"]:
                db[name].insert_many([SON(d) for d in cd["documents"]])

    # ---------------------------------------------------------- entities
    def entity(self, name, kind=None):
        if name not in self.entities:
            raise Failure("undefined entity %r" % name)
        e = self.entities[name]
        if kind == "session" and not isinstance(e, pymongo.client_session.ClientSession):
            raise Failure("entity %r is not a session" % name)
        return e

    def create_entities(self, ents):
        for ent in ents:
            (kind, d), = ent.items()
            eid = d["id"]
            if eid in self.entities:
                raise Failure("duplicate entity %r" % eid)
            if kind == "client":
                self.entities[eid] = self.make_client(d)
            elif kind == "database":
                self.entities[eid] = self.entity(d["client"]).get_database(
                    d["databaseName"], **coll_db_options(d.get("databaseOptions")))
            elif kind == "collection":
                self.entities[eid] = self.entity(d["database"]).get_collection(
                    d["collectionName"], **coll_db_options(d.get("collectionOptions")))
            elif kind == "session":
                self.entities[eid] = self.make_session(d)
                self.lsids[eid] = self.entities[eid].session_id
            else:
                raise Skip("entity type %s is not supported by this runner" % kind)

    def make_client(self, d):
        kw = {}
        for k, v in (d.get("uriOptions") or {}).items():
            if k == "appname":
                k = "appName"
            kw[k] = v
        for k in d:
            if k not in ("id", "uriOptions", "useMultipleMongoses", "observeEvents",
                         "ignoreCommandMonitoringEvents", "observeSensitiveCommands"):
                raise Skip("client option %s is not supported by this runner" % k)
        if "heartbeatFrequencyMS" not in kw:
            # allowed by the unified format for tests with fail points: after a "not primary" /
            # shutdown error pymongo waits for the next heartbeat (default 10 s) before reusing
            # the server; 500 ms is pymongo's minimum
            kw["heartbeatFrequencyMS"] = 500
        lst = Listener(d.get("observeEvents"), d.get("ignoreCommandMonitoringEvents"))
        self.listeners[d["id"]] = lst
        client = pymongo.MongoClient(self.uri, event_listeners=[lst], **kw)
        return client

    def make_session(self, d):
        client = self.entity(d["client"])
        kw = {}
        for k, v in (d.get("sessionOptions") or {}).items():
            if k == "causalConsistency":
                kw["causal_consistency"] = v
            elif k == "defaultTransactionOptions":
                kw["default_transaction_options"] = TransactionOptions(**self.txn_options(v))
            else:
                raise Skip("session option %s is not supported by pymongo 3.11" % k)
        return client.start_session(**kw)

    def txn_options(self, v):
        kw = {}
        for k, x in v.items():
            if k == "readConcern":
                kw["read_concern"] = read_concern(x)
            elif k == "writeConcern":
                kw["write_concern"] = write_concern(x)
            elif k == "readPreference":
                kw["read_preference"] = read_pref(x)
            elif k == "maxCommitTimeMS":
                kw["max_commit_time_ms"] = x
            else:
                raise Failure("unknown transaction option %s" % k)
        return kw

    # ---------------------------------------------------------- operations
    def run_operation(self, op):
        name, obj = op["name"], op["object"]
        args = dict(op.get("arguments") or {})
        if obj == "testRunner":
            return self.special_op(name, args)
        target = self.entity(obj)
        exc = None
        result = None
        try:
            result = self.call(target, name, args)
        except (Skip, Failure):
            raise
        except Exception as e:  # noqa: B902 - every driver error is an operation outcome
            exc = e
        if op.get("ignoreResultAndError"):
            return
        if "expectError" in op:
            if exc is None:
                raise Failure("%s: expected an error, got result %r" % (name, result))
            self.check_error(name, op["expectError"], exc)
            return
        if exc is not None:
            raise Failure("%s: unexpected error %s: %s" % (name, type(exc).__name__, exc))
        if "expectResult" in op:
            self.check_result(name, op["expectResult"], result)
        if "saveResultAsEntity" in op:
            self.entities[op["saveResultAsEntity"]] = result

    def check_result(self, name, exp, act):
        if name in ("find", "aggregate", "listCollections", "listIndexes", "listDatabases") and isinstance(exp, list):
            if not isinstance(act, list) or len(act) != len(exp):
                raise Failure("%s: expected %d documents, got %r" % (name, len(exp), act))
            for i, (e, a) in enumerate(zip(exp, act)):
                self.m.match(e, a, True, "result.%d" % i)
            return
        self.m.match(exp, act, True, "result")

    def check_error(self, name, exp, exc):
        server, code, cname, msg, labels, details = error_info(exc)
        if isinstance(exc, (Skip, Failure)):
            raise exc
        where = "%s error %s(%s)" % (name, type(exc).__name__, msg)
        if "isClientError" in exp and exp["isClientError"] == server:
            raise Failure("%s: isClientError should be %s" % (where, exp["isClientError"]))
        if exp.get("isTimeoutError"):
            raise Skip("timeoutMS (client side operations timeout) is not supported by pymongo 3.11")
        bulk_errors = details.get("writeErrors", []) + details.get("writeConcernErrors", []) \
            if isinstance(exc, BulkWriteError) else []
        if "errorContains" in exp:
            texts = [msg] + [str(details.get("errmsg", ""))] + [str(w.get("errmsg", "")) for w in bulk_errors]
            if not any(exp["errorContains"].lower() in t.lower() for t in texts):
                raise Failure("%s: message does not contain %r" % (where, exp["errorContains"]))
        if "errorCode" in exp:
            codes = [code] + [w.get("code") for w in bulk_errors]
            if exp["errorCode"] not in codes:
                raise Failure("%s: code %r, expected %r" % (where, code, exp["errorCode"]))
        if "errorCodeName" in exp:
            names = [cname] + [w.get("codeName") for w in bulk_errors]
            if not any(n and n.lower() == exp["errorCodeName"].lower() for n in names):
                raise Failure("%s: codeName %r, expected %r" % (where, cname, exp["errorCodeName"]))
        for lab in exp.get("errorLabelsContain") or []:
            if lab not in labels:
                raise Failure("%s: labels %r lack %r" % (where, labels, lab))
        for lab in exp.get("errorLabelsOmit") or []:
            if lab in labels:
                raise Failure("%s: labels %r contain %r" % (where, labels, lab))
        if "errorResponse" in exp:
            self.m.match(exp["errorResponse"], details, True, "errorResponse")
        if "expectResult" in exp:
            if isinstance(exc, BulkWriteError):
                self.m.match(exp["expectResult"], bulk_result_from_api(details), True, "error.result")
            else:
                raise Failure("%s: expected a partial result, the error has none" % where)
        if "writeErrors" in exp or "writeConcernErrors" in exp:
            raise Skip("client bulkWrite errors are not supported by pymongo 3.11")

    def _session(self, args):
        if "session" in args:
            return self.entity(args.pop("session"), "session")
        return None

    def call(self, target, name, args):
        if isinstance(target, pymongo.MongoClient):
            return self.client_op(target, name, args)
        if isinstance(target, pymongo.database.Database):
            return self.database_op(target, name, args)
        if isinstance(target, pymongo.collection.Collection):
            return self.collection_op(target, name, args)
        if isinstance(target, pymongo.client_session.ClientSession):
            return self.session_op(target, name, args)
        if isinstance(target, _pm_change_stream.ChangeStream):
            return self.stream_op(target, name, args)
        raise Failure("operation %s on unsupported entity %r" % (name, target))

    @staticmethod
    def take(args, allowed, what):
        extra = set(args) - set(allowed)
        if extra:
            raise Skip("%s: argument(s) %s not supported by pymongo 3.11 / this runner" % (what, sorted(extra)))

    def watch(self, target, args):
        s = self._session(args)
        stage, cmd, kw = {}, {}, {}
        for k, v in args.items():
            if k == "pipeline":
                kw["pipeline"] = v
            elif k == "fullDocument":
                kw["full_document"] = v
            elif k == "resumeAfter":
                kw["resume_after"] = v
            elif k == "startAfter":
                kw["start_after"] = v
            elif k == "startAtOperationTime":
                kw["start_at_operation_time"] = v
            elif k == "batchSize":
                kw["batch_size"] = v
            elif k == "maxAwaitTimeMS":
                kw["max_await_time_ms"] = v
            elif k in ("fullDocumentBeforeChange", "showExpandedEvents"):
                stage[k] = v
            elif k == "comment":
                cmd[k] = v
            else:
                raise Skip("createChangeStream: argument %s not supported" % k)
        _cs_extra.stage, _cs_extra.cmd = stage, cmd
        try:
            return target.watch(session=s, **kw)
        finally:
            _cs_extra.stage = _cs_extra.cmd = None

    def client_op(self, c, name, args):
        if name == "createChangeStream":
            return self.watch(c, args)
        if name == "listDatabases":
            return list(c.list_databases(session=self._session(args), **args))
        if name == "close":
            c.close()
            return None
        raise Skip("client operation %s not supported by this runner" % name)

    def database_op(self, db, name, args):
        s = self._session(args)
        if name == "createChangeStream":
            if s is not None:
                args["session"] = [k for k, v in self.entities.items() if v is s][0]
            return self.watch(db, args)
        if name == "runCommand":
            self.take(args, ("command", "commandName", "readPreference"), name)
            kw = {}
            if "readPreference" in args:
                kw["read_preference"] = read_pref(args["readPreference"])
            return db.command(SON(args["command"]), session=s, **kw)
        if name == "aggregate":
            self.take(args, ("pipeline", "batchSize", "comment", "maxTimeMS", "allowDiskUse"), name)
            pipeline = args.pop("pipeline")
            return list(db.aggregate(pipeline, session=s, **args))
        if name == "createCollection":
            coll = args.pop("collection")
            cmd = SON([("create", coll)])
            for k, v in args.items():
                if k in ("viewOn", "pipeline", "changeStreamPreAndPostImages", "validator", "capped",
                         "size", "max", "clusteredIndex", "expireAfterSeconds", "timeseries",
                         "encryptedFields", "collation", "storageEngine", "indexOptionDefaults",
                         "validationLevel", "validationAction"):
                    cmd[k] = v
                else:
                    raise Skip("createCollection: argument %s not supported" % k)
            db.command(cmd, session=s)
            return None
        if name == "dropCollection":
            self.take(args, ("collection",), name)
            db.drop_collection(args["collection"], session=s)
            return None
        if name == "listCollections":
            return list(db.list_collections(session=s, **args))
        if name == "listCollectionNames":
            return db.list_collection_names(session=s, **args)
        raise Skip("database operation %s not supported by this runner" % name)

    def collection_op(self, c, name, args):
        s = self._session(args)
        if name == "createChangeStream":
            if s is not None:
                args["session"] = [k for k, v in self.entities.items() if v is s][0]
            return self.watch(c, args)
        if name == "insertOne":
            self.take(args, ("document", "bypassDocumentValidation"), name)
            r = c.insert_one(args["document"], session=s,
                             bypass_document_validation=args.get("bypassDocumentValidation", False))
            return {"insertedId": r.inserted_id}
        if name == "insertMany":
            self.take(args, ("documents", "ordered", "bypassDocumentValidation"), name)
            r = c.insert_many(args["documents"], ordered=args.get("ordered", True), session=s,
                              bypass_document_validation=args.get("bypassDocumentValidation", False))
            return {"insertedIds": {str(i): v for i, v in enumerate(r.inserted_ids)}}
        if name in ("updateOne", "updateMany", "replaceOne"):
            self.take(args, ("filter", "update", "replacement", "upsert", "arrayFilters", "hint",
                             "collation", "bypassDocumentValidation"), name)
            kw = {"upsert": args.get("upsert", False), "session": s}
            if "hint" in args:
                kw["hint"] = args["hint"]
            if "collation" in args:
                kw["collation"] = args["collation"]
            if "bypassDocumentValidation" in args:
                kw["bypass_document_validation"] = args["bypassDocumentValidation"]
            if name == "replaceOne":
                r = c.replace_one(args["filter"], args["replacement"], **kw)
            else:
                if "arrayFilters" in args:
                    kw["array_filters"] = args["arrayFilters"]
                fn = c.update_one if name == "updateOne" else c.update_many
                r = fn(args["filter"], args["update"], **kw)
            return update_result(r)
        if name in ("deleteOne", "deleteMany"):
            self.take(args, ("filter", "hint", "collation"), name)
            fn = c.delete_one if name == "deleteOne" else c.delete_many
            kw = {k2: args[k1] for k1, k2 in (("hint", "hint"), ("collation", "collation")) if k1 in args}
            r = fn(args["filter"], session=s, **kw)
            return {"deletedCount": r.deleted_count}
        if name in ("find", "findOne"):
            self.take(args, ("filter", "sort", "skip", "limit", "batchSize", "projection", "comment",
                             "hint", "maxTimeMS", "allowDiskUse", "collation", "min", "max",
                             "returnKey", "showRecordId", "noCursorTimeout"), name)
            kw = {}
            for k1, k2 in (("sort", "sort"), ("skip", "skip"), ("limit", "limit"), ("batchSize", "batch_size"),
                           ("projection", "projection"), ("comment", "comment"), ("hint", "hint"),
                           ("maxTimeMS", "max_time_ms"), ("allowDiskUse", "allow_disk_use"),
                           ("collation", "collation"), ("min", "min"), ("max", "max"),
                           ("returnKey", "return_key"), ("showRecordId", "show_record_id"),
                           ("noCursorTimeout", "no_cursor_timeout")):
                if k1 in args:
                    v = args[k1]
                    kw[k2] = list(v.items()) if k1 == "sort" else v
            if name == "findOne":
                return c.find_one(args.get("filter", {}), session=s, **kw)
            return list(c.find(args.get("filter", {}), session=s, **kw))
        if name == "aggregate":
            self.take(args, ("pipeline", "batchSize", "comment", "maxTimeMS", "allowDiskUse",
                             "collation", "hint"), name)
            pipeline = args.pop("pipeline")
            return list(c.aggregate(pipeline, session=s, **args))
        if name == "count":
            self.take(args, ("filter", "skip", "limit", "maxTimeMS", "hint", "collation"), name)
            flt = args.pop("filter", {})
            return c.count(flt, session=s, **args)
        if name == "countDocuments":
            self.take(args, ("filter", "skip", "limit", "maxTimeMS", "hint", "collation"), name)
            flt = args.pop("filter")
            return c.count_documents(flt, session=s, **args)
        if name == "estimatedDocumentCount":
            self.take(args, ("maxTimeMS",), name)
            if s is not None:
                raise Failure("estimatedDocumentCount takes no session")
            return c.estimated_document_count(**args)
        if name == "distinct":
            self.take(args, ("fieldName", "filter", "maxTimeMS", "collation"), name)
            return c.distinct(args["fieldName"], args.get("filter"), session=s,
                              **{k: v for k, v in args.items() if k in ("maxTimeMS", "collation")})
        if name in ("findOneAndDelete", "findOneAndReplace", "findOneAndUpdate"):
            self.take(args, ("filter", "update", "replacement", "projection", "sort", "upsert",
                             "returnDocument", "hint", "collation", "arrayFilters", "maxTimeMS",
                             "bypassDocumentValidation"), name)
            kw = {"session": s}
            if "projection" in args:
                kw["projection"] = args["projection"]
            if "sort" in args:
                kw["sort"] = list(args["sort"].items())
            for k1, k2 in (("hint", "hint"), ("collation", "collation"), ("arrayFilters", "array_filters"),
                           ("maxTimeMS", "maxTimeMS"), ("bypassDocumentValidation", "bypass_document_validation")):
                if k1 in args:
                    kw[k2] = args[k1]
            if name == "findOneAndDelete":
                return c.find_one_and_delete(args["filter"], **kw)
            if "upsert" in args:
                kw["upsert"] = args["upsert"]
            if "returnDocument" in args:
                rd = args["returnDocument"].lower()
                if rd not in ("before", "after"):
                    raise Failure("bad returnDocument %r" % args["returnDocument"])
                kw["return_document"] = ReturnDocument.AFTER if rd == "after" else ReturnDocument.BEFORE
            if name == "findOneAndReplace":
                return c.find_one_and_replace(args["filter"], args["replacement"], **kw)
            return c.find_one_and_update(args["filter"], args["update"], **kw)
        if name == "bulkWrite":
            self.take(args, ("requests", "ordered", "bypassDocumentValidation"), name)
            reqs = [self.write_model(r) for r in args["requests"]]
            r = c.bulk_write(reqs, ordered=args.get("ordered", True), session=s,
                             bypass_document_validation=args.get("bypassDocumentValidation", False))
            return bulk_result_from_api(r.bulk_api_result)
        if name == "createIndex":
            self.take(args, ("keys", "name", "unique", "sparse", "expireAfterSeconds"), name)
            kw = {k: v for k, v in args.items() if k != "keys"}
            return c.create_index(list(args["keys"].items()), session=s, **kw)
        if name == "dropIndex":
            self.take(args, ("name",), name)
            c.drop_index(args["name"], session=s)
            return None
        if name == "listIndexes":
            return list(c.list_indexes(session=s))
        if name == "rename":
            self.take(args, ("to", "dropTarget"), name)
            kw = {"dropTarget": args["dropTarget"]} if "dropTarget" in args else {}
            c.rename(args["to"], session=s, **kw)
            return None
        if name == "drop":
            c.drop(session=s)
            return None
        raise Skip("collection operation %s not supported by this runner" % name)

    def write_model(self, r):
        (kind, a), = r.items()
        a = dict(a)
        if kind == "insertOne":
            return InsertOne(a["document"])
        extra = set(a) - {"filter", "update", "replacement", "upsert", "arrayFilters", "collation", "hint"}
        if extra:
            raise Skip("bulkWrite %s: argument(s) %s not supported by pymongo 3.11" % (kind, sorted(extra)))
        kw = {k2: a[k1] for k1, k2 in (("collation", "collation"), ("hint", "hint")) if k1 in a}
        if kind in ("updateOne", "updateMany"):
            if "arrayFilters" in a:
                kw["array_filters"] = a["arrayFilters"]
            cls = UpdateOne if kind == "updateOne" else UpdateMany
            return cls(a["filter"], a["update"], upsert=a.get("upsert", False), **kw)
        if kind == "replaceOne":
            return ReplaceOne(a["filter"], a["replacement"], upsert=a.get("upsert", False), **kw)
        if kind in ("deleteOne", "deleteMany"):
            return (DeleteOne if kind == "deleteOne" else DeleteMany)(a["filter"], **kw)
        raise Failure("unknown write model %s" % kind)

    def session_op(self, s, name, args):
        if name == "startTransaction":
            s.start_transaction(**self.txn_options(args))
            self.started_txn = True
            return None
        if name == "commitTransaction":
            self.take(args, (), name)
            s.commit_transaction()
            return None
        if name == "abortTransaction":
            self.take(args, (), name)
            s.abort_transaction()
            return None
        if name == "endSession":
            s.end_session()
            return None
        raise Skip("session operation %s not supported by this runner" % name)

    def stream_op(self, cs, name, args):
        if name == "iterateUntilDocumentOrError":
            while True:
                doc = cs.try_next()
                if doc is not None:
                    return doc
                if not cs.alive:
                    raise Failure("change stream closed without a further document")
        if name == "iterateOnce":
            return cs.try_next()
        if name == "close":
            try:
                cs.close()
            except PyMongoError:
                pass
            return None
        raise Skip("change stream operation %s not supported by this runner" % name)

    # ---------------------------------------------------------- special operations
    def special_op(self, name, args):
        if name == "failPoint":
            client = self.entity(args["client"])
            fp = args["failPoint"]
            client.admin.command(SON(fp))
            self.failpoints.append(fp["configureFailPoint"])
            return
        if name == "assertSessionTransactionState":
            s = self.entity(args["session"], "session")
            st = s._transaction.state
            names = {_TxnState.NONE: "none", _TxnState.STARTING: "starting", _TxnState.IN_PROGRESS: "in_progress",
                     _TxnState.COMMITTED: "committed", _TxnState.COMMITTED_EMPTY: "committed",
                     _TxnState.ABORTED: "aborted"}
            if names[st] != args["state"]:
                raise Failure("session transaction state %s, expected %s" % (names[st], args["state"]))
            return
        if name in ("assertCollectionExists", "assertCollectionNotExists"):
            names = self.internal[args["databaseName"]].list_collection_names()
            there = args["collectionName"] in names
            if there != (name == "assertCollectionExists"):
                raise Failure("%s: collection %s.%s %s" % (name, args["databaseName"], args["collectionName"],
                                                           "exists" if there else "does not exist"))
            return
        if name in ("assertIndexExists", "assertIndexNotExists"):
            coll = self.internal[args["databaseName"]][args["collectionName"]]
            try:
                names = [ix["name"] for ix in coll.list_indexes()]
            except OperationFailure as e:
                if e.code != 26:
                    raise
                names = []
            there = args["indexName"] in names
            if there != (name == "assertIndexExists"):
                raise Failure("%s: index %s %s" % (name, args["indexName"], "exists" if there else "does not exist"))
            return
        if name == "createEntities":
            self.create_entities(args["entities"])
            return
        if name == "wait":
            time.sleep(args["ms"] / 1000.0)
            return
        if name in ("assertSessionPinned", "assertSessionUnpinned", "targetedFailPoint"):
            raise Skip("%s applies to sharded clusters only" % name)
        raise Skip("special operation %s not supported by this runner" % name)

    # ---------------------------------------------------------- assertions after the operations
    def check_events(self, ee):
        etype = ee.get("eventType", "command")
        if etype != "command":
            raise Skip("%s events are not observed by this runner" % etype)
        lst = self.listeners.get(ee["client"])
        if lst is None:
            raise Failure("no listener for client %s" % ee["client"])
        with lst.lock:
            actual = list(lst.events)
        exp = ee["events"]
        if len(actual) < len(exp) or (not ee.get("ignoreExtraEvents") and len(actual) != len(exp)):
            raise Failure("expected %d events, got %d: %s" % (len(exp), len(actual), self.ev_summary(actual)))
        for i, (e, (akind, a)) in enumerate(zip(exp, actual)):
            (ekind, ed), = e.items()
            if ekind != akind:
                raise Failure("event %d: expected %s, got %s %s (events: %s)" % (
                    i, ekind, akind, a.get("commandName"), self.ev_summary(actual)))
            for k, v in ed.items():
                if k in ("command", "reply"):
                    self.m.match(v, a[k], True, "event%d.%s" % (i, k))
                elif k in ("commandName", "databaseName"):
                    if a.get(k) != v:
                        raise Failure("event %d: %s %r, expected %r (events: %s)" % (
                            i, k, a.get(k), v, self.ev_summary(actual)))
                elif k in ("hasServiceId", "hasServerConnectionId"):
                    continue
                else:
                    raise Failure("unsupported event assertion %s" % k)

    @staticmethod
    def ev_summary(events):
        return ", ".join("%s:%s" % (k[7:-5], e.get("commandName")) for k, e in events)

    def check_outcome(self, cd):
        coll = self.internal[cd["databaseName"]].get_collection(
            cd["collectionName"], read_concern=ReadConcern("local"),
            read_preference=read_preferences.Primary())
        actual = list(coll.find({}, sort=[("_id", 1)]))
        exp = cd["documents"]
        if len(actual) != len(exp):
            raise Failure("outcome %s: expected %d documents, got %r" % (cd["collectionName"], len(exp), actual))
        for i, (e, a) in enumerate(zip(exp, actual)):
            self.m.exact(e, a, "outcome.%s.%d" % (cd["collectionName"], i))


# ------------------------------------------------------------------ main

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def spec_files(paths):
    out = []
    for p in paths or [SPECS]:
        if os.path.isdir(p):
            out.extend(sorted(glob.glob(os.path.join(p, "**", "*.json"), recursive=True)))
        else:
            out.append(p)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--uri")
    ap.add_argument("-k", dest="only", help="only tests whose description or file contains this")
    ap.add_argument("-v", dest="verbose", action="store_true")
    ap.add_argument("--table", action="store_true", help="also print a markdown table of counts per file")
    ap.add_argument("paths", nargs="*")
    args = ap.parse_args(argv)
    work = port = None
    uri = args.uri
    if not uri:
        work = tempfile.mkdtemp(prefix="arraysync-mongo-specs-")
        port = free_port()
        subprocess.check_call(["sh", SERVER_SH, "start", str(port), work], stdout=subprocess.DEVNULL)
        uri = "mongodb://127.0.0.1:%d/?replicaSet=rs0" % port
    rc = 1
    try:
        runner = TestRunner(uri, args.verbose)
        runner.only = args.only
        for f in spec_files(args.paths):
            runner.run_file(f)
        if args.table:
            print("\n| spec file | passed | failed | skipped |\n|---|---:|---:|---:|")
            for rel, c in sorted(runner.per_file.items()):
                print("| %s | %d | %d | %d |" % (rel, c["pass"], c["fail"], c["skip"]))
        print("%d passed, %d failed, %d skipped" % (runner.passed, runner.failed, runner.skipped))
        rc = 1 if runner.failed else 0
    finally:
        if work:
            subprocess.call(["sh", SERVER_SH, "stop", str(port), work], stdout=subprocess.DEVNULL)
            if rc == 0:
                shutil.rmtree(work, ignore_errors=True)
            else:
                print("server log kept in %s" % work)
    return rc


if __name__ == "__main__":
    sys.exit(main())

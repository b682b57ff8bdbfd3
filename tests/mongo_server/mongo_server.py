#!/usr/bin/python3
"""ArraySync MongoDB wire-protocol test server (single-node replica set look-alike).

Run with Debian's /usr/bin/python3 (needs python3-bson). Single-threaded asyncio, binds
127.0.0.1 only, keeps everything in memory. See README.md in this directory.
"""
import argparse
import asyncio
import os
import random
import socket
import struct
import sys
import time
import traceback
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__":
    sys.modules["mongo_server"] = sys.modules[__name__]

from bson.objectid import ObjectId  # noqa: E402
from bson.int64 import Int64  # noqa: E402
from bson.timestamp import Timestamp  # noqa: E402
from bson.binary import Binary  # noqa: E402

import bsoncodec  # noqa: E402
from bsoncodec import DateMS, RawDoc  # noqa: E402
import mql  # noqa: E402
import wirecompress  # noqa: E402
from mql import MQLError, key, truthy, num, MISSING  # noqa: E402

OP_REPLY, OP_QUERY, OP_MSG, OP_COMPRESSED = 1, 2004, 2013, 2012
MAX_BSON = 16 * 1024 * 1024
MAX_MSG = 48000000
MAX_WIRE = 21  # MongoDB 7.0
SERVER_VERSION = (7, 0, 0)

CODE_NAMES = {
    1: "InternalError", 2: "BadValue", 6: "HostUnreachable", 7: "HostNotFound", 9: "FailedToParse",
    11: "UserNotFound", 13: "Unauthorized", 14: "TypeMismatch", 20: "IllegalOperation",
    26: "NamespaceNotFound", 27: "IndexNotFound", 28: "PathNotViable", 40: "ConflictingUpdateOperators",
    43: "CursorNotFound", 47: "NoMatchingDocument", 48: "NamespaceExists", 50: "MaxTimeMSExpired",
    59: "CommandNotFound", 63: "StaleShardVersion", 66: "ImmutableField", 72: "InvalidOptions",
    73: "InvalidNamespace", 85: "IndexOptionsConflict", 86: "IndexKeySpecsConflict", 89: "NetworkTimeout",
    91: "ShutdownInProgress", 112: "WriteConflict", 133: "FailedToSatisfyReadPreference",
    150: "StaleEpoch", 189: "PrimarySteppedDown", 225: "TransactionTooOld", 234: "RetryChangeStream",
    251: "NoSuchTransaction", 256: "TransactionCommitted", 260: "InvalidResumeToken",
    262: "ExceededTimeLimit", 263: "OperationNotSupportedInTransaction", 280: "ChangeStreamFatalError",
    24: "LockTimeout", 64: "WriteConcernFailed", 79: "UnknownReplWriteConcern", 100: "UnsatisfiableWriteConcern",
    166: "CommandNotSupportedOnView", 167: "OptionNotSupportedOnView", 239: "SnapshotTooOld",
    246: "SnapshotUnavailable", 267: "PreparedTransactionInProgress", 10334: "BSONObjectTooLarge",
    40324: "Location40324",
    286: "ChangeStreamHistoryLost", 9001: "SocketException", 10107: "NotWritablePrimary",
    11000: "DuplicateKey", 11601: "Interrupted", 237: "CursorKilled", 136: "CappedPositionLost",
    149: "ViewDepthLimitExceeded", 51024: "Location51024", 11600: "InterruptedAtShutdown", 11602: "InterruptedDueToReplStateChange",
    13388: "StaleConfig", 13435: "NotPrimaryNoSecondaryOk", 13436: "NotPrimaryOrSecondary",
    50915: "BackupCursorOpenConflictWithCheckpoint",
}
RETRYABLE_CODES = {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}
# mongod labels a change stream error ResumableChangeStreamError for retriable, network and
# "stale routing" codes, RetryChangeStream and FailedToSatisfyReadPreference.
RESUMABLE_CS_CODES = {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 63, 150,
                      13388, 234, 133}
# WriteConflict, LockTimeout, PreparedTransactionInProgress, SnapshotTooOld, SnapshotUnavailable
TRANSIENT_BASE_CODES = {112, 24, 267, 239, 246}
TRANSIENT_TXN_CODES = TRANSIENT_BASE_CODES | RETRYABLE_CODES | {251}
WRITE_CMDS = {"insert", "update", "delete", "findAndModify"}
# stages allowed after $changeStream, and every stage name mongod 7.0 knows (others: 40324)
CS_STAGES = {"$match", "$project", "$addFields", "$set", "$unset", "$replaceRoot", "$replaceWith", "$redact"}
KNOWN_STAGES = CS_STAGES | {
    "$bucket", "$bucketAuto", "$changeStream", "$changeStreamSplitLargeEvent", "$collStats", "$count",
    "$currentOp", "$densify", "$documents", "$facet", "$fill", "$geoNear", "$graphLookup", "$group",
    "$indexStats", "$limit", "$listLocalSessions", "$listSampledQueries", "$listSearchIndexes",
    "$listSessions", "$lookup", "$merge", "$out", "$planCacheStats", "$sample", "$search", "$searchMeta",
    "$setWindowFields", "$shardedDataDistribution", "$skip", "$sort", "$sortByCount", "$unionWith",
    "$unwind", "$vectorSearch"}
TXN_CMDS = {"find", "insert", "update", "delete", "findAndModify", "aggregate", "distinct", "getMore",
            "killCursors", "commitTransaction", "abortTransaction", "create", "createIndexes",
            "bulkWrite"}


class CmdError(Exception):
    def __init__(self, code, msg, labels=None, extra=None):
        Exception.__init__(self, msg)
        self.code, self.msg, self.labels, self.extra = code, msg, labels or [], extra or {}


def err_doc(code, msg, labels=None, name=None):
    d = {"ok": 0.0, "errmsg": msg, "code": int(code), "codeName": name or CODE_NAMES.get(code, "Location%d" % code)}
    if labels:
        d["errorLabels"] = list(labels)
    return d


# ------------------------------------------------------------------ storage

class Collection(object):
    def __init__(self, db, name, options=None, view=None):
        self.db, self.name = db, name
        self.options = options or {}
        self.view = view  # a MongoDB view: {"viewOn": name, "pipeline": [...]}; it holds no documents
        self.uuid = Binary(uuid.uuid4().bytes, 4)
        self.docs = {}
        self.indexes = [{"v": 2, "key": {"_id": 1}, "name": "_id_"}]
        self.uniq = {}  # index name -> {key tuple: id key}

    def pre_post(self):
        o = self.options.get("changeStreamPreAndPostImages")
        return isinstance(o, dict) and truthy(o.get("enabled"))

    def unique_indexes(self):
        return [ix for ix in self.indexes if ix.get("unique") and ix["name"] != "_id_"]

    @staticmethod
    def ix_key(ix, doc):
        if ix.get("sparse") and all(mql.get_path(doc, f) is MISSING for f in ix["key"]):
            return None
        pf = ix.get("partialFilterExpression")
        if pf and not mql.matches(doc, pf):
            return None
        return mql.index_key_values(doc, ix["key"])

    def put(self, k, doc):
        old = self.docs.get(k)
        for ix in self.unique_indexes():
            m = self.uniq.setdefault(ix["name"], {})
            if old is not None:
                ok_ = self.ix_key(ix, old)
                if ok_ is not None and m.get(ok_) == k:
                    del m[ok_]
            nk = self.ix_key(ix, doc)
            if nk is not None:
                m[nk] = k
        self.docs[k] = doc

    def remove(self, k):
        old = self.docs.pop(k, None)
        if old is not None:
            for ix in self.unique_indexes():
                m = self.uniq.get(ix["name"], {})
                ok_ = self.ix_key(ix, old)
                if ok_ is not None and m.get(ok_) == k:
                    del m[ok_]

    def rebuild_uniq(self, ix):
        m = {}
        for k, d in self.docs.items():
            nk = self.ix_key(ix, d)
            if nk is None:
                continue
            if nk in m:
                return d
            m[nk] = k
        self.uniq[ix["name"]] = m
        return None


class View(object):
    """Documents of one collection as seen by an operation (base or transaction snapshot).

    For a MongoDB view (coll.view set) docs are the view pipeline's output, keyed by position
    (computed=True: no _id index)."""

    def __init__(self, coll, docs, txn=None, computed=False):
        self.coll, self.docs, self.txn, self.computed = coll, docs, txn, computed


class Txn(object):
    def __init__(self, sess, number):
        self.sess, self.number = sess, number
        self.views = {}
        self.touched = {}  # (db, coll) -> {k: original doc or None}
        self.events = []
        self.created = {}  # (db, coll) -> Collection created inside the transaction (visible at commit)
        self.state = "in_progress"
        self.started = time.monotonic()


class Session(object):
    def __init__(self, sid):
        self.sid = sid
        self.txn_number = -1
        self.txn = None
        self.txn_state = "none"
        self.retry = {}  # txnNumber -> reply (only the latest kept)


class Event(object):
    __slots__ = ("seq", "ts", "wall", "op", "db", "coll", "doc_key", "post", "pre", "desc", "lsid",
                 "txn_number", "to", "has_post", "uuid", "opdesc", "disamb")

    def __init__(self, op, db, coll=None, doc_key=None, post=None, pre=None, desc=None, to=None, has_post=False,
                 uuid=None, opdesc=None):
        self.op, self.db, self.coll, self.doc_key = op, db, coll, doc_key
        self.post, self.pre, self.desc, self.to, self.has_post = post, pre, desc, to, has_post
        self.uuid = uuid        # collectionUUID (showExpandedEvents)
        self.opdesc = opdesc    # operationDescription of DDL events (showExpandedEvents)
        self.disamb = None      # disambiguatedPaths of an update (showExpandedEvents)
        self.seq = self.ts = self.wall = self.lsid = self.txn_number = None


# DDL events a change stream reports only with showExpandedEvents: true
EXPANDED_OPS = {"create", "createIndexes", "dropIndexes", "modify"}


def ts_int(ts):
    return (ts.time << 32) | ts.inc


# Resume token _data: "82" + clusterTime (16 hex) + event sequence (16 hex) + kind (2 hex) + server
# instance id (8 hex). Kind 01 = event, 02 = high-water mark, 03 = invalidate. Tokens of one server
# instance sort in stream order; tokens of an earlier instance (before a restart) are rejected
# with ChangeStreamHistoryLost (286) because that history is gone.
INSTANCE_ID = "%08X" % random.getrandbits(32)


def make_token(ts, seq, kind):
    return {"_data": "82%016X%016X%02X%s" % (ts_int(ts), seq, kind, INSTANCE_ID)}


def parse_token(tok):
    try:
        data = tok["_data"]
        if not isinstance(data, str) or len(data) != 44 or not data.startswith("82"):
            raise ValueError
        t = int(data[2:18], 16)
        parsed = Timestamp(t >> 32, t & 0xFFFFFFFF), int(data[18:34], 16), int(data[34:36], 16)
    except Exception:
        raise CmdError(260, "Bad resume token: %r" % (tok,))
    if data[36:] != INSTANCE_ID:
        raise CmdError(286, "Resume of change stream was not possible, as the resume point may no longer be in the oplog (token from an earlier server instance).")
    return parsed


class ListCursor(object):
    def __init__(self, cid, ns, docs):
        self.id, self.ns, self.docs, self.pos = cid, ns, docs, 0
        self.is_cs = False


class CSCursor(object):
    def __init__(self, cid, ns):
        self.id, self.ns = cid, ns
        self.is_cs = True
        self.db = self.coll = None
        self.cluster = False
        self.pos = 0
        self.stages = []
        self.full_doc = "default"
        self.full_doc_before = "off"
        self.expanded = False
        self.done = False
        self.pending_invalidate = None


class FailPoint(object):
    """One named fail point, configured like mongod's: mode "off" | "alwaysOn" | {times: N} |
    {skip: N} (then always on) | {activationProbability: p}; data as given."""

    def __init__(self, name):
        self.name = name
        self.mode = "off"
        self.times = 0
        self.skip = 0
        self.prob = 1.0
        self.data = {}
        self.entered = 0

    def configure(self, mode, data):
        if mode == "off" or mode == "alwaysOn":
            self.mode = mode
        elif isinstance(mode, dict) and len(mode) == 1 and next(iter(mode)) in ("times", "skip", "activationProbability"):
            k, v = next(iter(mode.items()))
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise CmdError(2, "%s must be a non-negative number" % k)
            if k == "times":
                self.mode, self.times = ("times", int(v)) if v > 0 else ("off", 0)
            elif k == "skip":
                self.mode, self.skip = "skip", int(v)
            else:
                if v > 1:
                    raise CmdError(2, "activationProbability must be between 0 and 1")
                self.mode, self.prob = "random", float(v)
        else:
            raise CmdError(2, "invalid fail point mode %r" % (mode,))
        if data is not None:
            if not isinstance(data, dict):
                raise CmdError(14, "the 'data' option must be an object")
            self.data = data
        was, self.entered = self.entered, 0
        return was

    def fire(self):
        """The fail point's condition holds for this operation: does it trigger now?"""
        if self.mode == "off":
            return False
        self.entered += 1
        if self.mode == "skip":
            if self.skip > 0:
                self.skip -= 1
                return False
            return True
        if self.mode == "random":
            return random.random() < self.prob
        if self.mode == "times":
            self.times -= 1
            if self.times <= 0:
                self.mode = "off"
        return True


FAIL_POINTS = ("failCommand", "failGetMoreAfterCursorCheckout")


# ------------------------------------------------------------------ server

class Server(object):
    def __init__(self, port, replset, history, log, compressors=None):
        self.port, self.replset, self.history_max = port, replset, history
        self.codec = wirecompress.Codec(wirecompress.available() if compressors is None else compressors)
        # serverStatus.network: logical (uncompressed) and physical (on the wire) bytes
        self.net = {"bytesIn": 0, "bytesOut": 0, "physicalBytesIn": 0, "physicalBytesOut": 0, "numRequests": 0}
        self.logf = log
        self.me = "127.0.0.1:%d" % port
        self.dbs = {}
        self.cursors = {}
        self.sessions = {}
        self.active_txns = set()
        # like mongod's transactionLifetimeLimitSeconds: a transaction left open longer (its
        # client died) is aborted when another operation runs into it
        self.txn_lifetime = 60.0
        self.hist = []
        self.hist_first = 1        # seq of hist[0]
        self.next_seq = 1
        self.dropped_max_seq = 0
        self.dropped_max_ts = Timestamp(0, 0)
        self.cluster_time = Timestamp(int(time.time()), 1)
        self.signal = asyncio.Event()
        self.failpoints = {n: FailPoint(n) for n in FAIL_POINTS}
        self.conn_counter = 0
        self.writers = set()
        self.conns = 0
        self.start_time = time.time()
        # Fresh replica-set identity on every start (no persistence): monotonic across restarts.
        now_us = int(time.time() * 1e6)
        self.set_version = int(time.time()) & 0x7FFFFFFF
        self.election_id = ObjectId(struct.pack(">QI", now_us, random.getrandbits(32)))
        self.process_id = ObjectId()
        self.topology_counter = Int64(0)

    # -------------------------------------------------------------- time / log
    def tick(self):
        t = int(time.time())
        ct = self.cluster_time
        if t > ct.time:
            self.cluster_time = Timestamp(t, 1)
        else:
            self.cluster_time = Timestamp(ct.time, ct.inc + 1)
        return self.cluster_time

    def log(self, msg):
        if self.logf:
            self.logf.write("%.3f %s\n" % (time.time(), msg))
            self.logf.flush()

    def finish(self, reply):
        reply["$clusterTime"] = {"clusterTime": self.cluster_time,
                                 "signature": {"hash": Binary(b"\x00" * 20, 0), "keyId": Int64(0)}}
        reply["operationTime"] = self.cluster_time
        return reply

    # -------------------------------------------------------------- namespaces
    def get_coll(self, db, name, create=False, ctx=None, options=None, view=None):
        """The collection db.name (a transaction also sees those it created), or None.

        create: make it if missing -- inside a transaction it stays private to the transaction
        until commit, like mongod's."""
        txn = ctx.txn if ctx is not None else None
        if txn is not None and (db, name) in txn.created:
            return txn.created[(db, name)]
        d = self.dbs.get(db)
        c = d.get(name) if d else None
        if c is None and create:
            check_coll_name(db, name)
            c = Collection(db, name, options, view)
            ev = Event("create", db, name, uuid=None if view is not None else c.uuid,
                       opdesc=self.create_description(c))
            if txn is not None:
                txn.created[(db, name)] = c
                txn.events.append(ev)
            else:
                self.dbs.setdefault(db, {})[name] = c
                self.emit([ev])
        return c

    @staticmethod
    def create_description(c):
        if c.view is not None:
            return {"viewOn": c.view["viewOn"], "pipeline": c.view["pipeline"]}
        d = {"idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"}}
        for k, v in c.options.items():
            if k not in ("idIndex",):
                d[k] = v
        return d

    def view(self, ctx, db, name, create=False, write=False, depth=0):
        coll = self.get_coll(db, name, create, ctx)
        if coll is None:
            return None
        if coll.view is not None:
            if write or create:
                raise CmdError(166, "Namespace %s.%s is a view, not a collection" % (db, name))
            if depth > 20:
                raise CmdError(149, "View depth too deep or view cycle detected; maximum depth is 20")
            src = self.view(ctx, db, coll.view["viewOn"], depth=depth + 1)
            docs = mql.run_pipeline(list(src.docs.values()) if src is not None else [], coll.view["pipeline"])
            return View(coll, dict(enumerate(docs)), computed=True)
        txn = ctx.txn if ctx else None
        if txn is None:
            return View(coll, coll.docs)
        v = txn.views.get((db, name))
        if v is None or v.coll is not coll:
            v = View(coll, dict(coll.docs), txn)
            txn.views[(db, name)] = v
            txn.touched[(db, name)] = {}
        return v

    # -------------------------------------------------------------- events
    def emit(self, events, lsid=None, txn_number=None):
        if not events:
            return
        ts = self.tick()
        wall = DateMS.now()
        for ev in events:
            ev.ts, ev.wall = ts, wall
            ev.seq = self.next_seq
            self.next_seq += 1
            if lsid is not None:
                ev.lsid = {"id": lsid["id"], "uid": Binary(b"\xe3\xb0\xc4B\x98\xfc\x1c\x14\x9a\xfb\xf4\xc8\x99o\xb9$'\xaeA\xe4d\x9b\x93L\xa4\x95\x99\x1bxR\xb8U", 0)}
                ev.txn_number = txn_number
            self.hist.append(ev)
        over = len(self.hist) - self.history_max
        if over > 0:
            for ev in self.hist[:over]:
                self.dropped_max_seq = ev.seq
                self.dropped_max_ts = ev.ts
            del self.hist[:over]
            self.hist_first = self.hist[0].seq if self.hist else self.next_seq
        self.signal.set()
        self.signal = asyncio.Event()

    def record(self, ctx, ev):
        if ctx is not None and ctx.txn is not None:
            ctx.txn.events.append(ev)
        else:
            self.emit([ev])

    # -------------------------------------------------------------- document writes
    def conflict_check(self, view, k):
        txn = view.txn
        ns = (view.coll.db, view.coll.name)
        touched = txn.touched.setdefault(ns, {})
        for other in list(self.active_txns):
            ov = other.views.get(ns)
            if ov is None or ov.coll is not view.coll:
                continue
            if other is not txn and k in other.touched.get(ns, {}) and \
                    time.monotonic() - other.started > self.txn_lifetime:
                self.abort_txn(other.sess)  # expired: mongod's reaper would have aborted it
                continue
            if other is not txn and k in other.touched.get(ns, {}):
                raise CmdError(112, "WriteConflict error: this operation conflicted with another operation. Please retry your operation or multi-document transaction.",
                               ["TransientTransactionError"])
        orig = touched[k] if k in touched else view.docs.get(k)
        if view.coll.docs.get(k) is not orig:
            raise CmdError(112, "WriteConflict error: this operation conflicted with another operation. Please retry your operation or multi-document transaction.",
                           ["TransientTransactionError"])
        if k not in touched:
            touched[k] = orig

    def check_unique(self, view, doc, k, ix_list=None):
        coll = view.coll
        for ix in coll.unique_indexes():
            nk = coll.ix_key(ix, doc)
            if nk is None:
                continue
            if view.txn is None:
                owner = coll.uniq.get(ix["name"], {}).get(nk)
                dup = owner is not None and owner != k
            else:
                dup = False
                for ok_, od in view.docs.items():
                    if ok_ != k and coll.ix_key(ix, od) == nk:
                        dup = True
                        break
            if dup:
                kv = {f: mql.get_path(doc, f) for f in ix["key"]}
                kv = {f: (None if v is MISSING else v) for f, v in kv.items()}
                raise DupKey(coll, ix, kv)

    def put_doc(self, view, k, doc):
        self.check_unique(view, doc, k)
        if view.txn is not None:
            self.conflict_check(view, k)
            view.docs[k] = doc
        else:
            view.coll.put(k, doc)

    def del_doc(self, view, k):
        if view.txn is not None:
            self.conflict_check(view, k)
            view.docs.pop(k, None)
        else:
            view.coll.remove(k)

    def do_insert_one(self, ctx, view, doc):
        if "_id" not in doc:
            doc = dict([("_id", ObjectId())] + list(doc.items()))
        elif next(iter(doc)) != "_id":
            doc = dict([("_id", doc["_id"])] + [(a, b) for a, b in doc.items() if a != "_id"])
        if isinstance(doc["_id"], (list, bsoncodec.Regex)):
            raise CmdError(2, "can't use an array or regex for _id")
        check_doc_keys(doc)
        k = key(doc["_id"])
        if k in view.docs:
            raise DupKey(view.coll, view.coll.indexes[0], {"_id": doc["_id"]})
        self.put_doc(view, k, doc)
        self.record(ctx, Event("insert", view.coll.db, view.coll.name, {"_id": doc["_id"]}, post=doc,
                               uuid=view.coll.uuid))
        return doc

    # -------------------------------------------------------------- network
    async def handle_conn(self, reader, writer):
        self.conn_counter += 1
        self.conns += 1
        conn = {"id": self.conn_counter, "peer": writer.get_extra_info("peername"), "writer": writer}
        self.writers.add(writer)
        try:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        try:
            while True:
                try:
                    hdr = await reader.readexactly(16)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                length, req_id, resp_to, opcode = struct.unpack("<iiii", hdr)
                if length < 16 or length > MAX_MSG:
                    break
                body = await reader.readexactly(length - 16)
                net = self.net
                net["physicalBytesIn"] += length
                cid = None
                if opcode == OP_COMPRESSED:
                    if len(body) < 9:
                        break
                    opcode, usize, cid = struct.unpack_from("<iiB", body, 0)
                    if usize < 0 or usize > MAX_MSG:
                        break
                    try:
                        body = self.codec.decompress(cid, memoryview(body)[9:], usize)
                    except wirecompress.CompressionError as e:
                        self.log("conn %d: %s; closing" % (conn["id"], e))
                        break
                net["bytesIn"] += 16 + len(body)
                net["numRequests"] += 1
                try:
                    out = await self.handle_message(conn, req_id, opcode, body)
                except ConnectionClose:
                    break
                if out is not None:
                    rop, payload, name = out
                    net["bytesOut"] += 16 + len(payload)
                    rid = random.getrandbits(31)
                    if cid is not None and name.lower() not in wirecompress.NEVER_COMPRESSED:
                        # like mongod: answer a compressed request with the compressor it used
                        packed = self.codec.compress(cid, payload)
                        frame = struct.pack("<iiiiiiB", 16 + 9 + len(packed), rid, req_id, OP_COMPRESSED,
                                            rop, len(payload), cid) + packed
                    else:
                        frame = struct.pack("<iiii", 16 + len(payload), rid, req_id, rop) + payload
                    net["physicalBytesOut"] += len(frame)
                    writer.write(frame)
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            self.log("connection error: %s" % traceback.format_exc())
        finally:
            self.conns -= 1
            self.writers.discard(writer)
            try:
                writer.close()
            except Exception:
                pass

    async def handle_message(self, conn, req_id, opcode, body):
        if opcode == OP_MSG:
            flags = struct.unpack_from("<I", body, 0)[0]
            end = len(body) - (4 if flags & 1 else 0)
            pos = 4
            cmd = None
            seqs = []
            while pos < end:
                kind = body[pos]
                pos += 1
                if kind == 0:
                    n = struct.unpack_from("<i", body, pos)[0]
                    cmd = bsoncodec.decode(body, pos)
                    pos += n
                elif kind == 1:
                    n = struct.unpack_from("<i", body, pos)[0]
                    sec_end = pos + n
                    p = pos + 4
                    ident_end = body.index(b"\x00", p)
                    ident = body[p:ident_end].decode()
                    p = ident_end + 1
                    docs = []
                    while p < sec_end:
                        dn = struct.unpack_from("<i", body, p)[0]
                        docs.append(bsoncodec.decode(body, p))
                        p += dn
                    seqs.append((ident, docs))
                    pos = sec_end
                else:
                    raise ConnectionClose()
            if cmd is None:
                raise ConnectionClose()
            for ident, docs in seqs:
                cmd.setdefault(ident, [])
                cmd[ident] = list(cmd[ident]) + docs
            db = cmd.get("$db", "admin")
            reply = await self.run_command(conn, db, cmd)
            if flags & 2:  # moreToCome: no reply
                return None
            return OP_MSG, struct.pack("<I", 0) + b"\x00" + bsoncodec.encode(reply), next(iter(cmd), "")
        if opcode == OP_QUERY:
            flags = struct.unpack_from("<i", body, 0)[0]
            nend = body.index(b"\x00", 4)
            fullname = body[4:nend].decode()
            pos = nend + 1 + 8
            q = bsoncodec.decode(body, pos)
            if "$query" in q:
                q = q["$query"]
            db, _, cname = fullname.partition(".")
            if cname != "$cmd":
                reply = {"$err": "OP_QUERY is only supported for commands", "code": 5739101, "ok": 0.0}
            else:
                reply = await self.run_command(conn, db, q, legacy=True)
            doc = bsoncodec.encode(reply)
            return OP_REPLY, struct.pack("<iqii", 0, 0, 0, 1) + doc, next(iter(q), "")
        # unsupported opcode (legacy OP_INSERT, OP_GET_MORE ...; OP_COMPRESSED is unwrapped before)
        raise ConnectionClose()

    # -------------------------------------------------------------- dispatch
    async def run_command(self, conn, db, cmd, legacy=False):
        if not cmd:
            return self.finish(err_doc(59, "no such command: ''"))
        name = next(iter(cmd))
        t0 = time.time()
        fx = {}  # fail point effects on this command
        try:
            reply = await self._run_command(conn, db, name, cmd, legacy, fx)
        except ConnectionClose:
            self.log("conn %d %s.%s -> closeConnection" % (conn["id"], db, name))
            raise
        except CmdError as e:
            reply = err_doc(e.code, e.msg, e.labels)
            reply.update(e.extra)
        except MQLError as e:
            reply = err_doc(e.code, e.msg, None, e.name)
        except DupKey as e:
            reply = err_doc(11000, e.message())
            reply["keyPattern"] = e.ix["key"]
            reply["keyValue"] = e.kv
        except Exception as e:
            self.log("internal error in %s: %s" % (name, traceback.format_exc()))
            reply = err_doc(1, "internal error in test server: %s: %s" % (type(e).__name__, e))
        if (reply.get("ok") == 0.0 or "writeConcernError" in reply) and not fx.get("labels_fixed"):
            self.add_labels(cmd, name, reply)
        if self.logf:
            self.log("conn %d %s.%s %.1fms ok=%s%s" % (conn["id"], db, name, (time.time() - t0) * 1000,
                                                      reply.get("ok"), "" if reply.get("ok") else " code=%s" % reply.get("code")))
        return self.finish(reply)

    def add_labels(self, cmd, name, reply):
        """Error labels the way mongod computes them (error_labels.cpp), added to those already set."""
        code = reply.get("code") if reply.get("ok") == 0.0 else None
        wce = reply.get("writeConcernError")
        wcode = wce.get("code") if isinstance(wce, dict) else None
        labels = list(reply.get("errorLabels") or [])

        def add(label):
            if label not in labels:
                labels.append(label)
        in_txn = cmd.get("autocommit") is not None
        commit_abort = name in ("commitTransaction", "abortTransaction")
        if in_txn and code is not None:
            transient = code in TRANSIENT_BASE_CODES
            if commit_abort:
                transient = transient or (code == 251 and wce is None)
            else:
                transient = transient or code in RETRYABLE_CODES or code == 251
            if transient:
                add("TransientTransactionError")
        retryable_write = "txnNumber" in cmd and not in_txn
        if (retryable_write or (commit_abort and in_txn and "txnNumber" in cmd)) and \
                (code in RETRYABLE_CODES or wcode in RETRYABLE_CODES):
            add("RetryableWriteError")
        if name == "aggregate" and code in RESUMABLE_CS_CODES and wce is None:
            pipeline = cmd.get("pipeline")
            if isinstance(pipeline, list) and pipeline and isinstance(pipeline[0], dict) and "$changeStream" in pipeline[0]:
                add("ResumableChangeStreamError")
        if code == 280:
            add("NonResumableChangeStreamError")
        if labels:
            reply["errorLabels"] = labels

    async def _run_command(self, conn, db, name, cmd, legacy, fx):
        r = await self._run_command2(conn, db, name, cmd, legacy, fx)
        if r.get("ok"):
            if "fp_wce" in fx:
                r["writeConcernError"] = fx["fp_wce"]
                if "fp_labels" in fx:
                    r["errorLabels"] = fx["fp_labels"]
            elif "writeConcern" in cmd:
                wce = write_concern_error(cmd["writeConcern"])
                if wce is not None:
                    r["writeConcernError"] = wce
        return r

    async def _run_command2(self, conn, db, name, cmd, legacy, fx):
        fp = self.failpoints["failCommand"]
        if fp.mode != "off" and name != "configureFailPoint":
            data = fp.data
            names = data.get("failCommands") or []
            app = data.get("appName")
            if app is not None and conn.get("app_name") != app:
                names = []  # restricted to the connections of one client application
            hit = name in names or (name.lower() == "ismaster" and ("isMaster" in names or "ismaster" in names))
            if hit and fp.fire():
                if truthy(data.get("blockConnection")):
                    await asyncio.sleep(num(data.get("blockTimeMS", 0)) / 1000.0)
                if truthy(data.get("closeConnection")):
                    raise ConnectionClose()
                if "errorCode" in data:
                    code = int(num(data["errorCode"]))
                    r = err_doc(code, "Failing command %s via 'failCommand' failpoint" % name)
                    if "errorLabels" in data:
                        r["errorLabels"] = list(data["errorLabels"])
                        fx["labels_fixed"] = True
                    return r
                if "writeConcernError" in data:
                    fx["fp_wce"] = data["writeConcernError"]
                    if "errorLabels" in data:
                        fx["fp_labels"] = list(data["errorLabels"])
                        fx["labels_fixed"] = True
        handler = COMMANDS.get(name) or COMMANDS.get(name.lower() if name.lower() in LOWER_OK else None)
        if handler is None:
            raise CmdError(59, "no such command: '%s'" % name)
        ctx = Ctx(conn, db, cmd, name)
        lsid = cmd.get("lsid")
        txn_number = cmd.get("txnNumber")
        if lsid is not None and isinstance(lsid, dict) and "id" in lsid:
            ctx.lsid = lsid
            ctx.sess = self.sessions.get(bytes(lsid["id"]))
            if ctx.sess is None:
                ctx.sess = self.sessions[bytes(lsid["id"])] = Session(bytes(lsid["id"]))
        autocommit = cmd.get("autocommit", None)
        if autocommit is not None:
            if autocommit is not False:
                raise CmdError(72, "autocommit must be false")
            if ctx.sess is None or txn_number is None:
                raise CmdError(72, "Transactions need a session id and txnNumber")
            return await self.in_transaction(ctx, handler, int(txn_number))
        if name in ("commitTransaction", "abortTransaction"):
            raise CmdError(50768, "txnNumber and autocommit are required for %s" % name)
        if txn_number is not None and name in WRITE_CMDS and ctx.sess is not None:
            sess = ctx.sess
            tn = int(txn_number)
            if tn < sess.txn_number:
                raise CmdError(225, "Retryable write with txnNumber %d is prohibited on session because a newer retryable write with txnNumber %d has already started" % (tn, sess.txn_number))
            if tn == sess.txn_number and tn in sess.retry:
                r = dict(sess.retry[tn])
                return r
            if sess.txn is not None and sess.txn_state == "in_progress":
                self.abort_txn(sess)
            sess.txn_number = tn
            sess.txn_state = "none"
            r = handler(self, ctx)
            if asyncio.iscoroutine(r):
                r = await r
            if r.get("ok") == 1.0 or r.get("ok") == 1:
                sess.retry = {tn: dict(r)}
            return r
        r = handler(self, ctx)
        if asyncio.iscoroutine(r):
            r = await r
        return r

    # -------------------------------------------------------------- transactions
    async def in_transaction(self, ctx, handler, tn):
        sess, name, cmd = ctx.sess, ctx.name, ctx.cmd
        if truthy(cmd.get("startTransaction")):
            if tn < sess.txn_number:
                raise CmdError(225, "Cannot start transaction %d on session because a newer transaction %d has already started" % (tn, sess.txn_number))
            if tn == sess.txn_number and sess.txn_state != "none":
                raise CmdError(251, "Given transaction number %d does not match any in-progress transactions" % tn, ["TransientTransactionError"])
            if sess.txn is not None:
                self.abort_txn(sess)
            sess.txn_number = tn
            sess.txn = Txn(sess, tn)
            sess.txn_state = "in_progress"
            self.active_txns.add(sess.txn)
        elif tn != sess.txn_number or sess.txn_state != "in_progress":
            if tn == sess.txn_number and sess.txn_state == "committed":
                if name == "commitTransaction":
                    return {"ok": 1.0}
                if name == "abortTransaction":
                    raise CmdError(256, "Transaction %d has been committed." % tn)
                raise CmdError(256, "Transaction %d has been committed." % tn)
            if tn < sess.txn_number:
                raise CmdError(225, "txnNumber %d is less than last txnNumber %d seen in session" % (tn, sess.txn_number))
            raise CmdError(251, "Given transaction number %d does not match any in-progress transactions. The active transaction number is %d" % (tn, sess.txn_number),
                           ["TransientTransactionError"])
        txn = sess.txn
        if name == "commitTransaction":
            return self.commit_txn(ctx, sess)
        if name == "abortTransaction":
            self.abort_txn(sess)
            return {"ok": 1.0}
        if name not in TXN_CMDS and name.lower() not in ("findandmodify",):
            raise CmdError(263, "Cannot run '%s' in a multi-document transaction." % name)
        if name == "aggregate" and any(isinstance(s, dict) and "$changeStream" in s for s in cmd.get("pipeline", [])):
            raise CmdError(263, "Cannot run a change stream in a multi-document transaction.")
        ctx.txn = txn
        try:
            r = handler(self, ctx)
            if asyncio.iscoroutine(r):
                r = await r
        except CmdError as e:
            self.abort_txn(sess)
            if e.code in TRANSIENT_TXN_CODES and "TransientTransactionError" not in e.labels:
                e.labels.append("TransientTransactionError")
            raise
        except (MQLError, DupKey):
            self.abort_txn(sess)
            raise
        if r.get("writeErrors"):
            self.abort_txn(sess)
        return r

    def abort_txns_on(self, db, name):
        """A DDL operation on db.name (drop, rename) aborts the open transactions that used it.

        (mongod makes the DDL operation wait until those transactions end or expire.)"""
        for txn in list(self.active_txns):
            if (db, name) in txn.views or (db, name) in txn.created:
                self.abort_txn(txn.sess)

    def abort_txn(self, sess):
        if sess.txn is not None:
            self.active_txns.discard(sess.txn)
            sess.txn.state = "aborted"
        sess.txn = None
        sess.txn_state = "aborted"

    def commit_txn(self, ctx, sess):
        txn = sess.txn
        for (db, cname) in txn.created:
            if self.get_coll(db, cname) is not None:
                self.abort_txn(sess)
                raise CmdError(112, "WriteConflict: collection %s.%s was created outside the transaction" % (db, cname),
                               ["TransientTransactionError"])
        for (db, cname), v in txn.views.items():
            touched = txn.touched.get((db, cname), {})
            if not touched or (db, cname) in txn.created:
                continue
            if self.get_coll(db, cname) is not v.coll:
                self.abort_txn(sess)
                raise CmdError(112, "WriteConflict: collection %s.%s changed during the transaction" % (db, cname), ["TransientTransactionError"])
            for k, orig in touched.items():
                if v.coll.docs.get(k) is not orig:
                    self.abort_txn(sess)
                    raise CmdError(112, "WriteConflict error: this operation conflicted with another operation.", ["TransientTransactionError"])
        for (db, cname), c in txn.created.items():
            self.dbs.setdefault(db, {})[cname] = c
        for (db, cname), v in txn.views.items():
            for k in txn.touched.get((db, cname), {}):
                nd = v.docs.get(k)
                if nd is None:
                    v.coll.remove(k)
                else:
                    v.coll.put(k, nd)
        self.emit(txn.events, lsid=ctx.lsid, txn_number=Int64(sess.txn_number))
        self.active_txns.discard(txn)
        sess.txn = None
        sess.txn_state = "committed"
        return {"ok": 1.0}

    # -------------------------------------------------------------- cursors
    def new_cursor_id(self):
        while True:
            cid = random.getrandbits(62) + 1
            if cid not in self.cursors:
                return cid

    def batch(self, cur, n):
        """Next batch of a list cursor, pre-encoded, bounded by count and 16MB."""
        out, size = [], 0
        while cur.pos < len(cur.docs) and (n is None or len(out) < n):
            raw = bsoncodec.encode(cur.docs[cur.pos])
            if out and size + len(raw) > MAX_BSON:
                break
            out.append(RawDoc(raw))
            size += len(raw)
            cur.pos += 1
        return out

    def cursor_reply(self, db_ns, docs, batch_size, single=False, first=True, limit=None):
        cur = ListCursor(0, db_ns, docs)
        n = 101 if batch_size is None else int(num(batch_size))
        if n == 0 and first:
            b = []
        else:
            b = self.batch(cur, n if n > 0 else None)
        cid = 0
        if cur.pos < len(docs) and not single:
            cid = self.new_cursor_id()
            cur.id = cid
            self.cursors[cid] = cur
        return {"cursor": {"firstBatch": b, "id": Int64(cid), "ns": db_ns}, "ok": 1.0}

    # -------------------------------------------------------------- change streams
    def cs_events_after(self, pos):
        i = pos + 1 - self.hist_first
        if i < 0:
            i = 0
        return self.hist[i:]

    def cs_position_from(self, ts=None, seq=None):
        if seq is not None:
            if seq < self.dropped_max_seq:
                raise CmdError(286, "Resume of change stream was not possible, as the resume point may no longer be in the oplog.")
            return seq
        # startAtOperationTime: inclusive
        if self.dropped_max_seq and key(ts) <= key(self.dropped_max_ts):
            raise CmdError(286, "Resume of change stream was not possible, as the resume point may no longer be in the oplog.")
        pos = self.dropped_max_seq
        for ev in self.hist:
            if key(ev.ts) < key(ts):
                pos = ev.seq
            else:
                break
        return pos

    def cs_applies(self, cur, ev):
        if ev.op in EXPANDED_OPS and not cur.expanded:
            return False
        if cur.cluster:
            return ev.db not in ("admin", "config", "local")
        if ev.db != cur.db:
            return False
        if cur.coll is None:
            return True
        if ev.op == "dropDatabase":
            return False
        return ev.coll == cur.coll

    def cs_invalidates(self, cur, ev):
        if cur.cluster:
            return False
        if cur.coll is None:
            return ev.op == "dropDatabase" and ev.db == cur.db
        return ev.op in ("drop", "rename") and ev.db == cur.db and ev.coll == cur.coll

    def cs_doc(self, cur, ev):
        d = {"_id": make_token(ev.ts, ev.seq, 1), "operationType": ev.op, "clusterTime": ev.ts}
        if ev.lsid is not None:
            d["lsid"] = ev.lsid
            d["txnNumber"] = ev.txn_number
        d["wallTime"] = ev.wall
        if cur.expanded and ev.uuid is not None:
            d["collectionUUID"] = ev.uuid
        op = ev.op
        if op in ("insert", "replace"):
            d["fullDocument"] = ev.post
        elif op == "update" and cur.full_doc != "default":
            if cur.full_doc == "updateLookup":
                c = self.get_coll(ev.db, ev.coll)
                d["fullDocument"] = c.docs.get(key(ev.doc_key["_id"])) if c is not None else None
            elif ev.has_post:
                d["fullDocument"] = ev.post
            elif cur.full_doc == "required":
                raise CmdError(47, "Change stream was configured to require a post-image for all update, delete and replace events, but the post-image was not found for event: %s" % d["_id"]["_data"])
            else:
                d["fullDocument"] = None
        if op in ("insert", "update", "replace", "delete", "drop", "rename") or op in EXPANDED_OPS:
            d["ns"] = {"db": ev.db, "coll": ev.coll}
        elif op == "dropDatabase":
            d["ns"] = {"db": ev.db}
        if op == "rename":
            d["to"] = ev.to
        if op in ("insert", "update", "replace", "delete"):
            d["documentKey"] = ev.doc_key
        if op == "update":
            d["updateDescription"] = ev.desc
            if cur.expanded and ev.disamb:
                d["updateDescription"] = dict(ev.desc, disambiguatedPaths=ev.disamb)
        if cur.expanded and ev.opdesc is not None and (op in EXPANDED_OPS or op == "rename"):
            d["operationDescription"] = ev.opdesc
        if op in ("update", "replace", "delete") and cur.full_doc_before != "off":
            if ev.pre is not None:
                d["fullDocumentBeforeChange"] = ev.pre
            elif cur.full_doc_before == "required":
                raise CmdError(47, "Change stream was configured to require a pre-image for all update, delete and replace events, but the pre-image was not found for event: %s" % d["_id"]["_data"])
            else:
                d["fullDocumentBeforeChange"] = None
        return d

    def cs_invalidate_doc(self, ev):
        return {"_id": make_token(ev.ts, ev.seq, 3), "operationType": "invalidate", "clusterTime": ev.ts,
                "wallTime": ev.wall}

    def cs_collect(self, cur, limit):
        out = []
        size = 0

        def push(doc):
            nonlocal size
            res = mql.run_pipeline([doc], cur.stages) if cur.stages else [doc]
            for r in res:
                if r is not doc and (not isinstance(r, dict) or "_id" not in r or
                                     bsoncodec.encode({"t": r["_id"]}) != bsoncodec.encode({"t": doc["_id"]})):
                    raise CmdError(280, "Encountered an event whose _id field, which contains the resume token, was "
                                        "modified by the pipeline. Modifying the _id field of an event makes it "
                                        "impossible to resume the stream from that point. Only transformations that "
                                        "retain the unmodified _id field are allowed.")
                raw = bsoncodec.encode(r)
                out.append((RawDoc(raw), r.get("_id")))
                size += len(raw)

        if cur.pending_invalidate is not None:
            ev = cur.pending_invalidate
            cur.pending_invalidate = None
            push(self.cs_invalidate_doc(ev))
            cur.done = True
            return out, True
        exhausted = True
        for ev in self.cs_events_after(cur.pos):
            if (limit is not None and len(out) >= limit) or size > MAX_BSON - 1024 * 1024:
                exhausted = False
                break
            if ev.seq <= cur.pos:
                continue
            if self.cs_applies(cur, ev):
                push(self.cs_doc(cur, ev))
            cur.pos = ev.seq
            if self.cs_invalidates(cur, ev):
                push(self.cs_invalidate_doc(ev))
                cur.done = True
                break
        return out, exhausted

    def cs_pbrt(self, cur, out, exhausted):
        if out and (not exhausted or cur.done):
            tok = out[-1][1]
            if isinstance(tok, dict):
                return tok
        return self.hwm_token(cur.pos)

    def hwm_token(self, pos):
        """High-water-mark token for a stream positioned after event `pos`.

        When caught up it carries the latest cluster time, or the wall clock when idle (like the
        periodic no-op writes of a real primary), so an idle stream's position still moves. Otherwise
        it carries the time of event `pos`, so it sorts before the events still to come.
        """
        if pos >= self.next_seq - 1:
            now = Timestamp(int(time.time()), 0)
            ts = self.cluster_time if key(self.cluster_time) >= key(now) else now
        else:
            ev = self.event_by_seq(pos)
            ts = ev.ts if ev is not None else self.dropped_max_ts
        return make_token(ts, pos, 2)

    def cs_open(self, ctx, db, coll, spec, stages, batch_size):
        if not isinstance(spec, dict):
            raise CmdError(14, "$changeStream stage must be an object")
        cluster = truthy(spec.get("allChangesForCluster"))
        if cluster and (db != "admin" or coll is not None):
            raise CmdError(73, "A change stream that watches the whole cluster must be opened on the admin database with {aggregate: 1}")
        if db == "admin" and not cluster:
            raise CmdError(73, "$changeStream may not be opened on the internal admin database")
        if db in ("config", "local"):
            raise CmdError(73, "$changeStream may not be opened on the internal %s database" % db)
        for st in stages:
            n = next(iter(st))
            if n not in CS_STAGES:
                if n == "$changeStreamSplitLargeEvent":
                    raise CmdError(20, "$changeStreamSplitLargeEvent is not supported by the ArraySync test server")
                if n in KNOWN_STAGES:
                    raise CmdError(20, "%s is not permitted in a $changeStream pipeline" % n)
                raise CmdError(40324, "Unrecognized pipeline stage name: '%s'" % n)
        ns = "%s.%s" % (db, coll if coll is not None else "$cmd.aggregate")
        cur = CSCursor(0, ns)
        cur.db, cur.coll, cur.cluster = db, coll, cluster
        cur.stages = stages
        cur.expanded = truthy(spec.get("showExpandedEvents", False))
        if coll is not None:
            target = self.get_coll(db, coll)
            if target is not None and target.view is not None:
                raise CmdError(166, "Namespace %s.%s is a view, not a collection" % (db, coll))
        cur.full_doc = spec.get("fullDocument", "default")
        if cur.full_doc not in ("default", "updateLookup", "whenAvailable", "required"):
            raise CmdError(2, "unknown full document mode %r" % cur.full_doc)
        cur.full_doc_before = spec.get("fullDocumentBeforeChange", "off")
        if cur.full_doc_before not in ("off", "whenAvailable", "required"):
            raise CmdError(2, "unknown fullDocumentBeforeChange mode %r" % cur.full_doc_before)
        opts = [o for o in ("resumeAfter", "startAfter", "startAtOperationTime") if spec.get(o) is not None]
        if len(opts) > 1:
            raise CmdError(40674, "Only one type of resume option is allowed, but multiple were found.")
        if not opts:
            cur.pos = self.next_seq - 1
        elif opts[0] == "startAtOperationTime":
            ts = spec["startAtOperationTime"]
            if not isinstance(ts, Timestamp):
                raise CmdError(14, "startAtOperationTime must be a Timestamp")
            cur.pos = self.cs_position_from(ts=ts)
        else:
            ts, seq, kind = parse_token(spec[opts[0]])
            if kind == 3 and opts[0] == "resumeAfter":
                raise CmdError(260, "Attempting to resume a change stream using 'resumeAfter' is not allowed from an invalidate notification.")
            if seq >= self.next_seq:
                raise CmdError(260, "cannot resume stream; the resume token was not found (token is from the future)")
            cur.pos = self.cs_position_from(seq=seq)
            if kind == 1:
                ev = self.event_by_seq(seq)
                if ev is not None and self.cs_invalidates(cur, ev):
                    cur.pending_invalidate = ev
        out, exhausted = self.cs_collect(cur, None if batch_size is None else int(num(batch_size))) \
            if batch_size is None or int(num(batch_size)) > 0 else ([], self.next_seq - 1 == cur.pos)
        cid = 0
        if not cur.done:
            cid = self.new_cursor_id()
            cur.id = cid
            self.cursors[cid] = cur
        return {"cursor": {"firstBatch": [o[0] for o in out], "postBatchResumeToken": self.cs_pbrt(cur, out, exhausted),
                           "id": Int64(cid), "ns": ns}, "ok": 1.0}

    def event_by_seq(self, seq):
        i = seq - self.hist_first
        if 0 <= i < len(self.hist):
            return self.hist[i]
        return None

    async def cs_getmore(self, cur, batch_size, max_time_ms):
        deadline = time.monotonic() + max_time_ms / 1000.0
        while True:
            sig = self.signal
            if cur.pos < self.dropped_max_seq:
                # the cursor fell behind the bounded history: like mongod, fail (not resumable)
                self.cursors.pop(cur.id, None)
                raise CmdError(286, "Error on remote shard: Resume of change stream was not possible, as the resume point may no longer be in the oplog.")
            try:
                out, exhausted = self.cs_collect(cur, batch_size)
            except Exception:
                self.cursors.pop(cur.id, None)  # like mongod: an error kills the cursor
                raise
            if out or cur.done:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(sig.wait(), remaining)
            except asyncio.TimeoutError:
                pass
            if self.cursors.get(cur.id) is not cur:
                raise CmdError(43, "cursor id %d not found" % cur.id)
        cid = cur.id
        pbrt = self.cs_pbrt(cur, out, exhausted)
        if cur.done:
            self.cursors.pop(cur.id, None)
            cid = 0
        return {"cursor": {"nextBatch": [o[0] for o in out], "postBatchResumeToken": pbrt,
                           "id": Int64(cid), "ns": cur.ns}, "ok": 1.0}


class ConnectionClose(Exception):
    pass


class DupKey(Exception):
    def __init__(self, coll, ix, kv):
        Exception.__init__(self, "duplicate key")
        self.coll, self.ix, self.kv = coll, ix, kv

    def message(self):
        parts = ", ".join("%s: %s" % (k, short_repr(v)) for k, v in self.kv.items())
        return "E11000 duplicate key error collection: %s.%s index: %s dup key: { %s }" % (
            self.coll.db, self.coll.name, self.ix["name"], parts)


def short_repr(v):
    if isinstance(v, str):
        return '"%s"' % v
    if isinstance(v, ObjectId):
        return "ObjectId('%s')" % v
    if v is None:
        return "null"
    return repr(v)


class Ctx(object):
    def __init__(self, conn, db, cmd, name):
        self.conn, self.db, self.cmd, self.name = conn, db, cmd, name
        self.lsid = None
        self.sess = None
        self.txn = None


def write_concern_error(wc):
    """writeConcernError a single-node replica set gives for this write concern, or None.

    Like mongod the write itself is applied; only the wait for the write concern fails:
    w greater than the one data-bearing member -> 100 UnsatisfiableWriteConcern, a w mode
    other than "majority" -> 79 UnknownReplWriteConcern.
    """
    if not isinstance(wc, dict):
        return None
    w = wc.get("w")
    err = None
    if isinstance(w, bool) or w is None:
        return None
    if isinstance(w, (int, float, Int64)) and w > 1:
        err = (100, "UnsatisfiableWriteConcern", "Not enough data-bearing nodes")
    elif isinstance(w, str) and w != "majority":
        err = (79, "UnknownReplWriteConcern", "No write concern mode named '%s' found in replica set configuration" % w)
    if err is None:
        return None
    info = {"w": w, "wtimeout": int(wc.get("wtimeout", 0)) if isinstance(wc.get("wtimeout", 0), (int, float)) else 0,
            "provenance": "clientSupplied"}
    return {"code": err[0], "codeName": err[1], "errmsg": err[2], "errInfo": {"writeConcern": info}}


def check_coll_name(db, name):
    if not isinstance(name, str) or not name or "$" in name or "\x00" in name or name.startswith("."):
        raise CmdError(73, "Invalid collection name: %r" % (name,))
    if not db or any(c in db for c in '/\\. "$\x00'):
        raise CmdError(73, "Invalid database name: %r" % (db,))


def check_doc_keys(doc):
    for k, v in doc.items():
        if k.startswith("$") and k not in ("$ref", "$id", "$db"):
            raise CmdError(2, "Document can't have $ prefixed field names: %s" % k)


def coll_arg(ctx):
    v = ctx.cmd[ctx.name]
    if not isinstance(v, str):
        raise CmdError(73, "collection name has invalid type %s" % type(v).__name__)
    check_coll_name(ctx.db, v)
    return v


from mongo_commands import COMMANDS, LOWER_OK  # noqa: E402


async def main_async(args):
    logf = open(args.log, "a") if args.log else None
    srv = Server(args.port, args.replset, args.history, logf, args.compressors)
    server = await asyncio.start_server(srv.handle_conn, "127.0.0.1", args.port, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    if args.port == 0:
        srv.port = port
        srv.me = "127.0.0.1:%d" % port
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    srv.log("listening on 127.0.0.1:%d replset=%s history=%d compressors=%s" % (
        port, args.replset, args.history, ",".join(srv.codec.enabled) or "disabled"))
    sys.stdout.write("listening on 127.0.0.1:%d\n" % port)
    sys.stdout.flush()
    loop = asyncio.get_event_loop()
    stop = asyncio.Event()
    import signal as _signal
    for s in (_signal.SIGTERM, _signal.SIGINT):
        try:
            loop.add_signal_handler(s, stop.set)
        except NotImplementedError:
            pass
    await stop.wait()
    srv.log("shutting down")
    server.close()
    for w in list(srv.writers):
        try:
            w.transport.abort()
        except Exception:
            pass
    # nothing to persist: exit at once instead of waiting for asyncio's teardown
    if args.pidfile:
        try:
            os.unlink(args.pidfile)
        except OSError:
            pass
    if logf:
        logf.close()
    sys.stdout.flush()
    os._exit(0)
    if args.pidfile:
        try:
            os.unlink(args.pidfile)
        except OSError:
            pass


def main(argv=None):
    p = argparse.ArgumentParser(description="MongoDB wire-protocol test server (127.0.0.1 only)")
    p.add_argument("--port", type=int, default=27017)
    p.add_argument("--replset", default="rs0")
    p.add_argument("--pidfile")
    p.add_argument("--history", type=int, default=100000,
                   help="change events kept for resuming change streams (oldest dropped)")
    p.add_argument("--log")
    p.add_argument("--compressors", default=None,
                   help="wire compressors offered, like mongod's --networkMessageCompressors: a list of "
                        "snappy, zstd, zlib, or 'disabled' (default: those this interpreter has, in "
                        "the order snappy,zstd,zlib)")
    args = p.parse_args(argv)
    if args.history < 1:
        p.error("--history must be >= 1")
    try:
        args.compressors = wirecompress.parse_list(args.compressors)
    except ValueError as e:
        p.error(str(e))
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

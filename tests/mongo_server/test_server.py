"""Tests of the ArraySync MongoDB test server, driven through Debian's pymongo 3.11.

Run: /usr/bin/python3 -m unittest tests/mongo_server/test_server.py   (from the repo root)
The suite starts its own servers on free 127.0.0.1 ports.
"""
import datetime
import os
import socket
import struct
import subprocess
import sys
import time
import unittest
import unittest.mock
import uuid

import bson
import pymongo
from bson.binary import Binary
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument
from bson.regex import Regex
from bson.timestamp import Timestamp
from pymongo.errors import (BulkWriteError, DuplicateKeyError, OperationFailure)

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "mongo_server.py")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ServerProc(object):
    def __init__(self, *extra):
        self.port = free_port()
        if os.environ.get("ARRAYSYNC_MONGO_SERVER_LOG"):  # debugging aid: per-command log
            extra = extra + ("--log", os.environ["ARRAYSYNC_MONGO_SERVER_LOG"])
        self.proc = subprocess.Popen([sys.executable if sys.executable.startswith("/usr/bin/") else "/usr/bin/python3",
                                      SERVER, "--port", str(self.port)] + list(extra),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        line = self.proc.stdout.readline().decode()
        if "listening" not in line:
            raise RuntimeError("server failed to start: %s" % line)
        self.uri = "mongodb://127.0.0.1:%d/?replicaSet=rs0" % self.port

    def client(self, **kw):
        kw.setdefault("serverSelectionTimeoutMS", 5000)
        return pymongo.MongoClient(self.uri, **kw)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.proc.stdout.close()


class RawConn(object):
    """Minimal wire client (bson from pymongo) for protocol-level checks."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), 5)
        self.rid = 0

    def close(self):
        self.sock.close()

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def read_msg(self):
        hdr = self.recv_exact(16)
        length, rid, rto, op = struct.unpack("<iiii", hdr)
        return rto, op, self.recv_exact(length - 16)

    def send(self, op, payload):
        self.rid += 1
        self.sock.sendall(struct.pack("<iiii", 16 + len(payload), self.rid, 0, op) + payload)
        return self.rid

    def msg(self, cmd, flags=0, seqs=(), checksum=False, expect_reply=True):
        body = b"\x00" + bson.encode(cmd)
        for ident, docs in seqs:
            sec = ident.encode() + b"\x00" + b"".join(bson.encode(d) for d in docs)
            body += b"\x01" + struct.pack("<i", len(sec) + 4) + sec
        if checksum:
            flags |= 1
        payload = struct.pack("<I", flags) + body + (b"\x00\x00\x00\x00" if checksum else b"")
        rid = self.send(2013, payload)
        if not expect_reply:
            return None
        rto, op, body = self.read_msg()
        assert op == 2013 and rto == rid, (op, rto, rid)
        assert body[4] == 0
        return bson.decode(body[5:])

    def query(self, ns, q):
        payload = struct.pack("<i", 0) + ns.encode() + b"\x00" + struct.pack("<ii", 0, -1) + bson.encode(q)
        rid = self.send(2004, payload)
        rto, op, body = self.read_msg()
        assert op == 1 and rto == rid
        flags, cid, start, nret = struct.unpack_from("<iqii", body)
        return nret, bson.decode(body[20:])


SRV = None
CLIENT = None


def setUpModule():
    global SRV, CLIENT
    SRV = ServerProc()
    CLIENT = SRV.client()


def tearDownModule():
    CLIENT.close()
    SRV.stop()


class Base(unittest.TestCase):
    dbname = "t"

    def setUp(self):
        self.client = CLIENT
        self.db = CLIENT[self.dbname + "_" + self._testMethodName[:40]]
        CLIENT.drop_database(self.db.name)

    def raw(self):
        c = RawConn(SRV.port)
        self.addCleanup(c.close)
        return c


# ====================================================================== wire / handshake

class TestHandshake(Base):
    def test_hello_fields(self):
        r = self.client.admin.command("hello")
        self.assertIs(r["isWritablePrimary"], True)
        self.assertIs(r["helloOk"], True)
        self.assertIs(r["secondary"], False)
        self.assertEqual(r["setName"], "rs0")
        me = "127.0.0.1:%d" % SRV.port
        self.assertEqual(r["hosts"], [me])
        self.assertEqual(r["primary"], me)
        self.assertEqual(r["me"], me)
        self.assertIsInstance(r["setVersion"], int)
        self.assertIsInstance(r["electionId"], ObjectId)
        self.assertIsInstance(r["topologyVersion"]["processId"], ObjectId)
        self.assertIsInstance(r["topologyVersion"]["counter"], Int64)
        self.assertEqual(r["minWireVersion"], 0)
        self.assertEqual(r["maxWireVersion"], 21)  # MongoDB 7.0
        self.assertNotIsInstance(r["maxWireVersion"], Int64)
        self.assertEqual(r["logicalSessionTimeoutMinutes"], 30)
        self.assertEqual(r["maxBsonObjectSize"], 16777216)
        self.assertEqual(r["maxMessageSizeBytes"], 48000000)
        self.assertEqual(r["maxWriteBatchSize"], 100000)
        self.assertIsInstance(r["localTime"], datetime.datetime)
        self.assertIsInstance(r["connectionId"], int)
        self.assertIs(r["readOnly"], False)
        self.assertEqual(r["ok"], 1.0)
        self.assertIsInstance(r["lastWrite"]["opTime"]["ts"], Timestamp)
        ct = r["$clusterTime"]
        self.assertIsInstance(ct["clusterTime"], Timestamp)
        self.assertEqual(ct["signature"]["hash"], b"\x00" * 20)
        self.assertEqual(ct["signature"]["keyId"], 0)
        self.assertIsInstance(ct["signature"]["keyId"], Int64)
        self.assertIsInstance(r["operationTime"], Timestamp)

    def test_ismaster_op_msg(self):
        r = self.client.admin.command("isMaster")
        self.assertIs(r["ismaster"], True)
        self.assertEqual(r["setName"], "rs0")
        r = self.client.admin.command("ismaster")
        self.assertIs(r["ismaster"], True)

    def test_op_query_handshake(self):
        c = self.raw()
        n, r = c.query("admin.$cmd", {"isMaster": 1, "client": {"driver": {"name": "x", "version": "1"}},
                                      "saslSupportedMechs": "admin.user", "compression": ["zstd"]})
        self.assertEqual(n, 1)
        self.assertTrue(r["ismaster"])
        self.assertEqual(r["maxWireVersion"], 21)
        self.assertEqual(r["compression"], ["zstd"])
        n, r = c.query("admin.$cmd", {"$query": {"hello": 1}})
        self.assertTrue(r["isWritablePrimary"])

    def test_op_msg_sequences_more_to_come_checksum(self):
        c = self.raw()
        r = c.msg({"insert": "c", "$db": self.db.name}, seqs=[("documents", [{"_id": 1}, {"_id": 2}])])
        self.assertEqual(r["n"], 2)
        r = c.msg({"insert": "c", "$db": self.db.name, "documents": [{"_id": 3}]}, checksum=True)
        self.assertEqual(r["n"], 1)
        c.msg({"insert": "c", "$db": self.db.name, "writeConcern": {"w": 0}},
              seqs=[("documents", [{"_id": 4}])], flags=2, expect_reply=False)
        r = c.msg({"update": "c", "$db": self.db.name},
                  seqs=[("updates", [{"q": {"_id": 1}, "u": {"$set": {"x": 1}}}])])
        self.assertEqual((r["n"], r["nModified"]), (1, 1))
        r = c.msg({"delete": "c", "$db": self.db.name}, seqs=[("deletes", [{"q": {"_id": 2}, "limit": 1}])])
        self.assertEqual(r["n"], 1)
        self.assertEqual(sorted(d["_id"] for d in self.db.c.find()), [1, 3, 4])

    def test_awaitable_hello(self):
        c = self.raw()
        r = c.msg({"hello": 1, "$db": "admin"})
        t0 = time.time()
        r2 = c.msg({"hello": 1, "$db": "admin", "topologyVersion": r["topologyVersion"], "maxAwaitTimeMS": 300})
        self.assertGreaterEqual(time.time() - t0, 0.25)
        self.assertEqual(r2["topologyVersion"], r["topologyVersion"])
        t0 = time.time()
        c.msg({"hello": 1, "$db": "admin", "topologyVersion": {"processId": ObjectId(), "counter": Int64(0)},
               "maxAwaitTimeMS": 3000})
        self.assertLess(time.time() - t0, 1.0)

    def test_unknown_command(self):
        with self.assertRaises(OperationFailure) as cm:
            self.db.command("noSuchCommandX")
        self.assertEqual(cm.exception.code, 59)
        self.assertEqual(cm.exception.details["codeName"], "CommandNotFound")
        self.assertEqual(cm.exception.details["ok"], 0.0)
        self.assertIsInstance(cm.exception.details["operationTime"], Timestamp)

    def test_misc_admin_commands(self):
        a = self.client.admin
        bi = a.command("buildInfo")
        self.assertEqual(bi["version"], "7.0.0")
        self.assertEqual(bi["versionArray"][:3], [7, 0, 0])
        self.assertEqual(a.command("ping")["ok"], 1.0)
        self.assertIn("connections", a.command("serverStatus"))
        self.assertTrue(a.command("whatsmyuri")["you"].startswith("127.0.0.1:"))
        self.assertEqual(a.command("getCmdLineOpts")["parsed"]["replication"]["replSet"], "rs0")
        self.assertIn("system", a.command("hostInfo"))
        self.assertEqual(a.command("getParameter", 1, featureCompatibilityVersion=1)["featureCompatibilityVersion"]["version"], "7.0")
        self.assertEqual(self.db.command("getLastError")["ok"], 1.0)
        self.db.c.insert_one({})
        self.assertIn(self.db.name, self.client.list_database_names())
        self.assertEqual(self.db.command("collStats", "c")["count"], 1)
        self.assertEqual(self.db.command("count", "c")["n"], 1)
        self.assertEqual(a.command("endSessions", [])["ok"], 1.0)


# ====================================================================== CRUD

class TestCRUD(Base):
    def test_insert_find_sort_projection(self):
        c = self.db.c
        c.insert_many([{"_id": i, "a": i % 3, "b": {"c": i, "d": "x%d" % i}, "tags": ["t%d" % (i % 2), "all"]}
                       for i in range(10)])
        self.assertEqual([d["_id"] for d in c.find({"a": 1}).sort("_id", -1)], [7, 4, 1])
        self.assertEqual([d["_id"] for d in c.find().sort([("a", 1), ("_id", -1)]).skip(2).limit(3)], [3, 0, 7])
        d = c.find_one({"_id": 5}, {"b.c": 1})
        self.assertEqual(d, {"_id": 5, "b": {"c": 5}})
        d = c.find_one({"_id": 5}, {"b": 0, "tags": 0, "_id": 0})
        self.assertEqual(d, {"a": 2})
        self.assertEqual(c.find_one({"_id": 5}, {"_id": 0, "a": 1}), {"a": 2})
        self.assertEqual(c.count_documents({"tags": "t1"}), 5)
        self.assertEqual(c.count_documents({"b.c": {"$gte": 8}}), 2)
        # batchSize / getMore
        cur = c.find({}, batch_size=3)
        self.assertEqual(len(list(cur)), 10)
        raw = self.db.command("find", "c", batchSize=4)
        self.assertEqual(len(raw["cursor"]["firstBatch"]), 4)
        self.assertIsInstance(raw["cursor"]["id"], Int64)
        self.assertNotEqual(raw["cursor"]["id"], 0)
        gm = self.db.command("getMore", raw["cursor"]["id"], collection="c", batchSize=4)
        self.assertEqual([d["_id"] for d in gm["cursor"]["nextBatch"]], [4, 5, 6, 7])
        gm = self.db.command("getMore", raw["cursor"]["id"], collection="c")
        self.assertEqual(len(gm["cursor"]["nextBatch"]), 2)
        self.assertEqual(gm["cursor"]["id"], 0)
        single = self.db.command("find", "c", batchSize=2, singleBatch=True)
        self.assertEqual(single["cursor"]["id"], 0)
        self.assertEqual(len(single["cursor"]["firstBatch"]), 2)
        with self.assertRaises(OperationFailure) as cm:
            self.db.command("getMore", raw["cursor"]["id"], collection="c")
        self.assertEqual(cm.exception.code, 43)
        k = self.db.command("find", "c", batchSize=1)["cursor"]["id"]
        r = self.db.command("killCursors", "c", cursors=[k])
        self.assertEqual(r["cursorsKilled"], [k])
        with self.assertRaises(OperationFailure) as cm:
            self.db.command("getMore", k, collection="c")
        self.assertEqual(cm.exception.code, 43)

    def test_query_operators(self):
        c = self.db.c
        docs = [
            {"_id": 1, "n": 5, "s": "apple", "arr": [1, 2, 3], "sub": {"x": 1}},
            {"_id": 2, "n": 10, "s": "banana", "arr": [4, 5], "sub": {"x": 2}, "opt": None},
            {"_id": 3, "n": 15.5, "s": "Cherry", "arr": [], "items": [{"k": "a", "v": 1}, {"k": "b", "v": 2}]},
            {"_id": 4, "n": Int64(20), "s": "date", "arr": [[1, 2], 3], "items": [{"k": "a", "v": 5}]},
            {"_id": 5, "s": 7},
        ]
        c.insert_many(docs)

        def ids(q):
            return sorted(d["_id"] for d in c.find(q))
        self.assertEqual(ids({"n": {"$eq": 10}}), [2])
        self.assertEqual(ids({"n": {"$ne": 10}}), [1, 3, 4, 5])
        self.assertEqual(ids({"n": {"$gt": 10}}), [3, 4])
        self.assertEqual(ids({"n": {"$gte": 10, "$lt": 20}}), [2, 3])
        self.assertEqual(ids({"n": {"$lte": 5}}), [1])
        self.assertEqual(ids({"n": {"$in": [5, 20]}}), [1, 4])
        self.assertEqual(ids({"n": {"$nin": [5, 20]}}), [2, 3, 5])
        self.assertEqual(ids({"opt": {"$exists": True}}), [2])
        self.assertEqual(ids({"opt": None}), [1, 2, 3, 4, 5])
        self.assertEqual(ids({"n": {"$exists": False}}), [5])
        self.assertEqual(ids({"$and": [{"n": {"$gt": 1}}, {"n": {"$lt": 11}}]}), [1, 2])
        self.assertEqual(ids({"$or": [{"n": 5}, {"s": "date"}]}), [1, 4])
        self.assertEqual(ids({"$nor": [{"n": 5}, {"s": "date"}]}), [2, 3, 5])
        self.assertEqual(ids({"n": {"$not": {"$gt": 10}}}), [1, 2, 5])
        self.assertEqual(ids({"items": {"$elemMatch": {"k": "a", "v": {"$gt": 3}}}}), [4])
        self.assertEqual(ids({"arr": {"$elemMatch": {"$gt": 3, "$lt": 5}}}), [2])
        self.assertEqual(ids({"s": {"$type": "string"}}), [1, 2, 3, 4])
        self.assertEqual(ids({"n": {"$type": "long"}}), [4])
        self.assertEqual(ids({"n": {"$type": "number"}}), [1, 2, 3, 4])
        self.assertEqual(ids({"s": {"$regex": "^c", "$options": "i"}}), [3])
        self.assertEqual(ids({"s": Regex("an+a")}), [2])
        self.assertEqual(ids({"s": {"$not": Regex("^[ab]")}}), [3, 4, 5])
        self.assertEqual(ids({"arr": {"$size": 2}}), [2, 4])
        self.assertEqual(ids({"arr": {"$all": [1, 2]}}), [1])
        # array element semantics and dotted paths
        self.assertEqual(ids({"arr": 3}), [1, 4])
        self.assertEqual(ids({"arr": [1, 2]}), [4])
        self.assertEqual(ids({"arr.0": 4}), [2])
        self.assertEqual(ids({"arr": {"$gt": 4}}), [2])
        self.assertEqual(ids({"items.k": "b"}), [3])
        self.assertEqual(ids({"items.v": {"$gte": 2}}), [3, 4])
        self.assertEqual(ids({"items.1.v": 2}), [3])
        self.assertEqual(ids({"sub.x": {"$in": [2, 3]}}), [2])
        self.assertEqual(ids({"sub": {"x": 1}}), [1])
        with self.assertRaises(OperationFailure) as cm:
            list(c.find({"n": {"$bogus": 1}}))
        self.assertEqual(cm.exception.code, 2)

    def test_bson_comparison_order(self):
        c = self.db.c
        vals = [MaxKey(), Regex("a"), Timestamp(1, 1), datetime.datetime(2020, 1, 1), True, ObjectId(),
                Binary(b"x", 0), [5], {"a": 1}, "str", 3, None, MinKey()]
        c.insert_many([{"_id": i, "v": v} for i, v in enumerate(vals)])
        got = [d["_id"] for d in c.find({"_id": {"$ne": 7}}).sort("v", 1)]
        # MinKey < null < numbers < string < object < binData < ObjectId < bool < date < timestamp < regex < MaxKey
        # (the array [5] sorts by its element, like MongoDB; so it is left out here)
        self.assertEqual(got, [12, 11, 10, 9, 8, 6, 5, 4, 3, 2, 1, 0])
        c.insert_many([{"_id": 100, "v": Decimal128("2.5")}, {"_id": 101, "v": Int64(2)}, {"_id": 102, "v": 2.75},
                       {"_id": 103, "v": 1}])
        self.assertEqual([d["_id"] for d in c.find({"v": {"$gte": 1, "$lte": 3}}).sort("v", 1)],
                         [103, 101, 100, 102, 10])
        self.assertEqual(sorted(d["_id"] for d in c.find({"v": {"$gt": Decimal128("2")}})), [7, 10, 100, 102])  # [5] matches by element
        self.assertEqual(sorted(d["_id"] for d in c.find({"v": 2.0})), [101])
        self.assertEqual(sorted(d["_id"] for d in c.find({"v": {"$gt": "a"}})), [9])  # type bracketing

    def test_update_operators(self):
        c = self.db.c
        c.insert_one({"_id": 1, "a": 1, "b": {"c": 2}, "arr": [1, 2, 3], "l": Int64(5), "d": Decimal128("1.5"),
                      "old": "x", "set": [1]})
        c.update_one({"_id": 1}, {"$set": {"b.d": 3, "arr.1": 20, "new.deep": True}, "$unset": {"a": ""},
                                  "$inc": {"l": 2, "cnt": 1}, "$mul": {"d": 2}, "$rename": {"old": "renamed"},
                                  "$currentDate": {"ts": True}})
        d = c.find_one({"_id": 1})
        self.assertNotIn("a", d)
        self.assertEqual(d["b"], {"c": 2, "d": 3})
        self.assertEqual(d["arr"], [1, 20, 3])
        self.assertEqual(d["new"], {"deep": True})
        self.assertEqual(d["l"], 7)
        self.assertIsInstance(d["l"], Int64)
        self.assertEqual(d["cnt"], 1)
        self.assertEqual(d["d"], Decimal128("3.0"))
        self.assertEqual(d["renamed"], "x")
        self.assertNotIn("old", d)
        self.assertIsInstance(d["ts"], datetime.datetime)
        c.update_one({"_id": 1}, {"$min": {"l": 3}, "$max": {"cnt": 10}})
        d = c.find_one({"_id": 1})
        self.assertEqual((d["l"], d["cnt"]), (3, 10))
        c.update_one({"_id": 1}, {"$push": {"arr": {"$each": [7, 0, 9], "$sort": 1, "$slice": -4}}})
        self.assertEqual(c.find_one({"_id": 1})["arr"], [3, 7, 9, 20])
        c.update_one({"_id": 1}, {"$push": {"arr": {"$each": [100], "$position": 1}}})
        self.assertEqual(c.find_one({"_id": 1})["arr"], [3, 100, 7, 9, 20])
        c.update_one({"_id": 1}, {"$pull": {"arr": {"$gte": 20}}})
        self.assertEqual(c.find_one({"_id": 1})["arr"], [3, 7, 9])
        c.update_one({"_id": 1}, {"$addToSet": {"set": {"$each": [1, 2, 2, 3]}}})
        self.assertEqual(c.find_one({"_id": 1})["set"], [1, 2, 3])
        c.update_one({"_id": 1}, {"$pop": {"set": 1}})
        c.update_one({"_id": 1}, {"$pop": {"arr": -1}})
        d = c.find_one({"_id": 1})
        self.assertEqual((d["set"], d["arr"]), ([1, 2], [7, 9]))
        r = c.update_one({"_id": 1}, {"$set": {"b.c": 2}})
        self.assertEqual((r.matched_count, r.modified_count), (1, 0))
        with self.assertRaises(OperationFailure) as cm:
            c.update_one({"_id": 1}, {"$set": {"_id": 2}})
        self.assertEqual(cm.exception.code, 66)
        with self.assertRaises(OperationFailure):
            c.update_one({"_id": 1}, {"$inc": {"renamed": 1}})
        # replacement keeps _id
        c.replace_one({"_id": 1}, {"z": 1})
        self.assertEqual(c.find_one({"_id": 1}), {"_id": 1, "z": 1})
        # multi
        c.insert_many([{"_id": i, "g": 1} for i in range(2, 6)])
        r = c.update_many({"g": 1}, {"$set": {"g": 2}})
        self.assertEqual((r.matched_count, r.modified_count), (4, 4))
        raw = self.db.command("update", "c", updates=[{"q": {"g": 2}, "u": {"$inc": {"h": 1}}, "multi": True}])
        self.assertIs(type(raw["n"]), int)
        self.assertIs(type(raw["nModified"]), int)
        # upsert with $setOnInsert
        r = c.update_one({"_id": 50, "k": "v"}, {"$set": {"a": 1}, "$setOnInsert": {"created": True}}, upsert=True)
        self.assertEqual(r.upserted_id, 50)
        self.assertEqual(c.find_one({"_id": 50}), {"_id": 50, "k": "v", "a": 1, "created": True})
        raw = self.db.command("update", "c", updates=[{"q": {"k": "new"}, "u": {"$set": {"a": 2}}, "upsert": True}])
        self.assertEqual(raw["n"], 1)
        self.assertEqual(raw["upserted"][0]["index"], 0)
        self.assertIsInstance(raw["upserted"][0]["_id"], ObjectId)
        # pipeline-style update
        c.update_one({"_id": 50}, [{"$set": {"sum": {"$add": ["$a", 10]}}}, {"$unset": "created"}])
        self.assertEqual(c.find_one({"_id": 50}), {"_id": 50, "k": "v", "a": 1, "sum": 11})

    def test_delete_find_and_modify_distinct_count(self):
        c = self.db.c
        c.insert_many([{"_id": i, "g": i % 2, "t": [i, "x"]} for i in range(6)])
        self.assertEqual(c.delete_one({"g": 1}).deleted_count, 1)
        self.assertEqual(c.delete_many({"g": 1}).deleted_count, 2)
        self.assertEqual(c.distinct("t")[:3], [0, 2, 4])
        self.assertEqual(c.distinct("t")[3], "x")
        d = c.find_one_and_update({"g": 0}, {"$set": {"m": 1}}, sort=[("_id", -1)],
                                  return_document=pymongo.ReturnDocument.AFTER)
        self.assertEqual((d["_id"], d["m"]), (4, 1))
        d = c.find_one_and_delete({"_id": 0})
        self.assertEqual(d["_id"], 0)
        d = c.find_one_and_update({"_id": 99}, {"$set": {"u": 1}}, upsert=True,
                                  return_document=pymongo.ReturnDocument.AFTER)
        self.assertEqual(d, {"_id": 99, "u": 1})
        d = c.find_one_and_replace({"_id": 99}, {"r": 2})
        self.assertEqual(d, {"_id": 99, "u": 1})
        self.assertEqual(c.estimated_document_count(), 3)
        self.assertEqual(self.db.command("count", "c", query={"g": 0})["n"], 2)

    def test_aggregate(self):
        c = self.db.c
        c.insert_many([{"_id": i, "cat": "ab"[i % 2], "v": i, "tags": ["x", "y"][: i % 3]} for i in range(8)])
        r = list(c.aggregate([{"$match": {"v": {"$gte": 1}}},
                              {"$group": {"_id": "$cat", "sum": {"$sum": "$v"}, "avg": {"$avg": "$v"},
                                          "min": {"$min": "$v"}, "max": {"$max": "$v"}, "first": {"$first": "$v"},
                                          "last": {"$last": "$v"}, "all": {"$push": "$v"}, "n": {"$sum": 1}}},
                              {"$sort": {"_id": 1}}]))
        self.assertEqual(r, [{"_id": "a", "sum": 12, "avg": 4.0, "min": 2, "max": 6, "first": 2, "last": 6,
                              "all": [2, 4, 6], "n": 3},
                             {"_id": "b", "sum": 16, "avg": 4.0, "min": 1, "max": 7, "first": 1, "last": 7,
                              "all": [1, 3, 5, 7], "n": 4}])
        r = list(c.aggregate([{"$sort": {"v": -1}}, {"$skip": 1}, {"$limit": 2}, {"$project": {"v": 1, "_id": 0}}]))
        self.assertEqual(r, [{"v": 6}, {"v": 5}])
        self.assertEqual(list(c.aggregate([{"$match": {"cat": "a"}}, {"$count": "n"}])), [{"n": 4}])
        r = list(c.aggregate([{"$match": {"_id": {"$in": [1, 2]}}}, {"$unwind": "$tags"}, {"$project": {"tags": 1}}]))
        self.assertEqual(r, [{"_id": 1, "tags": "x"}, {"_id": 2, "tags": "x"}, {"_id": 2, "tags": "y"}])
        r = list(c.aggregate([{"$match": {"_id": 0}}, {"$unwind": {"path": "$tags", "preserveNullAndEmptyArrays": True}}]))
        self.assertEqual(len(r), 1)
        r = list(c.aggregate([{"$group": {"_id": None, "total": {"$sum": "$v"}}}]))
        self.assertEqual(r, [{"_id": None, "total": 28}])

    def test_unique_indexes_and_dup_keys(self):
        c = self.db.c
        c.insert_one({"_id": 1})
        with self.assertRaises(DuplicateKeyError) as cm:
            c.insert_one({"_id": 1})
        self.assertEqual(cm.exception.code, 11000)
        # _id equality across numeric types
        for dup in (1.0, Int64(1), Decimal128("1")):
            with self.assertRaises(DuplicateKeyError):
                c.insert_one({"_id": dup})
        self.assertEqual(c.find_one({"_id": Int64(1)})["_id"], 1)
        self.assertEqual(c.count_documents({"_id": 1.0}), 1)
        c.create_index([("email", 1)], unique=True, name="email_u")
        c.create_index([("a", 1), ("b", -1)], unique=True)
        names = [ix["name"] for ix in c.list_indexes()]
        self.assertEqual(names, ["_id_", "email_u", "a_1_b_-1"])
        c.insert_one({"_id": 2, "email": "x@y", "a": 1, "b": 1})
        with self.assertRaises(DuplicateKeyError) as cm:
            c.insert_one({"_id": 3, "email": "x@y"})
        self.assertIn("email_u", str(cm.exception))
        c.insert_one({"_id": 4, "email": "z", "a": 1, "b": 2})
        with self.assertRaises(DuplicateKeyError):
            c.insert_one({"_id": 5, "email": "w", "a": 1, "b": 2})
        with self.assertRaises(DuplicateKeyError):
            c.update_one({"_id": 4}, {"$set": {"email": "x@y"}})
        # ordered stops at the first error, unordered continues
        with self.assertRaises(BulkWriteError) as cm:
            c.insert_many([{"_id": 10, "email": "e10", "a": 10}, {"_id": 1},
                           {"_id": 11, "email": "e11", "a": 11}], ordered=True)
        det = cm.exception.details
        self.assertEqual(det["nInserted"], 1)
        self.assertEqual(det["writeErrors"][0]["index"], 1)
        self.assertEqual(det["writeErrors"][0]["code"], 11000)
        with self.assertRaises(BulkWriteError) as cm:
            c.insert_many([{"_id": 20, "email": "e20", "a": 20}, {"_id": 1},
                           {"_id": 21, "email": "e21", "a": 21}, {"_id": 2}], ordered=False)
        det = cm.exception.details
        self.assertEqual(det["nInserted"], 2)
        self.assertEqual([e["index"] for e in det["writeErrors"]], [1, 3])
        raw = self.db.command("insert", "c", documents=[{"_id": 1}], ordered=True)
        self.assertIs(type(raw["writeErrors"][0]["code"]), int)
        self.assertEqual(raw["n"], 0)
        # creating a unique index over existing duplicates fails
        with self.assertRaises(DuplicateKeyError):  # unique index: a missing field counts as null
            c.insert_one({"_id": 29, "a": 29})
        c.insert_many([{"_id": 30, "q": 1, "email": "e30", "a": 30}, {"_id": 31, "q": 1, "email": "e31", "a": 31}])
        with self.assertRaises(OperationFailure) as cm:
            c.create_index("q", unique=True)
        self.assertEqual(cm.exception.code, 11000)
        c.drop_index("email_u")
        c.insert_one({"_id": 40, "email": "x@y", "a": 40})
        self.assertEqual([ix["name"] for ix in c.list_indexes()], ["_id_", "a_1_b_-1"])

    def test_byte_exact_storage(self):
        raw_opts = CodecOptions(document_class=RawBSONDocument)
        u = uuid.uuid4()
        doc = bson.SON([("_id", Binary(u.bytes, 4)), ("z", 1), ("a", Int64(3)), ("d", Decimal128("1.10")),
                        ("legacy", Binary(u.bytes, 3)), ("f", 2.0), ("nested", bson.SON([("y", 1), ("b", 2)]))])
        enc = bson.encode(doc)
        # dates outside Python's datetime range (year 1 .. 9999) built by hand
        far = struct.pack("<q", 400000000000000)      # year ~14645
        neg = struct.pack("<q", -70000000000000)       # year ~ -248
        extra = b"\x09far\x00" + far + b"\x09neg\x00" + neg
        enc = struct.pack("<i", len(enc) + len(extra)) + enc[4:-1] + extra + b"\x00"
        raw_doc = RawBSONDocument(enc)
        c = self.db.get_collection("c", codec_options=raw_opts)
        c.insert_one(raw_doc)
        back = c.find_one({"_id": Binary(u.bytes, 4)})
        self.assertEqual(back.raw, enc)
        # range query on a far date, sorting on it
        c.insert_one(RawBSONDocument(bson.encode({"_id": 2, "far": datetime.datetime(2000, 1, 1)})))
        got = [bson.decode(d.raw, CodecOptions(uuid_representation=4))["_id"] for d in
               c.find({"far": {"$gt": datetime.datetime(9000, 1, 1)}}, {"_id": 1})]
        self.assertEqual(got, [u])
        # the UUID is still subtype 4 after an update touching another field
        c.update_one({"_id": Binary(u.bytes, 4)}, {"$set": {"k": 1}})
        back = c.find_one({"_id": Binary(u.bytes, 4)})
        self.assertIn(b"\x05_id\x00\x10\x00\x00\x00\x04" + u.bytes, back.raw)
        self.assertIn(b"\x09far\x00" + far, back.raw)
        self.assertIn(b"\x12a\x00" + struct.pack("<q", 3), back.raw)
        self.assertIn(b"\x05legacy\x00\x10\x00\x00\x00\x03" + u.bytes, back.raw)
        std = self.db.get_collection("c", codec_options=CodecOptions(uuid_representation=4))
        self.assertEqual(std.find_one({"_id": u}, {"_id": 1})["_id"], u)

    def test_collections_and_indexes_admin(self):
        self.db.create_collection("pp", changeStreamPreAndPostImages={"enabled": True})
        self.db.create_collection("plain")
        infos = list(self.db.list_collections(filter={"name": "pp"}))
        self.assertEqual(len(infos), 1)
        self.assertEqual(infos[0]["type"], "collection")
        self.assertEqual(infos[0]["options"], {"changeStreamPreAndPostImages": {"enabled": True}})
        self.assertIs(infos[0]["info"]["readOnly"], False)
        self.assertIsInstance(infos[0]["info"]["uuid"], uuid.UUID)  # subtype 4 -> UUID in pymongo
        self.assertEqual(sorted(self.db.list_collection_names()), ["plain", "pp"])
        self.db.command("collMod", "plain", changeStreamPreAndPostImages={"enabled": True})
        info = next(self.db.list_collections(filter={"name": "plain"}))
        self.assertEqual(info["options"]["changeStreamPreAndPostImages"], {"enabled": True})
        with self.assertRaises(OperationFailure) as cm:
            self.db.command("create", "plain")
        self.assertEqual(cm.exception.code, 48)
        # MongoDB 7.0: dropping a collection that does not exist succeeds
        self.assertEqual(self.db.command("drop", "nosuch"), {"ok": 1.0, "$clusterTime": unittest.mock.ANY,
                                                             "operationTime": unittest.mock.ANY})
        self.db.plain.drop()
        self.assertEqual(self.db.list_collection_names(), ["pp"])
        self.client.drop_database(self.db.name)
        self.assertNotIn(self.db.name, self.client.list_database_names())


    def test_views(self):
        self.db.src.insert_many([{"_id": i, "v": i} for i in range(5)])
        self.db.command("create", "big", viewOn="src", pipeline=[{"$match": {"v": {"$gte": 2}}}])
        self.db.command("create", "bigger", viewOn="big", pipeline=[{"$match": {"v": {"$gte": 3}}}])
        self.assertEqual([d["_id"] for d in self.db.big.find({}, sort=[("_id", -1)])], [4, 3, 2])
        self.assertEqual(self.db.big.count_documents({"v": {"$lt": 4}}), 2)
        self.assertEqual(self.db.command("count", "bigger")["n"], 2)  # estimatedDocumentCount
        self.assertEqual(self.db.big.find_one({"_id": 3}), {"_id": 3, "v": 3})  # no _id index shortcut
        self.db.src.insert_one({"_id": 9, "v": 9})
        self.assertEqual(self.db.bigger.distinct("v"), [3, 4, 9])  # computed at read time
        info = {c["name"]: c for c in self.db.list_collections()}
        self.assertEqual(info["big"]["type"], "view")
        self.assertEqual(info["big"]["options"], {"viewOn": "src", "pipeline": [{"$match": {"v": {"$gte": 2}}}]})
        for op in (lambda: self.db.big.insert_one({"_id": 20}), lambda: self.db.big.delete_many({}),
                   lambda: self.db.big.update_one({}, {"$set": {"x": 1}}), lambda: self.db.big.create_index("v"),
                   lambda: self.db.big.watch()):
            with self.assertRaises(OperationFailure) as cm:
                op()
            self.assertEqual(cm.exception.code, 166)
        with self.assertRaises(OperationFailure) as cm:
            self.db.command("create", "bad", pipeline=[])
        self.assertEqual(cm.exception.code, 72)
        self.db.big.drop()
        self.assertNotIn("big", self.db.list_collection_names())
        self.assertEqual(self.db.src.count_documents({}), 6)

    def test_write_concern_errors(self):
        from pymongo.write_concern import WriteConcern
        c = self.db.get_collection("c", write_concern=WriteConcern(w=3))
        with self.assertRaises(pymongo.errors.WriteConcernError) as cm:
            c.insert_one({"_id": 1})
        self.assertEqual(cm.exception.code, 100)  # UnsatisfiableWriteConcern: one data-bearing node
        self.assertEqual(self.db.c.count_documents({}), 1)  # the write itself happened
        c = self.db.get_collection("c", write_concern=WriteConcern(w="dc2"))
        with self.assertRaises(pymongo.errors.WriteConcernError) as cm:
            c.insert_one({"_id": 2})
        self.assertEqual(cm.exception.code, 79)  # UnknownReplWriteConcern
        for w in (0, 1, "majority"):
            self.db.get_collection("c", write_concern=WriteConcern(w=w)).insert_one({"w": str(w)})
        self.assertEqual(self.db.c.count_documents({"w": {"$exists": True}}), 3)


# ====================================================================== sessions

class TestSessions(Base):
    def test_retryable_write_dedupe(self):
        s = self.client.start_session()
        self.addCleanup(s.end_session)
        tn = s._server_session.transaction_id + 5
        s._server_session._transaction_id = tn + 1  # keep pymongo's own counter ahead of ours
        r1 = self.db.command("insert", "c", documents=[{"v": 1}], txnNumber=Int64(tn), session=s)
        r2 = self.db.command("insert", "c", documents=[{"v": 1}], txnNumber=Int64(tn), session=s)
        self.assertEqual((r1["n"], r2["n"]), (1, 1))
        self.assertEqual(self.db.c.count_documents({}), 1)
        # retry on a brand new connection with the same lsid/txnNumber
        rc = self.raw()
        r3 = rc.msg({"insert": "c", "documents": [{"v": 1}], "lsid": s.session_id, "txnNumber": Int64(tn),
                     "$db": self.db.name})
        self.assertEqual(r3["n"], 1)
        self.assertEqual(self.db.c.count_documents({}), 1)
        r4 = rc.msg({"insert": "c", "documents": [{"v": 2}], "lsid": s.session_id, "txnNumber": Int64(tn + 1),
                     "$db": self.db.name})
        self.assertEqual(r4["n"], 1)
        self.assertEqual(self.db.c.count_documents({}), 2)
        r5 = rc.msg({"insert": "c", "documents": [{"v": 3}], "lsid": s.session_id, "txnNumber": Int64(tn - 1),
                     "$db": self.db.name})
        self.assertEqual(r5["code"], 225)

    def test_transaction_visibility_and_commit(self):
        self.db.c.insert_one({"_id": 0})
        with self.db.watch(max_await_time_ms=50) as stream:
            with self.client.start_session() as s:
                s.start_transaction()
                self.db.c.insert_one({"_id": 1}, session=s)
                self.db.c.update_one({"_id": 0}, {"$set": {"x": 1}}, session=s)
                self.assertEqual(self.db.c.count_documents({}, session=s), 2)
                self.assertEqual(self.db.c.find_one({"_id": 0}, session=s), {"_id": 0, "x": 1})
                self.assertEqual(self.db.c.count_documents({}), 1)
                self.assertEqual(self.db.c.find_one({"_id": 0}), {"_id": 0})
                self.assertIsNone(stream.try_next())
                s.commit_transaction()
                txn_lsid = s.session_id
            self.assertEqual(self.db.c.count_documents({}), 2)
            evs = [stream.next(), stream.next()]
        self.assertEqual([e["operationType"] for e in evs], ["insert", "update"])
        self.assertEqual(evs[0]["clusterTime"], evs[1]["clusterTime"])
        self.assertEqual(evs[0]["lsid"]["id"], uuid.UUID(bytes=bytes(txn_lsid["id"])))
        self.assertEqual(evs[0]["txnNumber"], evs[1]["txnNumber"])
        self.assertLess(evs[0]["_id"]["_data"], evs[1]["_id"]["_data"])

    def test_transaction_abort_and_errors(self):
        with self.client.start_session() as s:
            s.start_transaction()
            self.db.c.insert_one({"_id": 1}, session=s)
            s.abort_transaction()
        self.assertEqual(self.db.c.count_documents({}), 0)
        rc = self.raw()
        lsid = {"id": Binary(uuid.uuid4().bytes, 4)}
        r = rc.msg({"insert": "c", "documents": [{"_id": 2}], "lsid": lsid, "txnNumber": Int64(1),
                    "autocommit": False, "$db": self.db.name})
        self.assertEqual(r["code"], 251)
        self.assertEqual(r["codeName"], "NoSuchTransaction")
        self.assertIn("TransientTransactionError", r["errorLabels"])
        r = rc.msg({"insert": "c", "documents": [{"_id": 2}], "lsid": lsid, "txnNumber": Int64(2),
                    "autocommit": False, "startTransaction": True, "$db": self.db.name})
        self.assertEqual(r["ok"], 1.0)
        r = rc.msg({"abortTransaction": 1, "lsid": lsid, "txnNumber": Int64(2), "autocommit": False, "$db": "admin"})
        self.assertEqual(r["ok"], 1.0)
        r = rc.msg({"commitTransaction": 1, "lsid": lsid, "txnNumber": Int64(2), "autocommit": False, "$db": "admin"})
        self.assertEqual(r["code"], 251)
        # write conflict between two transactions
        self.db.c.insert_one({"_id": 5, "v": 0})
        s1, s2 = self.client.start_session(), self.client.start_session()
        self.addCleanup(s1.end_session)
        self.addCleanup(s2.end_session)
        s1.start_transaction()
        s2.start_transaction()
        self.db.c.update_one({"_id": 5}, {"$inc": {"v": 1}}, session=s1)
        with self.assertRaises(OperationFailure) as cm:
            self.db.c.update_one({"_id": 5}, {"$inc": {"v": 10}}, session=s2)
        self.assertEqual(cm.exception.code, 112)
        self.assertTrue(cm.exception.has_error_label("TransientTransactionError"))
        s1.commit_transaction()
        self.assertEqual(self.db.c.find_one({"_id": 5})["v"], 1)
        # with_transaction retries transient errors and succeeds
        s3 = self.client.start_session()
        self.addCleanup(s3.end_session)
        s3.with_transaction(lambda ss: self.db.c.update_one({"_id": 5}, {"$inc": {"v": 1}}, session=ss))
        self.assertEqual(self.db.c.find_one({"_id": 5})["v"], 2)


    def test_collection_created_in_transaction_is_private_until_commit(self):
        s = self.client.start_session()
        self.addCleanup(s.end_session)
        s.start_transaction()
        self.db.fresh.insert_one({"_id": 1}, session=s)
        self.db.command("create", "made", session=s)
        self.db.fresh.create_index("k", session=s)
        self.assertNotIn("fresh", self.db.list_collection_names())
        self.assertNotIn("made", self.db.list_collection_names())
        self.assertEqual(self.db.fresh.find_one({"_id": 1}, session=s), {"_id": 1})  # the transaction sees it
        s.commit_transaction()
        self.assertEqual(sorted(self.db.list_collection_names()), ["fresh", "made"])
        self.assertIn("k_1", [ix["name"] for ix in self.db.fresh.list_indexes()])
        # aborted: nothing appears
        s.start_transaction()
        self.db.gone.insert_one({"_id": 1}, session=s)
        s.abort_transaction()
        self.assertNotIn("gone", self.db.list_collection_names())
        # indexes on a collection that existed before the transaction are refused, as is count
        s.start_transaction()
        with self.assertRaises(OperationFailure) as cm:
            self.db.fresh.create_index("j", session=s)
        self.assertEqual(cm.exception.code, 263)
        s.abort_transaction()
        s.start_transaction()
        with self.assertRaises(OperationFailure) as cm:
            self.db.command("count", "fresh", session=s)
        self.assertEqual(cm.exception.code, 263)
        s.abort_transaction()

    def test_kill_all_sessions_aborts_transactions(self):
        s = self.client.start_session()
        self.addCleanup(s.end_session)
        s.start_transaction()
        self.db.c.insert_one({"_id": 1}, session=s)
        self.client.admin.command("killAllSessions", [])
        with self.assertRaises(OperationFailure) as cm:
            s.commit_transaction()
        self.assertEqual(cm.exception.code, 251)
        self.assertIsNone(self.db.c.find_one())

    def test_kill_sessions_aborts_their_transactions(self):
        # killSessions ends the open transactions of the sessions named, and only those: the
        # documents they held can be written at once (what a restarted connector relies on)
        self.db.k.insert_one({"_id": 0})
        s, other = self.client.start_session(), self.client.start_session()
        self.addCleanup(s.end_session)
        self.addCleanup(other.end_session)
        s.start_transaction()
        other.start_transaction()
        self.db.k.insert_one({"_id": 1}, session=s)
        self.db.k.insert_one({"_id": 2}, session=other)
        self.client.admin.command("killSessions", [s.session_id])
        with self.assertRaises(OperationFailure) as cm:
            s.commit_transaction()
        self.assertEqual(cm.exception.code, 251)
        self.db.k.insert_one({"_id": 1, "v": "after"})
        other.commit_transaction()
        self.assertEqual(sorted(d["_id"] for d in self.db.k.find()), [0, 1, 2])
        self.assertEqual(self.db.k.find_one({"_id": 1})["v"], "after")

    def test_abandoned_transaction_expires(self):
        # a client that dies inside a transaction holds its documents until
        # transactionLifetimeLimitSeconds passes, as with mongod
        a = self.client.admin
        self.assertEqual(a.command("getParameter", 1, transactionLifetimeLimitSeconds=1)["transactionLifetimeLimitSeconds"], 60)
        a.command("setParameter", 1, transactionLifetimeLimitSeconds=1)
        self.addCleanup(a.command, "setParameter", 1, transactionLifetimeLimitSeconds=60)
        self.db.life.insert_one({"_id": 1, "v": 0})
        dead = self.client.start_session()
        dead.start_transaction()
        self.db.life.update_one({"_id": 1}, {"$set": {"v": "dead"}}, session=dead)
        s = self.client.start_session()
        self.addCleanup(s.end_session)
        s.start_transaction()
        with self.assertRaises(OperationFailure) as cm:
            self.db.life.update_one({"_id": 1}, {"$set": {"v": 1}}, session=s)
        self.assertEqual(cm.exception.code, 112)
        s.abort_transaction()
        time.sleep(1.2)
        s.start_transaction()
        self.db.life.update_one({"_id": 1}, {"$set": {"v": 1}}, session=s)
        s.commit_transaction()
        self.assertEqual(self.db.life.find_one({"_id": 1})["v"], 1)
        with self.assertRaises(OperationFailure) as cm:
            dead.commit_transaction()
        self.assertEqual(cm.exception.code, 251)


# ====================================================================== change streams

def drain(stream, n, timeout=5.0):
    out = []
    deadline = time.time() + timeout
    while len(out) < n and time.time() < deadline:
        e = stream.try_next()
        if e is not None:
            out.append(e)
    return out


class TestChangeStreams(Base):
    def test_collection_stream_all_ops_and_invalidate(self):
        c = self.db.c
        c.insert_one({"_id": 0})
        with c.watch(max_await_time_ms=50) as s:
            c.insert_one({"_id": 1, "a": {"b": 1}, "arr": [1, 2]})
            c.update_one({"_id": 1}, {"$set": {"a.b": 2, "arr.0": 9}, "$unset": {"zz": ""}})
            c.update_one({"_id": 1}, {"$set": {"a.b": 2}})  # no-op: no event
            c.update_one({"_id": 1}, {"$set": {"a.b": 2, "n": 1}, "$addToSet": {"arr": 2}})
            c.update_one({"_id": 1}, {"$push": {"arr": 3}, "$unset": {"a": 1}})
            c.update_one({"_id": 1}, [{"$set": {"arr": [9], "p": 1}}])  # pipeline update: generic diff
            c.replace_one({"_id": 1}, {"r": True})
            c.update_one({"_id": 7}, {"$set": {"u": 1}}, upsert=True)
            c.delete_one({"_id": 1})
            c.drop()
            evs = drain(s, 10)
            self.assertFalse(s.alive)
        ops = [e["operationType"] for e in evs]
        self.assertEqual(ops, ["insert", "update", "update", "update", "update", "replace", "insert", "delete", "drop",
                               "invalidate"])
        ins, up1, up1b, up2, up3, rep, ups, dele, drop, inv = evs
        self.assertEqual(up1b["updateDescription"]["updatedFields"], {"n": 1})  # unchanged a.b / set not reported
        self.assertEqual(ins["fullDocument"], {"_id": 1, "a": {"b": 1}, "arr": [1, 2]})
        self.assertEqual(ins["ns"], {"db": self.db.name, "coll": "c"})
        self.assertEqual(ins["documentKey"], {"_id": 1})
        self.assertIsInstance(ins["clusterTime"], Timestamp)
        self.assertIsInstance(ins["wallTime"], datetime.datetime)
        self.assertNotIn("fullDocument", up1)
        self.assertEqual(up1["updateDescription"], {"updatedFields": {"a.b": 2, "arr.0": 9}, "removedFields": [],
                                                    "truncatedArrays": []})
        self.assertEqual(up2["updateDescription"]["updatedFields"], {"arr.2": 3})
        self.assertEqual(up2["updateDescription"]["removedFields"], ["a"])
        self.assertEqual(up3["updateDescription"], {"updatedFields": {"p": 1}, "removedFields": [],
                                                    "truncatedArrays": [{"field": "arr", "newSize": 1}]})
        self.assertEqual(rep["fullDocument"], {"_id": 1, "r": True})
        self.assertEqual(ups["fullDocument"], {"_id": 7, "u": 1})
        self.assertEqual(dele["documentKey"], {"_id": 1})
        self.assertEqual(drop["ns"], {"db": self.db.name, "coll": "c"})
        self.assertNotIn("ns", inv)
        tokens = [e["_id"]["_data"] for e in evs]
        self.assertEqual(tokens, sorted(tokens))
        self.assertEqual(len(set(tokens)), len(tokens))
        # startAfter the invalidate works, resumeAfter fails with 260
        c.insert_one({"_id": 100})
        with c.watch(start_after=inv["_id"], max_await_time_ms=50) as s2:
            e = drain(s2, 1)[0]
            self.assertEqual((e["operationType"], e["fullDocument"]), ("insert", {"_id": 100}))
        with self.assertRaises(OperationFailure) as cm:
            with c.watch(resume_after=inv["_id"]) as s3:
                s3.try_next()
        self.assertEqual(cm.exception.code, 260)

    def test_rename_db_and_cluster_streams(self):
        db2 = self.client[self.db.name + "_2"]
        self.client.drop_database(db2.name)
        self.db.a.insert_one({"_id": 1})
        cs = self.client.watch(max_await_time_ms=50)
        dbs = self.db.watch(max_await_time_ms=50)
        collstream = self.db.a.watch(max_await_time_ms=50)
        try:
            self.db.b.insert_one({"_id": 2})
            db2.x.insert_one({"_id": 3})
            self.db.a.rename("a2")
            ev = drain(collstream, 2)
            self.assertEqual([e["operationType"] for e in ev], ["rename", "invalidate"])
            self.assertEqual(ev[0]["to"], {"db": self.db.name, "coll": "a2"})
            self.client.drop_database(self.db.name)
            ev = drain(dbs, 5)
            self.assertEqual([e["operationType"] for e in ev], ["insert", "rename", "drop", "drop", "dropDatabase", "invalidate"][:5])
            ev += drain(dbs, 1)
            self.assertEqual(ev[-1]["operationType"], "invalidate")
            self.assertEqual(ev[-2]["ns"], {"db": self.db.name})
            self.assertEqual(sorted(e["ns"]["coll"] for e in ev if e["operationType"] == "drop"), ["a2", "b"])
            ev = drain(cs, 6)
            self.assertEqual([e["operationType"] for e in ev], ["insert", "insert", "rename", "drop", "drop", "dropDatabase"])
            self.assertEqual(ev[1]["ns"], {"db": db2.name, "coll": "x"})
        finally:
            cs.close()
            dbs.close()
            collstream.close()
            self.client.drop_database(db2.name)

    def cs_open(self, coll, **spec):
        r = self.db.command("aggregate", coll, pipeline=[{"$changeStream": spec}], cursor={})
        return r["cursor"]["id"]

    def cs_next(self, coll, cid, n):
        out = []
        for _ in range(20):
            if len(out) >= n:
                break
            r = self.db.command("getMore", cid, collection=coll, maxTimeMS=100)
            out += r["cursor"]["nextBatch"]
        return out

    def test_full_document_modes_and_pre_images(self):
        # (pymongo 3.11's watch() has no fullDocumentBeforeChange, so raw aggregate/getMore are used)
        self.db.create_collection("pp", changeStreamPreAndPostImages={"enabled": True})
        plain, pp = self.db.plain, self.db.pp
        plain.insert_one({"_id": 1, "v": 0})
        pp.insert_one({"_id": 1, "v": 0})
        look = self.cs_open("plain", fullDocument="updateLookup")
        wa = self.cs_open("plain", fullDocument="whenAvailable", fullDocumentBeforeChange="whenAvailable")
        req = self.cs_open("plain", fullDocument="required")
        reqb = self.cs_open("plain", fullDocumentBeforeChange="required")
        ppw = self.cs_open("pp", fullDocument="required", fullDocumentBeforeChange="required")
        for coll in (plain, pp):
            coll.update_one({"_id": 1}, {"$set": {"v": 1}})
            coll.update_one({"_id": 1}, {"$set": {"v": 2}})
            coll.delete_one({"_id": 1})
        e1, e2, e3 = self.cs_next("plain", look, 3)
        self.assertIsNone(e1["fullDocument"])  # looked up after the delete
        self.assertNotIn("fullDocumentBeforeChange", e1)
        e1, e2, e3 = self.cs_next("plain", wa, 3)
        self.assertIsNone(e1["fullDocument"])
        self.assertIsNone(e1["fullDocumentBeforeChange"])
        self.assertIsNone(e3["fullDocumentBeforeChange"])
        for cid in (req, reqb):
            with self.assertRaises(OperationFailure) as cm:
                self.cs_next("plain", cid, 1)
            self.assertEqual(cm.exception.code, 47)
        e1, e2, e3 = self.cs_next("pp", ppw, 3)
        self.assertEqual(e1["fullDocument"], {"_id": 1, "v": 1})
        self.assertEqual(e1["fullDocumentBeforeChange"], {"_id": 1, "v": 0})
        self.assertEqual(e2["fullDocument"], {"_id": 1, "v": 2})
        self.assertEqual(e2["fullDocumentBeforeChange"], {"_id": 1, "v": 1})
        self.assertEqual(e3["operationType"], "delete")
        self.assertEqual(e3["fullDocumentBeforeChange"], {"_id": 1, "v": 2})
        self.assertNotIn("fullDocument", e3)
        # pre-images only exist for changes made while the option was enabled (collMod)
        self.db.command("collMod", "plain", changeStreamPreAndPostImages={"enabled": True})
        plain.insert_one({"_id": 3, "v": 0})
        cid = self.cs_open("plain", fullDocumentBeforeChange="whenAvailable")
        plain.replace_one({"_id": 3}, {"v": 9})
        e = self.cs_next("plain", cid, 1)[0]
        self.assertEqual((e["operationType"], e["fullDocumentBeforeChange"], e["fullDocument"]),
                         ("replace", {"_id": 3, "v": 0}, {"_id": 3, "v": 9}))
        # updateLookup returns the current document at read time (pymongo watch)
        plain.insert_one({"_id": 2, "v": 0})
        with plain.watch(full_document="updateLookup", max_await_time_ms=50) as s:
            plain.update_one({"_id": 2}, {"$set": {"v": 1}})
            plain.update_one({"_id": 2}, {"$set": {"v": 2}})
            e = drain(s, 2)
            self.assertEqual(e[0]["fullDocument"], {"_id": 2, "v": 2})
            self.assertEqual(e[0]["updateDescription"]["updatedFields"], {"v": 1})

    def test_match_project_and_resume(self):
        c = self.db.c
        with c.watch([{"$match": {"operationType": "insert", "fullDocument.keep": True}},
                      {"$project": {"fullDocument.secret": 0}}], max_await_time_ms=50) as s:
            c.insert_many([{"_id": i, "keep": i % 2 == 0, "secret": "s"} for i in range(6)])
            c.update_one({"_id": 0}, {"$set": {"x": 1}})
            evs = drain(s, 3)
            self.assertEqual([e["fullDocument"] for e in evs],
                             [{"_id": 0, "keep": True}, {"_id": 2, "keep": True}, {"_id": 4, "keep": True}])
            self.assertIsNone(s.try_next())
        # resumeAfter the 2nd event delivers the 3rd (in a new client)
        c2 = SRV.client()
        try:
            with c2[self.db.name].c.watch([{"$match": {"fullDocument.keep": True}}], resume_after=evs[1]["_id"],
                                          max_await_time_ms=50) as s:
                e = drain(s, 1)
                self.assertEqual(e[0]["_id"], evs[2]["_id"])
        finally:
            c2.close()
        # tokens keep sorting in event order across batch boundaries (batchSize 0 / limited batches)
        r = self.db.command("aggregate", "c", pipeline=[{"$changeStream": {"resumeAfter": evs[0]["_id"]}}],
                            cursor={"batchSize": 0})
        pbrt0 = r["cursor"]["postBatchResumeToken"]
        gm = self.db.command("getMore", r["cursor"]["id"], collection="c", batchSize=2)
        batch = gm["cursor"]["nextBatch"]
        self.assertEqual(len(batch), 2)
        self.assertLess(pbrt0["_data"], batch[0]["_id"]["_data"])
        self.assertEqual(gm["cursor"]["postBatchResumeToken"], batch[1]["_id"])
        gm2 = self.db.command("getMore", r["cursor"]["id"], collection="c")
        rest = gm2["cursor"]["nextBatch"]
        self.assertGreater(rest[0]["_id"]["_data"], batch[1]["_id"]["_data"])
        self.assertGreaterEqual(gm2["cursor"]["postBatchResumeToken"]["_data"], rest[-1]["_id"]["_data"])
        # startAtOperationTime is inclusive
        with c.watch(start_at_operation_time=evs[1]["clusterTime"], max_await_time_ms=50) as s:
            e = drain(s, 1)
            self.assertEqual(e[0]["documentKey"], {"_id": 2})

    def test_idle_post_batch_resume_token_advances(self):
        c = self.db.c
        with c.watch(max_await_time_ms=50) as s:
            self.assertIsNone(s.try_next())
            t1 = s.resume_token
            self.assertIsNotNone(t1)
            self.db.other.insert_one({})
            self.assertIsNone(s.try_next())
            t2 = s.resume_token
            self.assertGreater(t2["_data"], t1["_data"])
            time.sleep(1.05)
            self.assertIsNone(s.try_next())
            t3 = s.resume_token
            self.assertGreater(t3["_data"], t2["_data"])
            c.insert_one({"_id": 1})
            e = s.try_next() or s.try_next()
            self.assertGreater(e["_id"]["_data"], t3["_data"])
        # resuming from an idle token sees the later event
        self.db.c.insert_one({"_id": 2})
        with c.watch(resume_after=t3, max_await_time_ms=50) as s:
            self.assertEqual([e["documentKey"]["_id"] for e in drain(s, 2)], [1, 2])
        raw = self.db.command("aggregate", "c", pipeline=[{"$changeStream": {}}], cursor={})
        self.assertIn("postBatchResumeToken", raw["cursor"])
        self.assertEqual(raw["cursor"]["firstBatch"], [])
        self.assertIsInstance(raw["cursor"]["id"], Int64)
        t0 = time.time()
        gm = self.db.command("getMore", raw["cursor"]["id"], collection="c", maxTimeMS=200)
        self.assertGreaterEqual(time.time() - t0, 0.15)
        self.assertEqual(gm["cursor"]["nextBatch"], [])
        self.assertGreaterEqual(gm["cursor"]["postBatchResumeToken"]["_data"], raw["cursor"]["postBatchResumeToken"]["_data"])

    def test_history_lost_286(self):
        srv = ServerProc("--history", "3")
        cl = srv.client()
        try:
            c = cl.t.c
            with c.watch(max_await_time_ms=50) as s:
                c.insert_one({"_id": 0})
                first = drain(s, 1)[0]
            for i in range(1, 6):
                c.insert_one({"_id": i})
            with self.assertRaises(OperationFailure) as cm:
                with c.watch(resume_after=first["_id"]) as s:
                    s.try_next()
            self.assertEqual(cm.exception.code, 286)
            with self.assertRaises(OperationFailure) as cm:
                with c.watch(start_at_operation_time=first["clusterTime"]) as s:
                    s.try_next()
            self.assertEqual(cm.exception.code, 286)
            # an open cursor that falls behind the history fails its next getMore with 286
            with c.watch(max_await_time_ms=50) as s:
                s.try_next()
                for i in range(10, 20):
                    c.insert_one({"_id": i})
                with self.assertRaises(OperationFailure) as cm:
                    for _ in range(20):
                        s.try_next()
                self.assertEqual(cm.exception.code, 286)
            # a token of another server instance (e.g. before a restart) is history lost too
            with CLIENT.t_other.c.watch(max_await_time_ms=50) as s:
                CLIENT.t_other.c.insert_one({})
                foreign = drain(s, 1)[0]["_id"]
            with self.assertRaises(OperationFailure) as cm:
                with c.watch(resume_after=foreign) as s:
                    s.try_next()
            self.assertEqual(cm.exception.code, 286)
            # every start has a fresh replica-set identity, newer than the previous one
            h1, h2 = CLIENT.admin.command("hello"), cl.admin.command("hello")
            self.assertNotEqual(h1["topologyVersion"]["processId"], h2["topologyVersion"]["processId"])
            self.assertGreater(h2["electionId"], h1["electionId"])
            self.assertGreaterEqual(h2["setVersion"], h1["setVersion"])
        finally:
            cl.close()
            srv.stop()


# ====================================================================== fault injection

class TestFailPoints(Base):
    def fail(self, **data):
        self.fail_point("failCommand", **data)

    def fail_point(self, name, **data):
        mode = data.pop("mode", {"times": 1})
        self.client.admin.command("configureFailPoint", name, mode=mode, data=data)
        self.addCleanup(self.client.admin.command, "configureFailPoint", name, mode="off")

    def test_error_code_and_labels(self):
        self.db.c.insert_one({"_id": 1})
        self.fail(failCommands=["find"], errorCode=2, errorLabels=["MyLabel"])
        with self.assertRaises(OperationFailure) as cm:
            self.db.c.find_one()
        self.assertEqual(cm.exception.code, 2)
        self.assertTrue(cm.exception.has_error_label("MyLabel"))
        self.assertEqual(self.db.c.find_one(), {"_id": 1})  # times: 1 used up
        self.fail(failCommands=["find"], errorCode=13, mode="alwaysOn")
        for _ in range(2):
            with self.assertRaises(OperationFailure):
                self.db.c.find_one()
        self.client.admin.command("configureFailPoint", "failCommand", mode="off")
        self.assertEqual(self.db.c.find_one(), {"_id": 1})

    def test_write_concern_error(self):
        self.fail(failCommands=["insert"], writeConcernError={"code": 64, "errmsg": "waiting for replication timed out"})
        with self.assertRaises(pymongo.errors.WriteConcernError) as cm:
            self.db.c.insert_one({"_id": 1})
        self.assertEqual(cm.exception.code, 64)
        self.assertEqual(self.db.c.count_documents({}), 1)  # the write itself happened

    def test_retryable_write_after_close_connection(self):
        self.fail(failCommands=["insert"], closeConnection=True)
        self.db.c.insert_one({"_id": 1})  # pymongo retries once on the network error
        self.assertEqual(self.db.c.count_documents({}), 1)
        self.fail(failCommands=["insert"], errorCode=6)
        self.db.c.insert_one({"_id": 2})  # retried because of the RetryableWriteError label
        self.assertEqual(self.db.c.count_documents({}), 2)

    def test_app_name_restricts_the_fail_point(self):
        other = pymongo.MongoClient(self.client.address[0], self.client.address[1], appname="victim",
                            replicaSet=self.client.admin.command("hello")["setName"])
        self.addCleanup(other.close)
        self.fail(failCommands=["find"], errorCode=2, appName="victim", mode="alwaysOn")
        self.assertIsNone(self.db.c.find_one())  # another application: unaffected
        with self.assertRaises(OperationFailure) as cm:
            other[self.db.name].c.find_one()
        self.assertEqual(cm.exception.code, 2)

    def test_fail_point_modes(self):
        self.db.c.insert_one({"_id": 1})
        self.fail(failCommands=["find"], errorCode=2, mode={"skip": 2})
        self.assertIsNotNone(self.db.c.find_one())
        self.assertIsNotNone(self.db.c.find_one())
        for _ in range(2):  # after skipping two, it stays on
            with self.assertRaises(OperationFailure):
                self.db.c.find_one()
        r = self.client.admin.command("configureFailPoint", "failCommand", mode="off")
        self.assertEqual(r["count"], 4)  # times the fail point's condition was met
        self.fail(failCommands=["find"], errorCode=2, mode={"activationProbability": 0.0})
        self.assertIsNotNone(self.db.c.find_one())
        self.fail(failCommands=["find"], errorCode=2, mode={"activationProbability": 1.0})
        with self.assertRaises(OperationFailure):
            self.db.c.find_one()
        with self.assertRaises(OperationFailure) as cm:
            self.client.admin.command("configureFailPoint", "noSuchFailPoint", mode="off")
        self.assertEqual(cm.exception.code, 2)

    def test_block_connection(self):
        self.fail(failCommands=["ping"], blockConnection=True, blockTimeMS=300)
        t0 = time.time()
        self.db.command("ping")
        self.assertGreaterEqual(time.time() - t0, 0.28)

    def test_change_stream_resumes_after_faults(self):
        c = self.db.c
        with c.watch(max_await_time_ms=50) as s:
            c.insert_many([{"_id": i} for i in range(3)])
            got = [e["documentKey"]["_id"] for e in drain(s, 2)]
            self.fail(failCommands=["getMore"], closeConnection=True)
            c.insert_many([{"_id": i} for i in range(3, 5)])
            got += [e["documentKey"]["_id"] for e in drain(s, 3)]
            self.fail_point("failGetMoreAfterCursorCheckout", errorCode=89)
            c.insert_one({"_id": 5})
            got += [e["documentKey"]["_id"] for e in drain(s, 1)]
            self.fail(failCommands=["getMore"], errorCode=43)
            c.insert_one({"_id": 6})
            got += [e["documentKey"]["_id"] for e in drain(s, 1)]
        self.assertEqual(got, list(range(7)))
        # the label itself: set for a resumable code raised once the cursor is checked out (which
        # also kills the cursor), not for failCommand, which fails getMore before that -- as mongod
        raw = self.db.command("aggregate", "c", pipeline=[{"$changeStream": {}}], cursor={})
        self.fail(failCommands=["getMore"], errorCode=262)
        with self.assertRaises(OperationFailure) as cm:
            self.db.command("getMore", raw["cursor"]["id"], collection="c", maxTimeMS=10)
        self.assertEqual(cm.exception.code, 262)
        self.assertFalse(cm.exception.has_error_label("ResumableChangeStreamError"))
        self.fail_point("failGetMoreAfterCursorCheckout", errorCode=262)
        with self.assertRaises(OperationFailure) as cm:
            self.db.command("getMore", raw["cursor"]["id"], collection="c", maxTimeMS=10)
        self.assertTrue(cm.exception.has_error_label("ResumableChangeStreamError"))
        with self.assertRaises(OperationFailure) as cm:
            self.db.command("getMore", raw["cursor"]["id"], collection="c", maxTimeMS=10)
        self.assertEqual(cm.exception.code, 43)  # the error killed the cursor
        raw = self.db.command("aggregate", "c", pipeline=[{"$changeStream": {}}], cursor={})
        self.fail_point("failGetMoreAfterCursorCheckout", errorCode=2)
        with self.assertRaises(OperationFailure) as cm:
            self.db.command("getMore", raw["cursor"]["id"], collection="c", maxTimeMS=10)
        self.assertFalse(cm.exception.has_error_label("ResumableChangeStreamError"))

    def test_resume_from_stored_token_in_new_client(self):
        c = self.db.c
        with c.watch(max_await_time_ms=50) as s:
            c.insert_many([{"_id": i} for i in range(4)])
            evs = drain(s, 2)
            token = s.resume_token
        stored = bson.encode(token)  # e.g. kept in a state table
        c2 = SRV.client()
        try:
            with c2[self.db.name].c.watch(resume_after=bson.decode(stored), max_await_time_ms=50) as s2:
                self.assertEqual([e["documentKey"]["_id"] for e in drain(s2, 2)], [2, 3])
        finally:
            c2.close()
        self.assertEqual([e["documentKey"]["_id"] for e in evs], [0, 1])


# ====================================================================== wire compression

def net_status(client):
    return client.admin.command("serverStatus")["network"]


class TestCompression(Base):
    def test_negotiation_in_client_order(self):
        c = self.raw()
        r = c.msg({"hello": 1, "compression": ["snoopy", "zlib", "zstd"], "$db": "admin"})
        self.assertEqual(r["compression"], ["zlib", "zstd"])
        r = c.msg({"hello": 1, "compression": ["snoopy"], "$db": "admin"})
        self.assertNotIn("compression", r)  # nothing in common: no field
        r = c.msg({"hello": 1, "compression": [], "$db": "admin"})
        self.assertNotIn("compression", r)
        r = c.msg({"hello": 1, "$db": "admin"})
        self.assertNotIn("compression", r)

    def compressed_msg(self, c, cmd, cid):
        """Sends cmd as OP_MSG wrapped in OP_COMPRESSED with compressor cid -> (reply opcode, compressor id, doc)."""
        import zlib
        import zstandard
        import snappy
        msg = struct.pack("<I", 0) + b"\x00" + bson.encode(cmd)
        packed = {1: snappy.compress, 2: zlib.compress, 3: zstandard.ZstdCompressor().compress}[cid](msg)
        rid = c.send(2012, struct.pack("<iiB", 2013, len(msg), cid) + packed)
        rto, op, body = c.read_msg()
        self.assertEqual(rto, rid)
        if op == 2013:
            return op, None, bson.decode(body[5:])
        self.assertEqual(op, 2012)
        orig, size, rcid = struct.unpack_from("<iiB", body)
        self.assertEqual(orig, 2013)
        data = {1: snappy.uncompress, 2: zlib.decompress,
                3: lambda b: zstandard.ZstdDecompressor().decompress(b, max_output_size=size)}[rcid](body[9:])
        self.assertEqual(len(data), size)
        return op, rcid, bson.decode(data[5:])

    def test_raw_op_compressed_each_compressor(self):
        c = self.raw()
        c.msg({"hello": 1, "compression": ["zstd", "snappy", "zlib"], "$db": "admin"})
        for cid in (1, 2, 3):
            op, rcid, r = self.compressed_msg(c, {"insert": "c", "documents": [{"_id": cid, "s": "x" * 500}],
                                                  "$db": self.db.name}, cid)
            self.assertEqual((op, rcid, r["n"]), (2012, cid, 1))  # answered with the request's compressor
        self.assertEqual(sorted(d["_id"] for d in self.db.c.find()), [1, 2, 3])
        # replies to hello are never compressed
        op, rcid, r = self.compressed_msg(c, {"hello": 1, "$db": "admin"}, 2)
        self.assertEqual((op, r["ok"]), (2013, 1.0))

    def test_unknown_or_corrupt_compressed_message_closes_the_connection(self):
        c = self.raw()
        msg = struct.pack("<I", 0) + b"\x00" + bson.encode({"ping": 1, "$db": "admin"})
        c.send(2012, struct.pack("<iiB", 2013, len(msg), 9) + msg)  # compressor id 9 does not exist
        with self.assertRaises(ConnectionError):
            c.read_msg()
        c = self.raw()
        c.send(2012, struct.pack("<iiB", 2013, len(msg) + 5, 2) + b"not zlib data")
        with self.assertRaises(ConnectionError):
            c.read_msg()

    def test_pymongo_with_each_compressor(self):
        for comp in ("zstd", "snappy", "zlib"):
            cl = SRV.client(compressors=comp)
            try:
                before = net_status(self.client)["compression"][comp]
                coll = cl[self.db.name]["c_" + comp]
                with coll.watch(max_await_time_ms=50) as stream:
                    coll.insert_many([{"_id": i, "text": "compressible " * 40} for i in range(200)])
                    self.assertEqual(len(list(coll.find({}, batch_size=50))), 200)
                    self.assertEqual(coll.update_one({"_id": 7}, {"$set": {"v": 1}}).modified_count, 1)
                    evs = drain(stream, 201)
                self.assertEqual([e["operationType"] for e in evs[-2:]], ["insert", "update"])
                after = net_status(self.client)["compression"][comp]
                # requests arrived compressed and replies left compressed, both much smaller
                for side in ("compressor", "decompressor"):
                    moved_in = after[side]["bytesIn"] - before[side]["bytesIn"]
                    moved_out = after[side]["bytesOut"] - before[side]["bytesOut"]
                    self.assertGreater(moved_in, 0, (comp, side))
                    if side == "compressor":
                        self.assertLess(moved_out, moved_in / 2, comp)
                    else:
                        self.assertGreater(moved_out, moved_in * 2, comp)
            finally:
                cl.close()

    def test_network_counters(self):
        c = self.raw()
        msg = {"ping": 1, "$db": "admin"}
        st1 = c.msg({"serverStatus": 1, "$db": "admin"})["network"]
        c.msg(msg)
        st2 = c.msg({"serverStatus": 1, "$db": "admin"})["network"]
        ping_req = 16 + 5 + len(bson.encode(msg))
        status_req = 16 + 5 + len(bson.encode({"serverStatus": 1, "$db": "admin"}))
        # between the two samples: the ping and the second serverStatus request arrived (other
        # connections of this suite may add more, never less)
        self.assertGreaterEqual(st2["bytesIn"] - st1["bytesIn"], ping_req + status_req)
        self.assertGreaterEqual(st2["numRequests"] - st1["numRequests"], 2)
        for k in ("bytesIn", "bytesOut", "physicalBytesIn", "physicalBytesOut", "numRequests"):
            self.assertIsInstance(st2[k], Int64)

    def test_compressors_option(self):
        srv = ServerProc("--compressors", "zlib")
        try:
            c = RawConn(srv.port)
            r = c.msg({"hello": 1, "compression": ["zstd", "snappy", "zlib"], "$db": "admin"})
            self.assertEqual(r["compression"], ["zlib"])
            c.close()
        finally:
            srv.stop()
        srv = ServerProc("--compressors", "disabled")
        cl = srv.client(compressors="zstd,zlib")
        try:
            self.assertNotIn("compression", cl.admin.command("hello", compression=["zstd"]))
            cl.t.c.insert_one({"x": 1})  # uncompressed works
            st = net_status(cl)
            self.assertEqual(st["compression"], {})
            self.assertEqual(st["bytesIn"], st["physicalBytesIn"])
        finally:
            cl.close()
            srv.stop()


if __name__ == "__main__":
    unittest.main()

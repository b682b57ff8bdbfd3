"""The aggregation operators of mql_ops.py through pymongo, against MongoDB's documented or
source-defined results (run with the rest of the server's suite by test_mongo_server.sh).

Run: cd tests/mongo_server && /usr/bin/python3 -m unittest test_mql_ops
"""
import datetime
import hashlib
import math
import struct
import unittest
import uuid

from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.timestamp import Timestamp
from pymongo.errors import OperationFailure

import test_server
from test_server import Base


def setUpModule():
    test_server.setUpModule()  # one server for this module (test_server's globals)


def tearDownModule():
    test_server.tearDownModule()


def md5_hash(*parts):
    return struct.unpack("<q", hashlib.md5(b"".join(parts)).digest()[:8])[0]


class TestExpressionOps(Base):
    def setUp(self):
        Base.setUp(self)
        self.c = self.db["ops"]
        self.c.insert_one({"_id": 1})

    def ev(self, expr, doc=None):
        """Evaluates expr against one document (doc or {_id: 1})."""
        c = self.c
        if doc is not None:
            c = self.db["ops_doc"]
            c.delete_many({})
            c.insert_one(dict(doc, _id=1))
        r = list(c.aggregate([{"$project": {"_id": 0, "r": expr}}]))
        return r[0].get("r", "MISSING")

    def err(self, expr, doc=None):
        with self.assertRaises(OperationFailure) as cm:
            self.ev(expr, doc)
        return cm.exception.code

    def test_to_hashed_index_key(self):
        # MongoDB's documentation: "string to hash" -> 763543691661428748
        self.assertEqual(self.ev({"$toHashedIndexKey": "string to hash"}), 763543691661428748)
        self.assertIsInstance(self.ev({"$toHashedIndexKey": "string to hash"}), Int64)
        # hasher.cpp's own check: the element 42 -> -944302157085130861
        self.assertEqual(self.ev({"$toHashedIndexKey": 42}), -944302157085130861)
        # numbers hash by their int64 value (safeNumberLongForHash): 42 == 42.0 == 42.9 == NumberLong(42)
        for v in (42.0, 42.9, Int64(42), Decimal128("42")):
            self.assertEqual(self.ev({"$toHashedIndexKey": {"$literal": v}}), -944302157085130861)
        self.assertEqual(self.ev({"$toHashedIndexKey": float("nan")}), self.ev({"$toHashedIndexKey": 0}))
        # the algorithm for strings and binary data, recomputed here
        s = "héllo".encode()
        self.assertEqual(self.ev({"$toHashedIndexKey": "héllo"}),
                         md5_hash(struct.pack("<iii", 0, 15, len(s) + 1), s, b"\0"))
        u = uuid.UUID("12345678-1234-5678-1234-567812345678").bytes
        self.assertEqual(self.ev({"$toHashedIndexKey": "$u"}, {"u": Binary(u, 4)}),
                         md5_hash(struct.pack("<iii", 0, 30, 16), b"\x04", u))
        # missing and null hash alike (as a hashed index stores them)
        self.assertEqual(self.ev({"$toHashedIndexKey": "$nope"}), self.ev({"$toHashedIndexKey": None}))
        self.assertEqual(self.ev({"$toHashedIndexKey": None}), md5_hash(struct.pack("<ii", 0, 5)))
        # documents hash their elements with names, then the end marker
        self.assertEqual(self.ev({"$toHashedIndexKey": {"$literal": {"a": 1}}}),
                         md5_hash(struct.pack("<ii", 0, 20), struct.pack("<i", 10), b"a\0",
                                  struct.pack("<q", 1), struct.pack("<i", 0)))
        self.assertNotEqual(self.ev({"$toHashedIndexKey": "a"}), self.ev({"$toHashedIndexKey": "b"}))

    def test_to_string(self):
        # doubles as MongoDB before 8.0 prints them: %g, NaN, Infinity, -0
        cases = [(1.0, "1"), (0.1, "0.1"), (1 / 3, "0.333333"), (1e20, "1e+20"), (123456789.0, "1.23457e+08"),
                 (100000.0, "100000"), (1e-5, "1e-05"), (-2.5, "-2.5"), (float("nan"), "NaN"),
                 (float("inf"), "Infinity"), (float("-inf"), "-Infinity"), (-0.0, "-0"), (0.0, "0")]
        for v, want in cases:
            self.assertEqual(self.ev({"$toString": {"$literal": v}}), want, v)
        self.assertEqual(self.ev({"$toString": {"$literal": Decimal128("1.50")}}), "1.50")
        self.assertEqual(self.ev({"$toString": {"$literal": Decimal128("1.5E+3")}}), "1.5E+3")
        self.assertEqual(self.ev({"$toString": {"$literal": Decimal128("-0")}}), "-0")
        self.assertEqual(self.ev({"$toString": {"$literal": Int64(2 ** 40)}}), "1099511627776")
        self.assertEqual(self.ev({"$toString": True}), "true")
        oid = ObjectId("655f0000000000000000002a")
        self.assertEqual(self.ev({"$toString": "$o"}, {"o": oid}), "655f0000000000000000002a")
        d = datetime.datetime(2023, 1, 2, 3, 4, 5, 678000)
        self.assertEqual(self.ev({"$toString": "$d"}, {"d": d}), "2023-01-02T03:04:05.678Z")
        self.assertIsNone(self.ev({"$toString": "$nope"}))
        self.assertEqual(self.err({"$toString": "$b"}, {"b": Binary(b"x", 0)}), 241)

    def test_convert(self):
        d = datetime.datetime(2023, 1, 1)
        self.assertEqual(self.ev({"$toLong": "$d"}, {"d": d}), 1672531200000)
        self.assertEqual(self.ev({"$toLong": 2.9}), 2)
        self.assertEqual(self.ev({"$toLong": -2.9}), -2)
        self.assertEqual(self.ev({"$toLong": "12"}), 12)
        self.assertEqual(self.err({"$toLong": float("nan")}), 241)
        self.assertEqual(self.err({"$toLong": 1e19}), 241)
        self.assertEqual(self.ev({"$convert": {"input": 1e19, "to": "long", "onError": "bad"}}), "bad")
        self.assertEqual(self.ev({"$convert": {"input": "$nope", "to": "long", "onNull": "n"}}), "n")
        self.assertEqual(self.ev({"$toDouble": "1e+06"}), 1e6)
        self.assertEqual(self.ev({"$toDouble": {"$literal": Int64(2 ** 53 + 1)}}), float(2 ** 53))
        self.assertEqual(self.ev({"$toDecimal": 0.1}), Decimal128("0.100000000000000"))
        self.assertEqual(self.ev({"$toInt": "7"}), 7)

    def test_strings(self):
        self.assertEqual(self.ev({"$strLenBytes": "é|x"}), 4)
        self.assertEqual(self.err({"$strLenBytes": 5}), 34473)
        self.assertEqual(self.ev({"$indexOfBytes": ["1.5e+06", "e"]}), 3)
        self.assertEqual(self.ev({"$indexOfBytes": ["15", "."]}), -1)
        self.assertIsNone(self.ev({"$indexOfBytes": ["$nope", "."]}))
        self.assertTrue(self.ev({"$regexMatch": {"input": "a\"b", "regex": "[\\x00-\\x1f\"\\\\]"}}))
        self.assertTrue(self.ev({"$regexMatch": {"input": "a\nb", "regex": "[\\x00-\\x1f\"\\\\]"}}))
        self.assertFalse(self.ev({"$regexMatch": {"input": "plain", "regex": "[\\x00-\\x1f\"\\\\]"}}))
        self.assertFalse(self.ev({"$regexMatch": {"input": "$nope", "regex": "x"}}))
        self.assertEqual(self.ev({"$replaceAll": {"input": "a\\b\"c", "find": "\\", "replacement": "\\\\"}}),
                         "a\\\\b\"c")
        self.assertIsNone(self.ev({"$replaceAll": {"input": None, "find": "a", "replacement": "b"}}))
        self.assertEqual(self.ev({"$rtrim": {"input": "1.500", "chars": "0"}}), "1.5")
        self.assertEqual(self.ev({"$rtrim": {"input": {"$rtrim": {"input": "10.00", "chars": "0"}}, "chars": "."}}),
                         "10")
        self.assertEqual(self.ev({"$ltrim": {"input": "  x "}}), "x ")
        self.assertEqual(self.ev({"$concat": ["a", {"$toString": 5}]}), "a5")

    def test_objects_and_arrays(self):
        doc = {"o": {"bb": 1, "a": 2, "c": 3, "aa": 4}}
        pairs = self.ev({"$objectToArray": "$o"}, doc)
        self.assertEqual(pairs, [{"k": "bb", "v": 1}, {"k": "a", "v": 2}, {"k": "c", "v": 3}, {"k": "aa", "v": 4}])
        # jsonb's key order: by length, then bytes
        srt = self.ev({"$sortArray": {"input": {"$map": {"input": {"$objectToArray": "$o"}, "as": "e",
                                                         "in": {"l": {"$strLenBytes": "$$e.k"}, "k": "$$e.k"}}},
                                      "sortBy": {"l": 1, "k": 1}}}, doc)
        self.assertEqual([x["k"] for x in srt], ["a", "c", "aa", "bb"])
        self.assertEqual(self.ev({"$sortArray": {"input": [3, 1, 2], "sortBy": -1}}), [3, 2, 1])
        self.assertEqual(self.err({"$sortArray": {"input": 5, "sortBy": 1}}), 2942504)
        self.assertEqual(self.ev({"$arrayToObject": [[["k", 1]]]}), {"k": 1})
        self.assertEqual(self.ev({"$concatArrays": [[1], [2, 3]]}), [1, 2, 3])
        self.assertIsNone(self.ev({"$concatArrays": [[1], "$nope"]}))
        self.assertTrue(self.ev({"$in": [2, [1, 2.0]]}))
        self.assertEqual(self.err({"$in": [2, 5]}), 40081)
        self.assertEqual(self.ev({"$getField": {"field": "a.b", "input": {"$literal": {"a.b": 7}}}}), 7)
        self.assertEqual(self.ev({"$getField": {"field": {"$literal": "$x"}, "input": {"$literal": {"$x": 5}}}}), 5)
        self.assertEqual(self.ev({"$getField": {"field": "z", "input": "$o"}}, {"o": {"y": 1}}), "MISSING")
        self.assertIsNone(self.ev({"$getField": {"field": "z", "input": "$nope"}}))
        self.assertTrue(self.ev({"$isArray": [[1]]}))
        self.assertEqual(self.err({"$objectToArray": 5}), 40390)

    def test_control_flow_is_lazy(self):
        # the branch not taken is never evaluated (MongoDB: a failing $toLong there is harmless)
        self.assertEqual(self.ev({"$cond": [True, "a", {"$toLong": "x"}]}), "a")
        self.assertEqual(self.ev({"$switch": {"branches": [{"case": False, "then": {"$toLong": "x"}},
                                                             {"case": True, "then": "b"}]}}), "b")
        self.assertEqual(self.err({"$switch": {"branches": [{"case": False, "then": 1}]}}), 40066)
        self.assertEqual(self.ev({"$let": {"vars": {"x": 2}, "in": {"$let": {"vars": {"x": {"$add": ["$$x", 1]}},
                                                                               "in": "$$x"}}}}), 3)
        self.assertEqual(self.ev({"$reduce": {"input": ["a", "b", "c"], "initialValue": "",
                                              "in": {"$concat": ["$$value", {"$cond": [{"$eq": ["$$value", ""]},
                                                                                       "", ", "]}, "$$this"]}}}),
                         "a, b, c")
        self.assertEqual(self.ev({"$map": {"input": [1, 2], "in": {"$multiply": ["$$this", 10]}}}), [10, 20])
        self.assertEqual(self.ev({"$filter": {"input": [1, 2, 3], "cond": {"$gt": ["$$this", 1]}}}), [2, 3])
        self.assertIsNone(self.ev({"$ifNull": ["$nope", None]}))
        self.assertEqual(self.ev({"$ifNull": ["$nope", "d"]}), "d")
        self.assertFalse(self.ev({"$and": [False, {"$toLong": "x"}]}))

    def test_arithmetic_exact_double_decomposition(self):
        # what verify uses to spell a double exactly: m * 2^q from $abs, $log, $floor, $pow, $divide
        expr = {"$let": {"vars": {"a": {"$abs": "$x"}}, "in": {"$let": {"vars": {"e0": {"$floor": {"$log": ["$$a", 2]}}},
                "in": {"$let": {"vars": {"e": {"$max": [-1022, {"$switch": {"branches": [
                    {"case": {"$lt": ["$$a", {"$pow": [2, "$$e0"]}]}, "then": {"$subtract": ["$$e0", 1]}},
                    {"case": {"$gte": ["$$a", {"$pow": [2, {"$add": ["$$e0", 1]}]}]}, "then": {"$add": ["$$e0", 1]}}],
                    "default": "$$e0"}}]}},
                    "in": [{"$toLong": {"$divide": ["$$a", {"$pow": [2, {"$subtract": ["$$e", 52]}]}]}},
                           {"$subtract": ["$$e", 52]}]}}}}}}
        for x in (1.0, 0.1, 2.0 ** -1074, 2.0 ** -1022, 1.7976931348623157e308, 3.0, 2.0 ** 52, 0.3, 1e-300, 12345.678):
            m, q = self.ev(expr, {"x": x})
            self.assertEqual(math.ldexp(m, int(q)), x, x)
            self.assertTrue(m < 2 ** 53)
        self.assertEqual(self.ev({"$pow": [2, 1024.0]}), float("inf"))
        self.assertEqual(self.ev({"$pow": [2, 10]}), 1024)
        self.assertEqual(self.ev({"$pow": [2, -1]}), 0.5)
        self.assertEqual(self.ev({"$log": [8, 2]}), 3.0)
        self.assertEqual(self.err({"$log": [0, 2]}), 28758)
        self.assertEqual(self.ev({"$floor": -1.5}), -2.0)
        self.assertEqual(self.ev({"$trunc": -1.5}), -1.0)
        self.assertEqual(self.ev({"$abs": -3}), 3)
        # $mod of 64-bit values is exact (sign of the dividend)
        self.assertEqual(self.ev({"$mod": [{"$literal": Int64(-(2 ** 53) - 1)}, {"$literal": Int64(2 ** 32)}]}), -1)
        self.assertEqual(self.ev({"$mod": [{"$literal": Int64(2 ** 62 + 5)}, {"$literal": Int64(2 ** 32)}]}), 5)
        self.assertEqual(self.ev({"$tsSecond": "$t"}, {"t": Timestamp(1700000000, 3)}), 1700000000)
        self.assertEqual(self.ev({"$tsIncrement": "$t"}, {"t": Timestamp(1700000000, 3)}), 3)

    def test_sample_stage(self):
        c = self.db["sample"]
        c.insert_many([{"_id": i} for i in range(50)])
        r = list(c.aggregate([{"$sample": {"size": 10}}]))
        self.assertEqual(len(r), 10)
        self.assertEqual(len({d["_id"] for d in r}), 10)
        self.assertEqual(sorted(d["_id"] for d in c.aggregate([{"$sample": {"size": 100}}])), list(range(50)))
        with self.assertRaises(OperationFailure):
            list(c.aggregate([{"$sample": {"size": -1}}]))

    def test_segment_signature_pipeline(self):
        # verify's $group: sum of 64-bit hashes split into exact 32-bit parts
        c = self.db["sig"]
        vals = ["a", "b", "c", "d", "e"]
        c.insert_many([{"_id": i, "s": s} for i, s in enumerate(vals)])
        r = list(c.aggregate([
            {"$project": {"_id": 0, "b": {"$literal": 0}, "h": {"$toHashedIndexKey": "$s"}}},
            {"$group": {"_id": "$b", "n": {"$sum": 1}, "lo": {"$sum": {"$mod": ["$h", Int64(2 ** 32)]}},
                        "hi": {"$sum": {"$toLong": {"$divide": [{"$subtract": ["$h", {"$mod": ["$h", Int64(2 ** 32)]}]},
                                                                Int64(2 ** 32)]}}}}}]))
        want = 0
        for s in vals:
            b = s.encode()
            want += md5_hash(struct.pack("<iii", 0, 15, len(b) + 1), b, b"\0")
        got = (r[0]["hi"] * 2 ** 32 + r[0]["lo"]) % 2 ** 64
        self.assertEqual(got, want % 2 ** 64)
        self.assertEqual(r[0]["n"], 5)


if __name__ == "__main__":
    unittest.main()

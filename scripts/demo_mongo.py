"""Tiny MongoDB client for the demo (Debian's pymongo): insert, show, update a users document.
usage: demo_mongo.py URI DB insert|show|set ID [FIELD VALUE]"""
import json
import sys

from bson import json_util
from pymongo import MongoClient

uri, dbname, op, _id = sys.argv[1:5]
coll = MongoClient(uri, serverSelectionTimeoutMS=5000)[dbname]["users"]
if op == "insert":
    coll.insert_one({"_id": _id, "email": "ada@example.com",
                     "profile": {"name": "Ada Lovelace", "born": 1815},
                     "account": {"balance": json_util.loads('{"$numberDecimal": "120.50"}')},
                     "tags": ["math", "engines"], "nickname": "the enchantress"})
elif op == "set":
    coll.update_one({"_id": _id}, {"$set": {sys.argv[5]: sys.argv[6]}})
elif op == "show":
    doc = coll.find_one({"_id": _id})
    print(json_util.dumps(doc, json_options=json_util.RELAXED_JSON_OPTIONS) if doc else "null")
else:
    sys.exit("unknown op " + op)

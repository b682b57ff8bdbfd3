"""Command handlers for the MongoDB test server. Each handler takes (server, ctx) -> reply dict."""
import asyncio
import os
import socket
import time

from bson.objectid import ObjectId
from bson.int64 import Int64

import bsoncodec
from bsoncodec import DateMS
import mql
from mql import MQLError, key, truthy, num, is_number, MISSING
from mongo_server import (CmdError, DupKey, Event, coll_arg, check_coll_name, check_doc_keys,
                          MAX_BSON, MAX_MSG, MAX_WIRE, SERVER_VERSION, RESUMABLE_CS_CODES)

COMMANDS = {}
LOWER_OK = {"ismaster", "findandmodify"}


def command(*names):
    def deco(fn):
        for n in names:
            COMMANDS[n] = fn
        return fn
    return deco


def _int(v, default=0):
    if v is None:
        return default
    if not is_number(v) and not isinstance(v, bool):
        raise CmdError(14, "expected a number, got %r" % (v,))
    return int(num(v))


# ------------------------------------------------------------------ handshake / admin

@command("hello", "isMaster", "ismaster")
async def cmd_hello(srv, ctx):
    cmd = ctx.cmd
    client = cmd.get("client")
    if isinstance(client, dict) and isinstance(client.get("application"), dict):
        ctx.conn["app_name"] = client["application"].get("name")  # for failCommand's appName
    tv = cmd.get("topologyVersion")
    mat = cmd.get("maxAwaitTimeMS")
    if isinstance(tv, dict) and mat is not None:
        if tv.get("processId") == srv.process_id and _int(tv.get("counter")) == int(srv.topology_counter):
            await asyncio.sleep(min(max(_int(mat), 0), 10000) / 1000.0)
    ct = srv.cluster_time
    now = DateMS.now()
    r = {"topologyVersion": {"processId": srv.process_id, "counter": srv.topology_counter},
         "hosts": [srv.me], "setName": srv.replset, "setVersion": srv.set_version}
    if ctx.name == "hello":
        r["isWritablePrimary"] = True
    else:
        r["ismaster"] = True
    r.update({"secondary": False, "primary": srv.me, "me": srv.me, "electionId": srv.election_id,
              "lastWrite": {"opTime": {"ts": ct, "t": Int64(1)}, "lastWriteDate": now,
                            "majorityOpTime": {"ts": ct, "t": Int64(1)}, "majorityWriteDate": now},
              "helloOk": True,
              "maxBsonObjectSize": MAX_BSON, "maxMessageSizeBytes": MAX_MSG, "maxWriteBatchSize": 100000,
              "localTime": now, "logicalSessionTimeoutMinutes": 30, "connectionId": ctx.conn["id"],
              "minWireVersion": 0, "maxWireVersion": MAX_WIRE, "readOnly": False})
    if "compression" in cmd:
        # wire compression: the client's list narrowed to what the server has, in the client's
        # order; no field when nothing is in common (as mongod)
        common = srv.codec.negotiate(cmd["compression"])
        ctx.conn["compressors"] = common
        if common:
            r["compression"] = common
    r["ok"] = 1.0
    return r


@command("ping")
def cmd_ping(srv, ctx):
    return {"ok": 1.0}


@command("buildInfo", "buildinfo")
def cmd_buildinfo(srv, ctx):
    return {"version": "%d.%d.%d" % SERVER_VERSION, "gitVersion": "arraysync-test-server", "modules": [],
            "allocator": "system", "javascriptEngine": "none", "sysInfo": "deprecated",
            "versionArray": list(SERVER_VERSION) + [0],
            "bits": 64, "debug": False, "maxBsonObjectSize": MAX_BSON, "storageEngines": ["wiredTiger"],
            "ok": 1.0}


@command("endSessions", "killSessions", "refreshSessions", "startSession", "killAllSessions",
         "killAllSessionsByPattern")
def cmd_end_sessions(srv, ctx):
    if ctx.name in ("killAllSessions", "killAllSessionsByPattern"):
        # like mongod: kills every session's open transaction (no users/roles here to filter on)
        for sess in list(srv.sessions.values()):
            if sess.txn is not None:
                srv.abort_txn(sess)
        return {"ok": 1.0}
    if ctx.name == "startSession":
        return {"id": {"id": bsoncodec.Binary(os.urandom(16), 4)}, "timeoutMinutes": 30, "ok": 1.0}
    if ctx.name in ("endSessions", "killSessions"):
        for s in ctx.cmd.get(ctx.name) or []:
            if isinstance(s, dict) and "id" in s:
                sess = srv.sessions.pop(bytes(s["id"]), None)
                if sess is not None and sess.txn is not None:
                    srv.abort_txn(sess)
    return {"ok": 1.0}


@command("getLastError", "getlasterror")
def cmd_gle(srv, ctx):
    return {"n": 0, "err": None, "ok": 1.0}


@command("getParameter")
def cmd_getparameter(srv, ctx):
    r = {}
    cmd = ctx.cmd
    if cmd.get("featureCompatibilityVersion") is not None or cmd.get("getParameter") == "*":
        r["featureCompatibilityVersion"] = {"version": "%d.%d" % SERVER_VERSION[:2]}
    for k in cmd:
        if k in ("getParameter", "featureCompatibilityVersion", "$db", "lsid", "$clusterTime", "$readPreference", "comment"):
            continue
        if k == "transactionLifetimeLimitSeconds":
            r[k] = int(srv.txn_lifetime)
        elif k == "maxBSONDepth":
            r[k] = 200
    r["ok"] = 1.0
    return r


@command("setParameter", "setFeatureCompatibilityVersion")
def cmd_setparameter(srv, ctx):
    if "transactionLifetimeLimitSeconds" in ctx.cmd:
        was = int(srv.txn_lifetime)
        v = ctx.cmd["transactionLifetimeLimitSeconds"]
        if not isinstance(v, (int, float)) or v < 1:
            raise CmdError(2, "transactionLifetimeLimitSeconds must be greater than or equal to 1s")
        srv.txn_lifetime = float(v)
        return {"was": was, "ok": 1.0}
    return {"was": None, "ok": 1.0}


@command("serverStatus")
def cmd_serverstatus(srv, ctx):
    return {"host": socket.gethostname(), "version": "%d.%d.%d" % SERVER_VERSION, "process": "mongod", "pid": Int64(os.getpid()),
            "uptime": float(int(time.time() - srv.start_time)), "uptimeMillis": Int64(int((time.time() - srv.start_time) * 1000)),
            "localTime": DateMS.now(),
            "connections": {"current": srv.conns, "available": 1000000, "totalCreated": srv.conn_counter},
            "repl": {"setName": srv.replset, "setVersion": srv.set_version, "isWritablePrimary": True,
                     "secondary": False, "hosts": [srv.me], "primary": srv.me, "me": srv.me},
            "storageEngine": {"name": "wiredTiger", "supportsCommittedReads": True, "persistent": False},
            "network": _network_status(srv),
            "ok": 1.0}


def _network_status(srv):
    """serverStatus.network as mongod reports it: bytesIn/bytesOut count messages as they are
    before compression / after decompression, physicalBytesIn/Out what crossed the wire; both
    include the 16-byte message headers and this serverStatus request itself."""
    n = srv.net
    comp = {}
    for name, st in srv.codec.stats.items():
        comp[name] = {"compressor": {"bytesIn": Int64(st["compressor"][0]), "bytesOut": Int64(st["compressor"][1])},
                      "decompressor": {"bytesIn": Int64(st["decompressor"][0]), "bytesOut": Int64(st["decompressor"][1])}}
    return {"bytesIn": Int64(n["bytesIn"]), "bytesOut": Int64(n["bytesOut"]),
            "physicalBytesIn": Int64(n["physicalBytesIn"]), "physicalBytesOut": Int64(n["physicalBytesOut"]),
            "numSlowDNSOperations": Int64(0), "numSlowSSLOperations": Int64(0),
            "numRequests": Int64(n["numRequests"]), "compression": comp}


@command("whatsmyuri")
def cmd_whatsmyuri(srv, ctx):
    peer = ctx.conn.get("peer") or ("127.0.0.1", 0)
    return {"you": "%s:%d" % (peer[0], peer[1]), "ok": 1.0}


@command("getCmdLineOpts")
def cmd_cmdline(srv, ctx):
    return {"argv": ["mongod", "--replSet", srv.replset, "--port", str(srv.port), "--bind_ip", "127.0.0.1"],
            "parsed": {"net": {"bindIp": "127.0.0.1", "port": srv.port}, "replication": {"replSet": srv.replset}},
            "ok": 1.0}


@command("hostInfo")
def cmd_hostinfo(srv, ctx):
    return {"system": {"currentTime": DateMS.now(), "hostname": "127.0.0.1:%d" % srv.port, "cpuAddrSize": 64,
                       "memSizeMB": Int64(1024), "numCores": os.cpu_count() or 1, "cpuArch": "x86_64",
                       "numaEnabled": False},
            "os": {"type": "Linux", "name": "ArraySync test server", "version": "1"}, "extra": {}, "ok": 1.0}


@command("replSetGetStatus")
def cmd_rsstatus(srv, ctx):
    ct = srv.cluster_time
    return {"set": srv.replset, "date": DateMS.now(), "myState": 1, "term": Int64(1),
            "members": [{"_id": 0, "name": srv.me, "health": 1.0, "state": 1, "stateStr": "PRIMARY",
                         "optime": {"ts": ct, "t": Int64(1)}, "self": True, "electionId": srv.election_id}],
            "ok": 1.0}


@command("connectionStatus")
def cmd_connstatus(srv, ctx):
    return {"authInfo": {"authenticatedUsers": [], "authenticatedUserRoles": []}, "ok": 1.0}


@command("listCommands")
def cmd_listcommands(srv, ctx):
    return {"commands": {n: {"help": ""} for n in sorted(COMMANDS)}, "ok": 1.0}


@command("configureFailPoint")
def cmd_failpoint(srv, ctx):
    cmd = ctx.cmd
    if ctx.db != "admin":
        raise CmdError(13, "configureFailPoint may only be run against the admin database.")
    fp = srv.failpoints.get(cmd["configureFailPoint"])
    if fp is None:
        raise CmdError(2, "Unknown fail point: %s" % cmd["configureFailPoint"])
    was = fp.configure(cmd.get("mode"), cmd.get("data") if "data" in cmd else None)
    return {"count": Int64(was), "ok": 1.0}


@command("commitTransaction", "abortTransaction")
def cmd_txn_outside(srv, ctx):
    raise CmdError(251, "No transaction is in progress", ["TransientTransactionError"])


# ------------------------------------------------------------------ databases / collections

def _coll_info(c):
    if c.view is not None:
        return {"name": c.name, "type": "view", "options": dict(c.options), "info": {"readOnly": True}}
    return {"name": c.name, "type": "collection", "options": dict(c.options),
            "info": {"readOnly": False, "uuid": c.uuid},
            "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"}}


@command("listCollections")
def cmd_listcollections(srv, ctx):
    cmd = ctx.cmd
    flt = cmd.get("filter") or {}
    mql.validate_filter(flt)
    infos = []
    for c in (srv.dbs.get(ctx.db) or {}).values():
        info = _coll_info(c)
        if mql.matches(info, flt):
            if truthy(cmd.get("nameOnly")):
                info = {"name": c.name, "type": info["type"]}
            infos.append(info)
    bs = (cmd.get("cursor") or {}).get("batchSize")
    return srv.cursor_reply("%s.$cmd.listCollections" % ctx.db, infos, bs)


def _db_size(colls):
    return sum(len(bsoncodec.encode(d)) for c in colls.values() for d in c.docs.values())


@command("listDatabases")
def cmd_listdatabases(srv, ctx):
    if ctx.db != "admin":
        raise CmdError(13, "listDatabases may only be run against the admin database.")
    out = []
    names = set(n for n, d in srv.dbs.items() if d) | {"admin", "config", "local"}
    flt = ctx.cmd.get("filter") or {}
    total = 0
    for n in sorted(names):
        colls = srv.dbs.get(n) or {}
        size = _db_size(colls) if not truthy(ctx.cmd.get("nameOnly")) else 0
        size = max(size, 4096 * (len(colls) or 2))
        e = {"name": n, "sizeOnDisk": Int64(size), "empty": False}
        if not mql.matches(e, flt):
            continue
        total += size
        out.append({"name": n} if truthy(ctx.cmd.get("nameOnly")) else e)
    r = {"databases": out}
    if not truthy(ctx.cmd.get("nameOnly")):
        r["totalSize"] = Int64(total)
        r["totalSizeMb"] = Int64(total // (1024 * 1024))
    r["ok"] = 1.0
    return r


_CREATE_OPTS_IGNORED = {"create", "$db", "lsid", "$clusterTime", "txnNumber", "autocommit", "startTransaction",
                        "writeConcern", "$readPreference", "comment", "apiVersion", "apiStrict", "apiDeprecationErrors",
                        "readConcern"}


def _check_pre_post(v):
    if v is None:
        return
    if not isinstance(v, dict) or "enabled" not in v or not isinstance(v["enabled"], bool):
        raise CmdError(2, "changeStreamPreAndPostImages must be {enabled: <bool>}")


@command("create")
def cmd_create(srv, ctx):
    name = coll_arg(ctx)
    if srv.get_coll(ctx.db, name, ctx=ctx) is not None:
        raise CmdError(48, "Collection %s.%s already exists." % (ctx.db, name))
    opts = {k: v for k, v in ctx.cmd.items() if k not in _CREATE_OPTS_IGNORED}
    view = None
    if "viewOn" in opts:
        view = _view_spec(opts)
        if ctx.txn is not None:
            raise CmdError(263, "Cannot create a view in a multi-document transaction.")
        opts = dict(view)
    elif "pipeline" in opts:
        raise CmdError(72, "'pipeline' requires 'viewOn' to also be specified")
    _check_pre_post(opts.get("changeStreamPreAndPostImages"))
    if opts.get("changeStreamPreAndPostImages") == {"enabled": False}:
        opts.pop("changeStreamPreAndPostImages")
    srv.get_coll(ctx.db, name, create=True, ctx=ctx, options=opts, view=view)
    return {"ok": 1.0}


def _view_spec(opts):
    von, pipe = opts["viewOn"], opts.get("pipeline", [])
    if not isinstance(von, str) or not von:
        raise CmdError(2, "'viewOn' must be a non-empty string")
    if not isinstance(pipe, list):
        raise CmdError(14, "'pipeline' must be an array")
    for st in pipe:
        if not isinstance(st, dict) or len(st) != 1:
            raise CmdError(40323, "A pipeline stage specification object must contain exactly one field.")
        if next(iter(st)) in ("$changeStream", "$out", "$merge"):
            raise CmdError(40600 if next(iter(st)) != "$changeStream" else 40602,
                           "%s cannot be used in a view definition" % next(iter(st)))
    extra = [k for k in opts if k not in ("viewOn", "pipeline", "collation")]
    if extra:
        raise CmdError(167, "option %s is not supported for views" % extra[0])
    return {"viewOn": von, "pipeline": list(pipe)}


@command("collMod")
def cmd_collmod(srv, ctx):
    name = coll_arg(ctx)
    c = srv.get_coll(ctx.db, name)
    if c is None:
        raise CmdError(26, "ns does not exist: %s.%s" % (ctx.db, name))
    before = dict(c.options)
    desc = {}
    for k, v in ctx.cmd.items():
        if k in _CREATE_OPTS_IGNORED or k == "collMod":
            continue
        desc[k] = v
        if c.view is not None:
            if k not in ("viewOn", "pipeline"):
                raise CmdError(167, "option %s is not supported for views" % k)
            c.view = _view_spec(dict(c.view, **{k: v}))
            c.options = dict(c.view)
            continue
        if k == "changeStreamPreAndPostImages":
            _check_pre_post(v)
            if v["enabled"]:
                c.options[k] = {"enabled": True}
            else:
                c.options.pop(k, None)
        elif k == "validator" or k == "validationLevel" or k == "validationAction":
            c.options[k] = v
        elif k == "index":
            pass
        else:
            raise CmdError(72, "%s is not supported by collMod in the ArraySync test server" % k)
    ev = Event("modify", ctx.db, name, uuid=None if c.view is not None else c.uuid, opdesc=desc)
    srv.emit([ev])
    return {"ok": 1.0}


def _drop_coll(srv, db, name):
    srv.abort_txns_on(db, name)
    c = srv.dbs[db].pop(name)
    if not srv.dbs[db]:
        del srv.dbs[db]
    if c.view is None:
        srv.emit([Event("drop", db, name, uuid=c.uuid)])
    return c


@command("drop")
def cmd_drop(srv, ctx):
    name = coll_arg(ctx)
    c = srv.get_coll(ctx.db, name)
    if c is None:
        return {"ok": 1.0}  # MongoDB 7.0: dropping a missing collection succeeds (SERVER-43894)
    _drop_coll(srv, ctx.db, name)
    return {"nIndexesWas": len(c.indexes), "ns": "%s.%s" % (ctx.db, name), "ok": 1.0}


@command("dropDatabase")
def cmd_dropdatabase(srv, ctx):
    colls = srv.dbs.get(ctx.db)
    if colls:
        for name in list(colls):
            _drop_coll(srv, ctx.db, name)
        srv.emit([Event("dropDatabase", ctx.db)])
    return {"dropped": ctx.db, "ok": 1.0}


@command("renameCollection")
def cmd_rename(srv, ctx):
    if ctx.db != "admin":
        raise CmdError(13, "renameCollection may only be run against the admin database.")
    src, dst = ctx.cmd["renameCollection"], ctx.cmd.get("to")
    if not isinstance(src, str) or not isinstance(dst, str) or "." not in src or "." not in dst:
        raise CmdError(73, "Invalid namespace")
    sdb, sc = src.split(".", 1)
    ddb, dc = dst.split(".", 1)
    check_coll_name(ddb, dc)
    c = srv.get_coll(sdb, sc)
    if c is None:
        raise CmdError(26, "Source collection %s does not exist" % src)
    if c.view is not None:
        raise CmdError(166, "cannot rename view: %s" % src)
    if src == dst:
        raise CmdError(20, "Can't rename a collection to itself")
    opdesc = {"to": {"db": ddb, "coll": dc}}
    target = srv.get_coll(ddb, dc)
    if target is not None:
        if not truthy(ctx.cmd.get("dropTarget")):
            raise CmdError(48, "target namespace exists")
        if target.view is not None:
            raise CmdError(166, "cannot rename to a view: %s" % dst)
        opdesc["dropTarget"] = target.uuid
        _drop_coll(srv, ddb, dc)
    srv.abort_txns_on(sdb, sc)
    del srv.dbs[sdb][sc]
    if not srv.dbs[sdb]:
        del srv.dbs[sdb]
    c.db, c.name = ddb, dc
    srv.dbs.setdefault(ddb, {})[dc] = c
    srv.emit([Event("rename", sdb, sc, to={"db": ddb, "coll": dc}, uuid=c.uuid, opdesc=opdesc)])
    return {"ok": 1.0}


@command("collStats", "dataSize")
def cmd_collstats(srv, ctx):
    name = coll_arg(ctx) if ctx.name == "collStats" else ctx.cmd["dataSize"].split(".", 1)[1]
    c = srv.get_coll(ctx.db, name)
    if c is None:
        raise CmdError(26, "ns not found %s.%s" % (ctx.db, name))
    size = sum(len(bsoncodec.encode(d)) for d in c.docs.values())
    n = len(c.docs)
    return {"ns": "%s.%s" % (ctx.db, name), "size": size, "count": n, "avgObjSize": size // n if n else 0,
            "storageSize": size, "nindexes": len(c.indexes), "totalIndexSize": 0,
            "indexSizes": {ix["name"]: 0 for ix in c.indexes}, "capped": False, "ok": 1.0}


@command("dbStats")
def cmd_dbstats(srv, ctx):
    colls = srv.dbs.get(ctx.db) or {}
    size = _db_size(colls)
    n = sum(len(c.docs) for c in colls.values())
    return {"db": ctx.db, "collections": len([c for c in colls.values() if c.view is None]),
            "views": len([c for c in colls.values() if c.view is not None]), "objects": n, "dataSize": float(size),
            "storageSize": float(size), "indexes": sum(len(c.indexes) for c in colls.values()), "ok": 1.0}


# ------------------------------------------------------------------ indexes

def _index_name(keyspec):
    return "_".join("%s_%s" % (k, v if isinstance(v, str) else int(num(v)) if is_number(v) else v) for k, v in keyspec.items())


@command("createIndexes")
def cmd_createindexes(srv, ctx):
    name = coll_arg(ctx)
    specs = ctx.cmd.get("indexes")
    if not isinstance(specs, list) or not specs:
        raise CmdError(2, "Must specify at least one index to create")
    existing = srv.get_coll(ctx.db, name, ctx=ctx)
    if existing is not None and existing.view is not None:
        raise CmdError(166, "Namespace %s.%s is a view, not a collection" % (ctx.db, name))
    if ctx.txn is not None and existing is not None and (ctx.db, name) not in ctx.txn.created:
        raise CmdError(263, "Cannot create new indexes on existing collection %s.%s in a multi-document transaction." % (ctx.db, name))
    created = existing is None
    c = srv.get_coll(ctx.db, name, create=True, ctx=ctx)
    before = len(c.indexes)
    for spec in specs:
        ks = spec.get("key")
        if not isinstance(ks, dict) or not ks:
            raise CmdError(67, "Index keys cannot be empty.")
        iname = spec.get("name") or _index_name(ks)
        by_name = [ix for ix in c.indexes if ix["name"] == iname]
        by_key = [ix for ix in c.indexes if key(ix["key"]) == key(ks)]
        if by_name:
            if key(by_name[0]["key"]) != key(ks):
                raise CmdError(86, "An existing index has the same name as the requested index but different keys")
            if bool(by_name[0].get("unique")) != truthy(spec.get("unique")):
                raise CmdError(86, "An existing index has the same name as the requested index with different options")
            continue
        if by_key:
            if by_key[0]["name"] == "_id_" or bool(by_key[0].get("unique")) == truthy(spec.get("unique")):
                raise CmdError(85, "Index already exists with a different name: %s" % by_key[0]["name"])
        ix = {"v": 2, "key": dict(ks), "name": iname}
        for opt, v in spec.items():
            if opt in ("key", "name", "v", "ns"):
                continue
            ix[opt] = v
        if "unique" in ix:
            ix["unique"] = truthy(ix["unique"])
            if not ix["unique"]:
                del ix["unique"]
        if ix.get("unique"):
            dup = c.rebuild_uniq(ix)
            if dup is not None:
                kv = {f: (None if mql.get_path(dup, f) is MISSING else mql.get_path(dup, f)) for f in ks}
                e = DupKey(c, ix, kv)
                raise CmdError(11000, "Index build failed: " + e.message(), extra={"keyPattern": ix["key"], "keyValue": kv})
        c.indexes.append(ix)
    if len(c.indexes) > before:
        srv.record(ctx, Event("createIndexes", ctx.db, name, uuid=c.uuid,
                              opdesc={"indexes": [dict(ix) for ix in c.indexes[before:]]}))
    r = {"numIndexesBefore": before, "numIndexesAfter": len(c.indexes)}
    if created:
        r["createdCollectionAutomatically"] = True
    elif len(c.indexes) == before:
        r["note"] = "all indexes already exist"
        r["createdCollectionAutomatically"] = False
    else:
        r["createdCollectionAutomatically"] = False
    r["ok"] = 1.0
    return r


@command("listIndexes")
def cmd_listindexes(srv, ctx):
    name = coll_arg(ctx)
    c = srv.get_coll(ctx.db, name)
    if c is None:
        raise CmdError(26, "ns does not exist: %s.%s" % (ctx.db, name))
    if c.view is not None:
        raise CmdError(166, "Namespace %s.%s is a view, not a collection" % (ctx.db, name))
    bs = (ctx.cmd.get("cursor") or {}).get("batchSize")
    return srv.cursor_reply("%s.$cmd.listIndexes.%s" % (ctx.db, name), [dict(ix) for ix in c.indexes], bs)


@command("dropIndexes", "deleteIndexes")
def cmd_dropindexes(srv, ctx):
    name = coll_arg(ctx)
    c = srv.get_coll(ctx.db, name)
    if c is None:
        raise CmdError(26, "ns not found %s.%s" % (ctx.db, name))
    if c.view is not None:
        raise CmdError(166, "Namespace %s.%s is a view, not a collection" % (ctx.db, name))
    was = len(c.indexes)
    dropped = []
    which = ctx.cmd.get("index")
    targets = which if isinstance(which, list) else [which]
    for t in targets:
        if t == "*":
            dropped += c.indexes[1:]
            c.indexes = c.indexes[:1]
            c.uniq = {}
            continue
        if isinstance(t, dict):
            found = [ix for ix in c.indexes if key(ix["key"]) == key(t)]
        else:
            found = [ix for ix in c.indexes if ix["name"] == t]
        if not found:
            raise CmdError(27, "index not found with name [%s]" % (t,))
        if found[0]["name"] == "_id_":
            raise CmdError(72, "cannot drop _id index")
        c.indexes.remove(found[0])
        c.uniq.pop(found[0]["name"], None)
        dropped.append(found[0])
    if dropped:
        srv.emit([Event("dropIndexes", ctx.db, name, uuid=c.uuid, opdesc={"indexes": [dict(ix) for ix in dropped]})])
    return {"nIndexesWas": was, "ok": 1.0}


# ------------------------------------------------------------------ reads

def _scan(v, q, first=False):
    """(key, doc) pairs matching q, using the _id index for {_id: value} / {_id: {$eq|$in: ...}}."""
    idv = q.get("_id", MISSING) if isinstance(q, dict) and not v.computed else MISSING
    keys = None
    if idv is not MISSING:
        if isinstance(idv, dict) and len(idv) == 1 and next(iter(idv)) in ("$eq", "$in"):
            op, arg = next(iter(idv.items()))
            if op == "$eq" and not isinstance(arg, (list, dict, bsoncodec.Regex)) and arg is not None:
                keys = [key(arg)]
            elif op == "$in" and isinstance(arg, list) and all(
                    not isinstance(a, (list, dict, bsoncodec.Regex)) and a is not None for a in arg):
                keys = list(dict.fromkeys(key(a) for a in arg))
        elif not isinstance(idv, (list, dict, bsoncodec.Regex)) and idv is not None:
            keys = [key(idv)]
    if keys is None:
        if first:
            for k, d in v.docs.items():
                if mql.matches(d, q):
                    return [(k, d)]
            return []
        return [(k, d) for k, d in v.docs.items() if mql.matches(d, q)]
    out = []
    only_id = len(q) == 1  # the index lookup is the whole filter: no need to match again
    for k in keys:
        d = v.docs.get(k)
        if d is not None and (only_id or mql.matches(d, q)):
            out.append((k, d))
    if len(out) > 1:  # keep natural (insertion) order
        order = {k: i for i, k in enumerate(v.docs)}
        out.sort(key=lambda kd: order[kd[0]])
    return out


def _docs(srv, ctx, name, flt):
    mql.validate_filter(flt)
    v = srv.view(ctx, ctx.db, name)
    if v is None:
        return []
    return [d for _, d in _scan(v, flt)]


@command("find")
def cmd_find(srv, ctx):
    cmd = ctx.cmd
    name = coll_arg(ctx)
    flt = cmd.get("filter") or {}
    if not isinstance(flt, dict):
        raise CmdError(14, "filter must be an object")
    docs = _docs(srv, ctx, name, flt)
    if cmd.get("sort"):
        docs = mql.sort_docs(docs, cmd["sort"])
    skip = _int(cmd.get("skip"))
    if skip < 0:
        raise CmdError(51024, "skip must be >= 0")
    limit = _int(cmd.get("limit"))
    single = truthy(cmd.get("singleBatch"))
    if limit < 0:
        limit, single = -limit, True
    docs = docs[skip:]
    if limit:
        docs = docs[:limit]
    if cmd.get("projection"):
        docs = [mql.project(d, cmd["projection"]) for d in docs]
    bs = cmd.get("batchSize")
    if bs is not None and _int(bs) < 0:
        raise CmdError(51024, "BatchSize value must be non-negative")
    return srv.cursor_reply("%s.%s" % (ctx.db, name), docs, bs, single)


@command("getMore")
async def cmd_getmore(srv, ctx):
    cmd = ctx.cmd
    cid = _int(cmd.get("getMore"))
    cur = srv.cursors.get(cid)
    if cur is None:
        raise CmdError(43, "cursor id %d not found" % cid)
    bs = cmd.get("batchSize")
    bs = _int(bs) if bs is not None else None
    if bs is not None and bs <= 0:
        bs = None
    # The cursor is checked out: from here on an error kills it, and on a change stream cursor
    # a resumable code carries ResumableChangeStreamError (a failCommand error, raised before
    # checkout, does not).
    fp = srv.failpoints["failGetMoreAfterCursorCheckout"]
    try:
        if fp.mode != "off" and fp.fire():
            raise CmdError(_int(fp.data.get("errorCode", 1)),
                           "Failing getMore via 'failGetMoreAfterCursorCheckout' failpoint")
        if cur.is_cs:
            mt = cmd.get("maxTimeMS")
            return await srv.cs_getmore(cur, bs, _int(mt) if mt is not None else 1000)
    except CmdError as e:
        srv.cursors.pop(cid, None)
        if cur.is_cs and e.code in RESUMABLE_CS_CODES and "ResumableChangeStreamError" not in e.labels:
            e.labels.append("ResumableChangeStreamError")
        raise
    b = srv.batch(cur, bs)
    rid = cid
    if cur.pos >= len(cur.docs):
        srv.cursors.pop(cid, None)
        rid = 0
    return {"cursor": {"nextBatch": b, "id": Int64(rid), "ns": cur.ns}, "ok": 1.0}


@command("killCursors")
def cmd_killcursors(srv, ctx):
    killed, notfound = [], []
    for cid in ctx.cmd.get("cursors") or []:
        cid = int(num(cid))
        if srv.cursors.pop(cid, None) is not None:
            killed.append(Int64(cid))
        else:
            notfound.append(Int64(cid))
    return {"cursorsKilled": killed, "cursorsNotFound": notfound, "cursorsAlive": [], "cursorsUnknown": [], "ok": 1.0}


@command("count")
def cmd_count(srv, ctx):
    name = coll_arg(ctx)
    q = ctx.cmd.get("query") or {}
    if not q:
        v = srv.view(ctx, ctx.db, name)
        n = len(v.docs) if v is not None else 0
    else:
        n = len(_docs(srv, ctx, name, q))
    skip = _int(ctx.cmd.get("skip"))
    n = max(0, n - skip)
    limit = abs(_int(ctx.cmd.get("limit")))
    if limit:
        n = min(n, limit)
    return {"n": n, "ok": 1.0}


@command("distinct")
def cmd_distinct(srv, ctx):
    name = coll_arg(ctx)
    field = ctx.cmd.get("key")
    if not isinstance(field, str):
        raise CmdError(14, "key must be a string")
    seen, out = set(), []
    for d in _docs(srv, ctx, name, ctx.cmd.get("query") or {}):
        for v in mql.resolve(d, field.split(".")):
            if v is MISSING:
                continue
            for x in (v if isinstance(v, list) else [v]):
                k = key(x)
                if k not in seen:
                    seen.add(k)
                    out.append(x)
    out.sort(key=key)
    return {"values": out, "ok": 1.0}


@command("aggregate")
def cmd_aggregate(srv, ctx):
    cmd = ctx.cmd
    target = cmd["aggregate"]
    pipeline = cmd.get("pipeline")
    if not isinstance(pipeline, list):
        raise CmdError(14, "'pipeline' option must be specified as an array")
    if "cursor" not in cmd and not truthy(cmd.get("explain")):
        raise CmdError(9, "The 'cursor' option is required, except for aggregate with the explain argument")
    if truthy(cmd.get("explain")):
        raise CmdError(72, "explain is not supported by the ArraySync test server")
    bs = (cmd.get("cursor") or {}).get("batchSize")
    coll = None
    if isinstance(target, str):
        coll = coll_arg(ctx)
    elif not (is_number(target) and num(target) == 1):
        raise CmdError(73, "aggregate must be a collection name or 1")
    for i, st in enumerate(pipeline):
        if not isinstance(st, dict) or len(st) != 1:
            raise CmdError(40323, "A pipeline stage specification object must contain exactly one field.")
        if i > 0 and "$changeStream" in st:
            raise CmdError(40602, "$changeStream is only valid as the first stage in a pipeline.")
    if pipeline and "$changeStream" in pipeline[0]:
        return srv.cs_open(ctx, ctx.db, coll, pipeline[0]["$changeStream"], pipeline[1:], bs)
    if coll is None:
        raise CmdError(73, "{aggregate: 1} is only supported for $changeStream by the ArraySync test server")
    for st in pipeline:
        n = next(iter(st))
        if n in ("$out", "$merge", "$lookup", "$facet", "$graphLookup", "$collStats", "$indexStats", "$search"):
            raise CmdError(40324, "Unrecognized pipeline stage name: '%s' (not supported by the ArraySync test server)" % n)
    v = srv.view(ctx, ctx.db, coll)
    docs = list(v.docs.values()) if v is not None else []
    out = mql.run_pipeline(docs, pipeline)
    return srv.cursor_reply("%s.%s" % (ctx.db, coll), out, bs)


# ------------------------------------------------------------------ writes

def _write_error(i, e):
    if isinstance(e, DupKey):
        return {"index": i, "code": 11000, "keyPattern": e.ix["key"], "keyValue": e.kv, "errmsg": e.message()}
    if isinstance(e, MQLError):
        return {"index": i, "code": e.code, "errmsg": e.msg}
    return {"index": i, "code": e.code, "errmsg": e.msg}


def _is_fatal(e):
    return isinstance(e, CmdError) and e.code in (112, 251)


@command("insert")
def cmd_insert(srv, ctx):
    name = coll_arg(ctx)
    docs = ctx.cmd.get("documents")
    if not isinstance(docs, list):
        raise CmdError(14, "documents must be an array")
    ordered = truthy(ctx.cmd.get("ordered", True))
    v = srv.view(ctx, ctx.db, name, create=True, write=True)
    n, errs = 0, []
    for i, d in enumerate(docs):
        try:
            srv.do_insert_one(ctx, v, d)
            n += 1
        except (DupKey, CmdError, MQLError) as e:
            if _is_fatal(e):
                raise
            errs.append(_write_error(i, e))
            if ordered:
                break
    r = {"n": n}
    if errs:
        r["writeErrors"] = errs
    r["ok"] = 1.0
    return r


def _seed_from_query(q, out):
    for k, v in q.items():
        if k == "$and":
            for sub in v:
                _seed_from_query(sub, out)
        elif k.startswith("$"):
            continue
        elif isinstance(v, dict) and v and next(iter(v)).startswith("$"):
            if "$eq" in v:
                mql.set_path_simple(out, k, v["$eq"]) if "." not in k else _set_dotted(out, k, v["$eq"])
        else:
            _set_dotted(out, k, v)
    return out


def _set_dotted(doc, path, value):
    c, k = mql._walk_create(doc, path.split("."))
    mql._put(c, k, value)


def _is_replacement(u):
    return isinstance(u, dict) and not mql.is_update_operator_doc(u)


def _compute_update(old, u, is_insert=False):
    """-> (new doc, op type 'update'|'replace', updateDescription or None)."""
    if isinstance(u, list):
        new = mql.apply_pipeline_update(old, u)
        upd, rem, trunc = mql.diff_docs(old, new)
        return new, "update", {"updatedFields": upd, "removedFields": rem, "truncatedArrays": trunc}
    if not isinstance(u, dict):
        raise CmdError(14, "update must be an object or an array")
    if mql.is_update_operator_doc(u):
        for k in u:
            if not k.startswith("$"):
                raise CmdError(9, "Unknown modifier: %s" % k)
        new, res = mql.apply_update(old, u, is_insert)
        return new, "update", mql.update_description(old, new, res)
    for k in u:
        if k.startswith("$"):
            raise CmdError(2, "The dollar ($) prefixed field '%s' is not allowed in a replacement document" % k)
    if "_id" in u and "_id" in old and key(u["_id"]) != key(old["_id"]):
        raise CmdError(66, "After applying the update, the (immutable) field '_id' was found to have been altered to _id: %s" % (u["_id"],))
    new = {}
    if "_id" in old:
        new["_id"] = old["_id"]
    for k, v in u.items():
        if k != "_id" or "_id" not in new:
            new[k] = v
    return new, "replace", None


def _apply_one_update(srv, ctx, v, k, old, u):
    new, op, desc = _compute_update(old, u)
    if bsoncodec.encode(new) == bsoncodec.encode(old):
        return False, new
    check_doc_keys(new)
    srv.put_doc(v, k, new)
    pp = v.coll.pre_post()
    ev = Event(op, v.coll.db, v.coll.name, {"_id": new["_id"]}, post=new,
               pre=old if pp else None, desc=desc, has_post=pp, uuid=v.coll.uuid)
    if desc is not None:
        ev.disamb = _disambiguated_paths(desc, old, new)
    srv.record(ctx, ev)
    return True, new


def _disambiguated_paths(desc, old, new):
    """updateDescription.disambiguatedPaths (6.1+, showExpandedEvents): for each reported path
    with a numeric component that is a field name (not an array index), the path as a list of
    components, array indexes as integers. None when no path is ambiguous."""
    paths = [(p, new) for p in desc.get("updatedFields") or {}] + \
        [(p, old) for p in desc.get("removedFields") or []] + \
        [(t["field"], new) for t in desc.get("truncatedArrays") or []]
    out = {}
    for path, doc in paths:
        parts = path.split(".")
        if not any(p.isdigit() and p.isascii() for p in parts):
            continue
        comps, cur, ambiguous = [], doc, False
        for p in parts:
            if isinstance(cur, list) and p.isdigit() and p.isascii():
                i = int(p)
                comps.append(i)
                cur = cur[i] if i < len(cur) else None
            else:
                ambiguous = ambiguous or (p.isdigit() and p.isascii())
                comps.append(p)
                cur = cur.get(p) if isinstance(cur, dict) else None
        if ambiguous:
            out[path] = comps
    return out or None


def _upsert(srv, ctx, v, q, u):
    seed = _seed_from_query(q, {})
    if isinstance(u, list):
        new = mql.apply_pipeline_update(seed, u)
    elif mql.is_update_operator_doc(u):
        new, _ = mql.apply_update(seed, u, is_insert=True)
    else:
        new, _, _ = _compute_update(seed, u)
    if "_id" not in new:
        new = dict([("_id", ObjectId())] + list(new.items()))
    return srv.do_insert_one(ctx, v, new)


@command("update")
def cmd_update(srv, ctx):
    name = coll_arg(ctx)
    ups = ctx.cmd.get("updates")
    if not isinstance(ups, list):
        raise CmdError(14, "updates must be an array")
    ordered = truthy(ctx.cmd.get("ordered", True))
    v = srv.view(ctx, ctx.db, name, create=any(truthy(s.get("upsert")) for s in ups), write=True)
    n = nmod = 0
    upserted, errs = [], []
    for i, spec in enumerate(ups):
        try:
            q = spec.get("q") or {}
            u = spec.get("u")
            if spec.get("arrayFilters"):
                raise CmdError(2, "arrayFilters are not supported by the ArraySync test server")
            mql.validate_filter(q)
            if v is None:
                continue
            multi = truthy(spec.get("multi"))
            if multi and _is_replacement(u):
                raise CmdError(9, "multi update is not supported for replacement-style update")
            hits = _scan(v, q, first=not multi)
            if not multi:
                hits = hits[:1]
            if hits:
                for k, d in hits:
                    n += 1
                    changed, _ = _apply_one_update(srv, ctx, v, k, d, u)
                    nmod += 1 if changed else 0
            elif truthy(spec.get("upsert")):
                doc = _upsert(srv, ctx, v, q, u)
                n += 1
                upserted.append({"index": i, "_id": doc["_id"]})
        except (DupKey, CmdError, MQLError) as e:
            if _is_fatal(e):
                raise
            errs.append(_write_error(i, e))
            if ordered:
                break
    r = {"n": n}
    if upserted:
        r["upserted"] = upserted
    r["nModified"] = nmod
    if errs:
        r["writeErrors"] = errs
    r["ok"] = 1.0
    return r


def _delete_doc(srv, ctx, v, k, old):
    srv.del_doc(v, k)
    srv.record(ctx, Event("delete", v.coll.db, v.coll.name, {"_id": old["_id"]}, uuid=v.coll.uuid,
                          pre=old if v.coll.pre_post() else None))


@command("delete")
def cmd_delete(srv, ctx):
    name = coll_arg(ctx)
    dels = ctx.cmd.get("deletes")
    if not isinstance(dels, list):
        raise CmdError(14, "deletes must be an array")
    ordered = truthy(ctx.cmd.get("ordered", True))
    v = srv.view(ctx, ctx.db, name, write=True)
    n, errs = 0, []
    for i, spec in enumerate(dels):
        try:
            q = spec.get("q") or {}
            mql.validate_filter(q)
            limit = _int(spec.get("limit"))
            if v is None:
                continue
            hits = _scan(v, q, first=limit == 1)
            if limit == 1:
                hits = hits[:1]
            for k, d in hits:
                _delete_doc(srv, ctx, v, k, d)
                n += 1
        except (CmdError, MQLError) as e:
            if _is_fatal(e):
                raise
            errs.append(_write_error(i, e))
            if ordered:
                break
    r = {"n": n}
    if errs:
        r["writeErrors"] = errs
    r["ok"] = 1.0
    return r


@command("findAndModify", "findandmodify")
def cmd_findandmodify(srv, ctx):
    cmd = ctx.cmd
    name = ctx.cmd[ctx.name]
    if not isinstance(name, str):
        raise CmdError(73, "invalid collection name")
    check_coll_name(ctx.db, name)
    q = cmd.get("query") or {}
    mql.validate_filter(q)
    remove = truthy(cmd.get("remove"))
    u = cmd.get("update")
    if remove == (u is not None):
        raise CmdError(9, "Either an update or remove=true must be specified")
    upsert = truthy(cmd.get("upsert"))
    if remove and upsert:
        raise CmdError(9, "Cannot specify both an upsert and remove=true")
    v = srv.view(ctx, ctx.db, name, create=upsert, write=True)
    docs = [] if v is None else _scan(v, q)
    if cmd.get("sort"):
        order = mql.sort_docs([d for _, d in docs], cmd["sort"])
        ids = {id(d): k for k, d in docs}
        docs = [(ids[id(d)], d) for d in order]
    leo = {"n": 0}
    value = None
    if docs:
        k, old = docs[0]
        if remove:
            _delete_doc(srv, ctx, v, k, old)
            value = old
            leo = {"n": 1}
        else:
            _, new = _apply_one_update(srv, ctx, v, k, old, u)
            value = new if truthy(cmd.get("new")) else old
            leo = {"n": 1, "updatedExisting": True}
    elif upsert:
        new = _upsert(srv, ctx, v, q, u)
        leo = {"n": 1, "updatedExisting": False, "upserted": new["_id"]}
        value = new if truthy(cmd.get("new")) else None
    elif not remove:
        leo = {"n": 0, "updatedExisting": False}
    if value is not None and cmd.get("fields"):
        value = mql.project(value, cmd["fields"])
    return {"lastErrorObject": leo, "value": value, "ok": 1.0}

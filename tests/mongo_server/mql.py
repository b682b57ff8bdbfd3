"""Query language pieces: BSON ordering, filters, projection, sort, updates, aggregation."""
import copy
import math
import re
import decimal

from bson.objectid import ObjectId
from bson.int64 import Int64
from bson.decimal128 import Decimal128
from bson.timestamp import Timestamp
from bson.regex import Regex
from bson.binary import Binary
from bson.code import Code
from bson.min_key import MinKey
from bson.max_key import MaxKey

from bsoncodec import DateMS, Undefined, Symbol, DBPointer


class MQLError(Exception):
    def __init__(self, code, msg, name=None):
        Exception.__init__(self, msg)
        self.code = code
        self.msg = msg
        self.name = name


def bad_value(msg):
    return MQLError(2, msg, "BadValue")


MISSING = object()
_NEG_INF = float("-inf")


def is_number(v):
    t = type(v)
    return (t is int or t is float or t is Int64 or t is Decimal128) or (
        isinstance(v, (int, float)) and not isinstance(v, bool))


def num(v):
    """Python numeric value of a BSON number (Decimal128 -> decimal.Decimal)."""
    if type(v) is Decimal128:
        return v.to_decimal()
    return v


def _num_key(v):
    x = num(v)
    if isinstance(x, float):
        if x != x:
            return (3, _NEG_INF, 0)
    elif isinstance(x, decimal.Decimal):
        if x.is_nan():
            return (3, _NEG_INF, 0)
        if x.is_infinite():
            return (3, float(x), 1)
    return (3, x, 1)


def key(v):
    """Hashable total-order key implementing MongoDB's BSON comparison order.

    Equal keys <=> MongoDB considers the values equal (1 == 1.0 == NumberLong(1)).
    """
    t = type(v)
    if t is str:
        return (4, v)
    if t is bool:
        return (9, v)
    if t is int or t is float or t is Int64 or t is Decimal128:
        return _num_key(v)
    if t is dict:
        return (5, tuple((kk[0], k, kk) for k, kk in ((k, key(x)) for k, x in v.items())))
    if t is list:
        return (6, tuple(key(x) for x in v))
    if v is None or t is Undefined:
        return (2,)
    if t is ObjectId:
        return (8, v.binary)
    if t is DateMS:
        return (10, v.ms)
    if t is Binary:
        return (7, len(v), v.subtype, bytes(v))
    if t is Timestamp:
        return (11, v.time, v.inc)
    if t is Regex:
        return (12, v.pattern, str(v.flags))
    if t is MinKey:
        return (1,)
    if t is MaxKey:
        return (13,)
    if t is Symbol:
        return (4, str(v))
    if t is Code:
        return (14, str(v), key(v.scope) if v.scope is not None else ())
    if t is DBPointer:
        return (15, v.ns, v.oid.binary)
    if isinstance(v, bool):
        return (9, bool(v))
    if isinstance(v, (int, float)):
        return _num_key(v)
    if isinstance(v, dict):
        return (5, tuple((kk[0], k, kk) for k, kk in ((k, key(x)) for k, x in v.items())))
    if isinstance(v, str):
        return (4, str(v))
    return (99, repr(v))


def canon_rank(v):
    return key(v)[0]


# ---------------------------------------------------------------- paths

def split_path(path):
    return path.split(".")


def resolve(doc, parts):
    """All leaf values reached by a dotted path, with MongoDB array traversal.

    Returns a list; MISSING entries mark branches where the path ended.
    """
    out = []
    _resolve(doc, parts, 0, out)
    return out


def _resolve(cur, parts, i, out):
    if i == len(parts):
        out.append(cur)
        return
    p = parts[i]
    if isinstance(cur, dict):
        if p in cur:
            _resolve(cur[p], parts, i + 1, out)
        else:
            out.append(MISSING)
    elif isinstance(cur, list):
        hit = False
        if p.isdigit():
            idx = int(p)
            if idx < len(cur):
                _resolve(cur[idx], parts, i + 1, out)
                hit = True
        for e in cur:
            if isinstance(e, dict):
                _resolve(e, parts, i, out)
                hit = True
            # scalars inside arrays do not have sub fields
        if not hit:
            out.append(MISSING)
    else:
        out.append(MISSING)


def get_path(doc, path):
    """Plain (non-expanding) lookup for update/projection; MISSING if absent."""
    cur = doc
    for p in path.split("."):
        if isinstance(cur, dict):
            if p not in cur:
                return MISSING
            cur = cur[p]
        elif isinstance(cur, list) and p.isdigit():
            idx = int(p)
            if idx >= len(cur):
                return MISSING
            cur = cur[idx]
        else:
            return MISSING
    return cur


# ---------------------------------------------------------------- filters

_TYPE_ALIASES = {
    "double": 1, "string": 2, "object": 3, "array": 4, "binData": 5, "undefined": 6,
    "objectId": 7, "bool": 8, "date": 9, "null": 10, "regex": 11, "dbPointer": 12,
    "javascript": 13, "symbol": 14, "javascriptWithScope": 15, "int": 16,
    "timestamp": 17, "long": 18, "decimal": 19, "minKey": -1, "maxKey": 127,
}


def bson_type(v):
    t = type(v)
    if t is bool:
        return 8
    if t is int:
        return 16 if -2**31 <= v < 2**31 else 18
    return {str: 2, float: 1, dict: 3, list: 4, Binary: 5, Undefined: 6, ObjectId: 7,
            DateMS: 9, type(None): 10, Regex: 11, DBPointer: 12, Code: 13 if v is not None and getattr(v, "scope", None) is None else 15,
            Symbol: 14, Timestamp: 17, Int64: 18, Decimal128: 19, MinKey: -1, MaxKey: 127}.get(t, 3 if isinstance(v, dict) else 0)


def _compile_regex(pattern, options=""):
    if isinstance(pattern, Regex):
        options = options or (pattern.flags if isinstance(pattern.flags, str) else "")
        pattern = pattern.pattern
    flags = 0
    for c in options or "":
        flags |= {"i": re.I, "m": re.M, "s": re.S, "x": re.X}.get(c, 0)
    try:
        return re.compile(pattern, flags)
    except re.error as e:
        raise bad_value("Regular expression is invalid: %s" % e)


def _regex_match(rx, v):
    return isinstance(v, str) and rx.search(v) is not None


def _expand(values):
    """Leaf values plus elements of leaf arrays (MongoDB implicit array matching)."""
    for v in values:
        yield v
        if isinstance(v, list):
            for e in v:
                yield e


def _eq_match(values, target):
    if isinstance(target, Regex):
        rx = _compile_regex(target)
        return any(_regex_match(rx, v) for v in _expand(values) if v is not MISSING)
    tk = key(target)
    if tk == (2,):
        return any(v is MISSING or v is None or type(v) is Undefined for v in _expand(values))
    for v in _expand(values):
        if v is not MISSING and key(v) == tk:
            return True
    return False


def _cmp_match(values, target, op):
    tk = key(target)
    if tk[0] == 1 or tk[0] == 13:  # MinKey / MaxKey compare with everything
        same = lambda r: True
    else:
        same = lambda r: r == tk[0]
    for v in _expand(values):
        if v is MISSING:
            if tk == (2,) and op in ("$gte", "$lte"):
                return True
            continue
        vk = key(v)
        if not same(vk[0]):
            continue
        if op == "$gt" and vk > tk or op == "$gte" and vk >= tk or \
           op == "$lt" and vk < tk or op == "$lte" and vk <= tk:
            return True
    return False


def _is_operator_doc(d):
    return isinstance(d, dict) and len(d) > 0 and all(k.startswith("$") for k in d)


def _field_match(doc, path, cond):
    values = resolve(doc, split_path(path))
    if _is_operator_doc(cond):
        opts = cond.get("$options")
        for op, arg in cond.items():
            if op == "$options":
                continue
            if not _op_match(values, op, arg, opts, doc, path):
                return False
        return True
    return _eq_match(values, cond)


def _op_match(values, op, arg, opts, doc, path):
    if op == "$eq":
        return _eq_match(values, arg)
    if op == "$ne":
        return not _eq_match(values, arg)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return _cmp_match(values, arg, op)
    if op == "$in":
        if not isinstance(arg, list):
            raise bad_value("$in needs an array")
        return any(_eq_match(values, a) for a in arg)
    if op == "$nin":
        if not isinstance(arg, list):
            raise bad_value("$nin needs an array")
        return not any(_eq_match(values, a) for a in arg)
    if op == "$exists":
        present = any(v is not MISSING for v in values)
        return present if truthy(arg) else not present
    if op == "$regex":
        rx = _compile_regex(arg, opts)
        return any(_regex_match(rx, v) for v in _expand(values))
    if op == "$not":
        if isinstance(arg, Regex):
            return not _op_match(values, "$regex", arg, None, doc, path)
        if not _is_operator_doc(arg):
            raise bad_value("$not needs a regex or a document")
        o2 = arg.get("$options")
        return not all(_op_match(values, o, a, o2, doc, path) for o, a in arg.items() if o != "$options")
    if op == "$size":
        if not is_number(arg):
            raise bad_value("$size needs a number")
        return any(isinstance(v, list) and len(v) == num(arg) for v in values)
    if op == "$all":
        if not isinstance(arg, list):
            raise bad_value("$all needs an array")
        if not arg:
            return False
        for a in arg:
            if isinstance(a, dict) and "$elemMatch" in a:
                if not _op_match(values, "$elemMatch", a["$elemMatch"], None, doc, path):
                    return False
            elif not _eq_match(values, a):
                return False
        return True
    if op == "$elemMatch":
        if not isinstance(arg, dict):
            raise bad_value("$elemMatch needs an Object")
        value_level = _is_operator_doc(arg) and not any(k in ("$and", "$or", "$nor", "$expr") for k in arg)
        for v in values:
            if not isinstance(v, list):
                continue
            for e in v:
                if value_level:
                    if all(_op_match([e], o, a, arg.get("$options"), doc, path) for o, a in arg.items() if o != "$options"):
                        return True
                elif isinstance(e, dict) and matches(e, arg):
                    return True
        return False
    if op == "$type":
        wanted = arg if isinstance(arg, list) else [arg]
        codes = set()
        for w in wanted:
            if isinstance(w, str):
                if w == "number":
                    codes.update((1, 16, 18, 19))
                elif w in _TYPE_ALIASES:
                    codes.add(_TYPE_ALIASES[w])
                else:
                    raise bad_value("Unknown type name alias: %s" % w)
            else:
                codes.add(int(num(w)))
        for v in values:
            if v is MISSING:
                continue
            if bson_type(v) in codes:
                return True
            if isinstance(v, list) and any(bson_type(e) in codes for e in v):
                return True
        return False
    if op == "$mod":
        d, r = arg
        return any(is_number(v) and int(num(v)) % int(num(d)) == int(num(r)) for v in _expand(values))
    if op in ("$comment", "$hint"):
        return True
    raise bad_value("unknown operator: %s" % op)


def truthy(v):
    if v is None or v is MISSING or type(v) is Undefined:
        return False
    if isinstance(v, bool):
        return v
    if is_number(v):
        return num(v) != 0
    return True


def matches(doc, flt):
    if not flt:
        return True
    for k, cond in flt.items():
        if k == "$and":
            if not all(matches(doc, f) for f in cond):
                return False
        elif k == "$or":
            if not any(matches(doc, f) for f in cond):
                return False
        elif k == "$nor":
            if any(matches(doc, f) for f in cond):
                return False
        elif k in ("$comment",):
            continue
        elif k == "$expr":
            if _validating[0]:
                continue
            if not truthy(eval_expr(cond, doc)):
                return False
        elif k.startswith("$"):
            raise bad_value("unknown top level operator: %s" % k)
        elif not _field_match(doc, k, cond):
            return False
    return True


def validate_filter(flt):
    """Raise for malformed filters even when no document is scanned."""
    if flt is None:
        return
    if not isinstance(flt, dict):
        raise MQLError(14, "filter must be an object", "TypeMismatch")
    _validating[0] = True
    try:
        matches({}, flt)
    finally:
        _validating[0] = False


_validating = [False]


# ---------------------------------------------------------------- sort / projection

def sort_docs(docs, spec):
    if not spec:
        return list(docs)
    items = list(spec.items())
    out = list(docs)
    for field, direction in reversed(items):
        desc = num(direction) < 0 if is_number(direction) else False
        if isinstance(direction, dict):  # {$meta: ...}
            continue
        if field == "$natural":
            if desc:
                out.reverse()
            continue

        def k(d, field=field, desc=desc):
            vals = [v for v in resolve(d, split_path(field))]
            cands = []
            for v in vals:
                if v is MISSING:
                    cands.append((2,))
                elif isinstance(v, list):
                    if not v:
                        cands.append((0,) if not desc else (2,))  # empty array sorts lowest
                    cands.extend(key(e) for e in v)
                else:
                    cands.append(key(v))
            if not cands:
                return (2,)
            return max(cands) if desc else min(cands)
        out.sort(key=k, reverse=desc)
    return out


def project(doc, proj):
    if not proj:
        return doc
    include_id = True
    incl, excl = [], []
    computed = {}
    for f, v in proj.items():
        if f == "_id":
            if isinstance(v, (dict, str)) and not isinstance(v, bool):
                computed[f] = v
            else:
                include_id = truthy(v)
            continue
        if isinstance(v, (dict, str, list)):  # expressions; a plain string or array is a literal
            computed[f] = v
        elif truthy(v):
            incl.append(f)
        else:
            excl.append(f)
    if incl and excl:
        raise MQLError(31254, "Cannot do exclusion on field %s in inclusion projection" % excl[0], "Location31254")
    if excl or (not incl and not computed and not include_id):
        out = copy.deepcopy(doc)
        for f in excl:
            _unset_path(out, f.split("."))
        if not include_id:
            out.pop("_id", None)
        for f, e in computed.items():
            set_path_simple(out, f, eval_expr(e, doc))
        return out
    out = {}
    if include_id and "_id" in doc:
        out["_id"] = doc["_id"]
    for f in incl:
        _copy_path(doc, out, f.split("."))
    for f, e in computed.items():
        v = eval_expr(e, doc)
        if v is not MISSING:
            set_path_simple(out, f, v)
    return out


def _copy_path(src, dst, parts):
    if isinstance(src, list):
        return
    if not isinstance(src, dict) or parts[0] not in src:
        return
    v = src[parts[0]]
    if len(parts) == 1:
        dst[parts[0]] = copy.deepcopy(v)
        return
    if isinstance(v, dict):
        sub = dst.setdefault(parts[0], {})
        if isinstance(sub, dict):
            _copy_path(v, sub, parts[1:])
    elif isinstance(v, list):
        arr = dst.setdefault(parts[0], [])
        new = []
        for i, e in enumerate(v):
            if isinstance(e, dict):
                sub = arr[i] if i < len(arr) and isinstance(arr[i], dict) else {}
                _copy_path(e, sub, parts[1:])
                new.append(sub)
        dst[parts[0]] = new


def _unset_path(doc, parts):
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list):
            for e in cur:
                _unset_path(e, parts[parts.index(p):])
            return
        else:
            return
    if isinstance(cur, dict):
        cur.pop(parts[-1], None)
    elif isinstance(cur, list):
        for e in cur:
            if isinstance(e, dict):
                e.pop(parts[-1], None)


def set_path_simple(doc, path, value):
    parts = path.split(".")
    cur = doc
    for p in parts[:-1]:
        nxt = cur.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[p] = nxt
        cur = nxt
    cur[parts[-1]] = value


# ---------------------------------------------------------------- expressions (aggregation)

def eval_expr(e, doc, vars=None):
    if isinstance(e, str):
        if e.startswith("$$"):
            name, _, rest = e[2:].partition(".")
            if name == "ROOT" or name == "CURRENT":
                base = doc
            elif vars and name in vars:
                base = vars[name]
            else:
                raise MQLError(17276, "Use of undefined variable: %s" % name, "Location17276")
            return _expr_path(base, rest) if rest else base
        if e.startswith("$"):
            return _expr_path(doc, e[1:])
        return e
    if isinstance(e, list):
        return [eval_expr(x, doc, vars) for x in e]
    if isinstance(e, dict):
        if len(e) == 1:
            op, arg = next(iter(e.items()))
            if op.startswith("$"):
                return _eval_op(op, arg, doc, vars)
        return {k: eval_expr(v, doc, vars) for k, v in e.items()}
    return e


def _expr_path(doc, path):
    vals = doc
    for p in path.split("."):
        if isinstance(vals, dict):
            vals = vals.get(p, MISSING)
        elif isinstance(vals, list):
            vals = [x.get(p, MISSING) if isinstance(x, dict) else MISSING for x in vals]
            vals = [x for x in vals if x is not MISSING]
        else:
            return MISSING
        if vals is MISSING:
            return MISSING
    return vals


def _args(arg, doc, vars):
    if not isinstance(arg, list):
        arg = [arg]
    return [eval_expr(a, doc, vars) for a in arg]


_EXT = {}         # more expression operators: name -> fn(arg, doc, vars) (mql_ops.py)
_EXT_STAGES = {}  # more pipeline stages: name -> fn(docs, spec) (mql_ops.py)


def _eval_op(op, arg, doc, vars):
    ext = _EXT.get(op)
    if ext is not None:
        return ext(arg, doc, vars)
    if op == "$literal":
        return arg
    a = _args(arg, doc, vars)
    if op in ("$add", "$multiply"):
        if any(v is None or v is MISSING for v in a):
            return None
        if op == "$add" and any(type(v) is DateMS for v in a):
            return DateMS(sum(v.ms if type(v) is DateMS else int(num(v)) for v in a))
        acc = 0 if op == "$add" else 1
        for v in a:
            acc = arith(acc, v, "+" if op == "$add" else "*")
        return acc
    if op in ("$subtract", "$divide", "$mod"):
        x, y = a
        if x is None or y is None or x is MISSING or y is MISSING:
            return None
        if op == "$subtract":
            return arith(x, y, "-")
        if op == "$divide":
            return float(num(x)) / float(num(y))
        return arith(x, y, "%")
    if op in ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$cmp"):
        x, y = [(None if v is MISSING else v) for v in a]
        c = (key(x) > key(y)) - (key(x) < key(y))
        return {"$eq": c == 0, "$ne": c != 0, "$gt": c > 0, "$gte": c >= 0, "$lt": c < 0,
                "$lte": c <= 0, "$cmp": c}[op]
    if op == "$and":
        return all(truthy(v) for v in a)
    if op == "$or":
        return any(truthy(v) for v in a)
    if op == "$not":
        return not truthy(a[0])
    if op == "$concat":
        if any(v is None or v is MISSING for v in a):
            return None
        return "".join(a)
    if op == "$toUpper":
        return (a[0] or "").upper()
    if op == "$toLower":
        return (a[0] or "").lower()
    if op == "$size":
        if not isinstance(a[0], list):
            raise MQLError(17124, "The argument to $size must be an array", "Location17124")
        return len(a[0])
    if op == "$ifNull":
        for v in a:
            if v is not None and v is not MISSING:
                return v
        return None
    if op == "$cond":
        if isinstance(arg, dict):
            c = eval_expr(arg.get("if"), doc, vars)
            return eval_expr(arg.get("then") if truthy(c) else arg.get("else"), doc, vars)
        return a[1] if truthy(a[0]) else a[2]
    if op == "$arrayElemAt":
        arr, idx = a
        if not isinstance(arr, list):
            return None
        idx = int(num(idx))
        return arr[idx] if -len(arr) <= idx < len(arr) else MISSING
    if op == "$type":
        v = a[0]
        if v is MISSING:
            return "missing"
        rev = {c: n for n, c in _TYPE_ALIASES.items()}
        return rev.get(bson_type(v), "unknown")
    if op in ("$sum", "$avg", "$min", "$max"):
        vals = a[0] if len(a) == 1 and isinstance(a[0], list) else a
        return accumulate_all(op, vals)
    raise MQLError(168, "Unrecognized expression '%s'" % op, "InvalidPipelineOperator")


def arith(x, y, op):
    if not is_number(x) or not is_number(y):
        raise MQLError(16554, "only numbers are supported in arithmetic", "TypeMismatch")
    tx, ty = type(x), type(y)
    if Decimal128 in (tx, ty):
        xd, yd = decimal.Decimal(str(num(x))), decimal.Decimal(str(num(y)))
        r = {"+": xd + yd, "-": xd - yd, "*": xd * yd, "%": xd % yd}[op]
        return Decimal128(r)
    xv, yv = num(x), num(y)
    r = {"+": lambda: xv + yv, "-": lambda: xv - yv, "*": lambda: xv * yv,
         "%": lambda: math.fmod(xv, yv) if isinstance(xv, float) or isinstance(yv, float) else _imod(xv, yv)}[op]()
    if tx is float or ty is float:
        return float(r)
    r = int(r)
    if tx is Int64 or ty is Int64 or not (-2**31 <= r < 2**31):
        if not (-2**63 <= r < 2**63):
            return float(r)
        return Int64(r)
    return r


def _imod(x, y):
    """Integer remainder with the sign of the dividend (C's %), exact for 64-bit values."""
    if y == 0:
        raise MQLError(16610, "can't $mod by zero", "Location16610")
    r = abs(int(x)) % abs(int(y))
    return -r if x < 0 else r


def accumulate_all(op, vals):
    nums = [v for v in vals if is_number(v)]
    if op == "$sum":
        acc = 0
        for v in nums:
            acc = arith(acc, v, "+")
        return acc
    if op == "$avg":
        if not nums:
            return None
        tot = 0
        for v in nums:
            tot = arith(tot, v, "+")
        if type(tot) is Decimal128:
            return Decimal128(tot.to_decimal() / len(nums))
        return float(num(tot)) / len(nums)
    real = [v for v in vals if v is not None and v is not MISSING]
    if not real:
        return None
    return (min if op == "$min" else max)(real, key=key)


# ---------------------------------------------------------------- aggregation

def run_pipeline(docs, pipeline, lookup_coll=None):
    for stage in pipeline:
        if not isinstance(stage, dict) or len(stage) != 1:
            raise MQLError(40323, "A pipeline stage specification object must contain exactly one field.", "Location40323")
        name, spec = next(iter(stage.items()))
        if name == "$match":
            validate_filter(spec)
            docs = [d for d in docs if matches(d, spec)]
        elif name == "$sort":
            docs = sort_docs(docs, spec)
        elif name == "$limit":
            docs = list(docs)[:int(num(spec))]
        elif name == "$skip":
            docs = list(docs)[int(num(spec)):]
        elif name == "$project":
            docs = [project(d, spec) for d in docs]
        elif name in ("$addFields", "$set"):
            out = []
            for d in docs:
                n = copy.deepcopy(d)
                for f, e in spec.items():
                    set_path_simple(n, f, eval_expr(e, d))
                out.append(n)
            docs = out
        elif name == "$unset":
            fields = spec if isinstance(spec, list) else [spec]
            docs = [project(d, {f: 0 for f in fields}) for d in docs]
        elif name == "$count":
            docs = [{spec: len(list(docs))}]
        elif name == "$group":
            docs = _group(docs, spec)
        elif name == "$unwind":
            docs = _unwind(docs, spec)
        elif name == "$replaceRoot" or name == "$replaceWith":
            e = spec.get("newRoot") if name == "$replaceRoot" else spec
            docs = [eval_expr(e, d) for d in docs]
        elif name in _EXT_STAGES:
            docs = _EXT_STAGES[name](docs, spec)
        else:
            raise MQLError(40324, "Unrecognized pipeline stage name: '%s'" % name, "Location40324")
    return list(docs)


def _unwind(docs, spec):
    if isinstance(spec, str):
        spec = {"path": spec}
    path = spec["path"][1:]
    keep = truthy(spec.get("preserveNullAndEmptyArrays", False))
    idxf = spec.get("includeArrayIndex")
    out = []
    for d in docs:
        v = get_path(d, path)
        if isinstance(v, list) and v:
            for i, e in enumerate(v):
                n = copy.deepcopy(d)
                set_path_simple(n, path, e)
                if idxf:
                    n[idxf] = Int64(i)
                out.append(n)
        elif isinstance(v, list) or v is MISSING or v is None:
            if keep:
                n = copy.deepcopy(d)
                if idxf:
                    n[idxf] = None
                out.append(n)
        else:
            n = copy.deepcopy(d)
            if idxf:
                n[idxf] = None
            out.append(n)
    return out


def _group(docs, spec):
    if "_id" not in spec:
        raise MQLError(15955, "a group specification must include an _id", "Location15955")
    groups = {}
    order = []
    for d in docs:
        gid = eval_expr(spec["_id"], d)
        if gid is MISSING:
            gid = None
        k = key(gid)
        if k not in groups:
            groups[k] = (gid, {f: [] for f in spec if f != "_id"})
            order.append(k)
        for f, acc in spec.items():
            if f == "_id":
                continue
            (op, e), = acc.items()
            groups[k][1][f].append(eval_expr(e, d))
    out = []
    for k in order:
        gid, fields = groups[k]
        r = {"_id": gid}
        for f, acc in spec.items():
            if f == "_id":
                continue
            op = next(iter(acc))
            vals = fields[f]
            if op in ("$sum", "$avg", "$min", "$max"):
                r[f] = accumulate_all(op, [v for v in vals if v is not MISSING])
            elif op == "$first":
                r[f] = vals[0] if vals and vals[0] is not MISSING else None
            elif op == "$last":
                r[f] = vals[-1] if vals and vals[-1] is not MISSING else None
            elif op == "$push":
                r[f] = [v for v in vals if v is not MISSING]
            elif op == "$addToSet":
                seen, lst = set(), []
                for v in vals:
                    if v is MISSING:
                        continue
                    if key(v) not in seen:
                        seen.add(key(v))
                        lst.append(v)
                r[f] = lst
            elif op == "$count":
                r[f] = len(vals)
            else:
                raise MQLError(15952, "unknown group operator '%s'" % op, "Location15952")
        out.append(r)
    return out


# ---------------------------------------------------------------- updates

class UpdateResult(object):
    """Result of applying an update: new document plus modified paths for change events."""

    def __init__(self):
        self.paths = []      # [(path, kind)] kind: 'set' or 'unset'
        self.truncated = []  # [(path, newSize)]


def is_update_operator_doc(u):
    return isinstance(u, dict) and len(u) > 0 and next(iter(u)).startswith("$")


def _walk_create(doc, parts, create=True):
    """Return (container, lastkey) for a path, creating intermediate documents."""
    cur = doc
    for i, p in enumerate(parts[:-1]):
        if isinstance(cur, list):
            if not p.isdigit():
                raise MQLError(28, "Cannot create field '%s' in element {%s: %r}" % (p, parts[i - 1] if i else "", cur), "PathNotViable")
            idx = int(p)
            while len(cur) <= idx:
                if not create:
                    return None, None
                cur.append(None)
            if not isinstance(cur[idx], (dict, list)):
                if cur[idx] is not None or not create:
                    if not create:
                        return None, None
                    raise MQLError(28, "Cannot create field '%s' in element" % parts[i + 1], "PathNotViable")
                cur[idx] = {}
            cur = cur[idx]
        elif isinstance(cur, dict):
            if p not in cur:
                if not create:
                    return None, None
                cur[p] = {}
            elif not isinstance(cur[p], (dict, list)):
                if not create:
                    return None, None
                raise MQLError(28, "Cannot create field '%s' in element {%s: %r}" % (parts[i + 1], p, cur[p]), "PathNotViable")
            cur = cur[p]
    return cur, parts[-1]


def _get(container, k):
    if isinstance(container, list):
        if not k.isdigit():
            raise MQLError(28, "Cannot create field '%s' in array" % k, "PathNotViable")
        i = int(k)
        return container[i] if i < len(container) else MISSING
    return container.get(k, MISSING)


def _put(container, k, v):
    if isinstance(container, list):
        if not k.isdigit():
            raise MQLError(28, "Cannot create field '%s' in array" % k, "PathNotViable")
        i = int(k)
        while len(container) <= i:
            container.append(None)
        container[i] = v
    else:
        container[k] = v


def apply_update(doc, upd, is_insert=False, array_filters=None):
    """Apply an operator update to a deep copy of doc. Returns (newdoc, UpdateResult)."""
    new = copy.deepcopy(doc)
    res = UpdateResult()
    seen_paths = []
    for op, fields in upd.items():
        if not isinstance(fields, dict):
            raise MQLError(9, "Modifiers operate on fields but we found type %s instead" % type(fields).__name__, "FailedToParse")
        for path, arg in fields.items():
            if "$" in path.split(".") or any(p.startswith("$[") for p in path.split(".")):
                raise MQLError(2, "positional operators are not supported by this test server", "BadValue")
            for other in seen_paths:
                if other == path or other.startswith(path + ".") or path.startswith(other + "."):
                    raise MQLError(40, "Updating the path '%s' would create a conflict at '%s'" % (path, other), "ConflictingUpdateOperators")
            seen_paths.append(path)
            if path == "_id" and op not in ("$setOnInsert",) and not is_insert:
                if not (op == "$set" and key(arg) == key(doc.get("_id"))):
                    raise MQLError(66, "Performing an update on the path '_id' would modify the immutable field '_id'", "ImmutableField")
            _apply_op(new, op, path, arg, res, is_insert)
    return new, res


def _apply_op(doc, op, path, arg, res, is_insert):
    parts = path.split(".")
    if op == "$set":
        c, k = _walk_create(doc, parts)
        _put(c, k, copy.deepcopy(arg))
        res.paths.append((path, "set"))
    elif op == "$setOnInsert":
        if is_insert:
            c, k = _walk_create(doc, parts)
            _put(c, k, copy.deepcopy(arg))
            res.paths.append((path, "set"))
    elif op == "$unset":
        c, k = _walk_create(doc, parts, create=False)
        if c is None:
            return
        if isinstance(c, list):
            if k.isdigit() and int(k) < len(c):
                c[int(k)] = None
                res.paths.append((path, "set"))
        elif k in c:
            del c[k]
            res.paths.append((path, "unset"))
    elif op in ("$inc", "$mul"):
        if not is_number(arg):
            raise MQLError(14, "Cannot %s with non-numeric argument" % op[1:], "TypeMismatch")
        c, k = _walk_create(doc, parts)
        cur = _get(c, k)
        if cur is MISSING:
            nv = copy.deepcopy(arg) if op == "$inc" else arith(arg, 0, "*")
        elif not is_number(cur):
            raise MQLError(14, "Cannot apply %s to a value of non-numeric type" % op, "TypeMismatch")
        else:
            nv = arith(cur, arg, "+" if op == "$inc" else "*")
        _put(c, k, nv)
        res.paths.append((path, "set"))
    elif op in ("$min", "$max"):
        c, k = _walk_create(doc, parts)
        cur = _get(c, k)
        if cur is MISSING or (key(arg) < key(cur) if op == "$min" else key(arg) > key(cur)):
            _put(c, k, copy.deepcopy(arg))
            res.paths.append((path, "set"))
    elif op == "$currentDate":
        c, k = _walk_create(doc, parts)
        if isinstance(arg, dict) and arg.get("$type") == "timestamp":
            import time
            v = Timestamp(int(time.time()), 1)
        else:
            v = DateMS.now()
        _put(c, k, v)
        res.paths.append((path, "set"))
    elif op == "$rename":
        if not isinstance(arg, str):
            raise MQLError(2, "The 'to' field for $rename must be a string", "BadValue")
        c, k = _walk_create(doc, parts, create=False)
        if c is None or isinstance(c, list) or k not in c:
            return
        v = c.pop(k)
        res.paths.append((path, "unset"))
        c2, k2 = _walk_create(doc, arg.split("."))
        _put(c2, k2, v)
        res.paths.append((arg, "set"))
    elif op in ("$push", "$addToSet"):
        c, k = _walk_create(doc, parts)
        cur = _get(c, k)
        if cur is MISSING:
            cur = None
        elif not isinstance(cur, list):
            raise MQLError(2 if op == "$push" else 14, "The field '%s' must be an array but is of type %s" % (path, type(cur).__name__), "BadValue" if op == "$push" else "TypeMismatch")
        mods = isinstance(arg, dict) and "$each" in arg
        items = list(arg["$each"]) if mods else [arg]
        old_len = len(cur) if cur is not None else 0
        arr = cur if cur is not None else []
        plain_append = True
        if op == "$addToSet":
            ks = set(key(x) for x in arr)
            for it in items:
                if key(it) not in ks:
                    arr.append(copy.deepcopy(it))
                    ks.add(key(it))
        else:
            pos = arg.get("$position") if mods else None
            if pos is not None:
                p = int(num(pos))
                if p < 0:
                    p = max(0, len(arr) + p)
                arr[p:p] = copy.deepcopy(items)
                plain_append = p >= old_len
            else:
                arr.extend(copy.deepcopy(items))
            if mods and "$sort" in arg:
                sd = arg["$sort"]
                if isinstance(sd, dict):
                    arr[:] = sort_docs(arr, sd)
                else:
                    arr.sort(key=key, reverse=num(sd) < 0)
                plain_append = False
            if mods and "$slice" in arg:
                s = int(num(arg["$slice"]))
                arr[:] = arr[:s] if s >= 0 else arr[len(arr) + s:] if -s < len(arr) else arr
                if s >= 0 and len(arr) >= old_len:
                    pass
                else:
                    plain_append = False
        if cur is None:
            _put(c, k, arr)
            res.paths.append((path, "set"))
        elif plain_append and len(arr) >= old_len and op == "$push":
            for i in range(old_len, len(arr)):
                res.paths.append(("%s.%d" % (path, i), "set"))
            if len(arr) < old_len:
                res.paths.append((path, "set"))
        else:
            res.paths.append((path, "set"))
    elif op in ("$pull", "$pullAll"):
        c, k = _walk_create(doc, parts, create=False)
        if c is None:
            return
        cur = _get(c, k)
        if cur is MISSING:
            return
        if not isinstance(cur, list):
            raise MQLError(2, "Cannot apply $pull to a non-array value", "BadValue")
        if op == "$pullAll":
            ks = set(key(x) for x in arg)
            keep = [x for x in cur if key(x) not in ks]
        elif isinstance(arg, dict) and _is_operator_doc(arg):
            keep = [x for x in cur if not all(_op_match([x], o, a, arg.get("$options"), None, "") for o, a in arg.items() if o != "$options")]
        elif isinstance(arg, dict):
            keep = [x for x in cur if not (isinstance(x, dict) and matches(x, arg))]
        else:
            keep = [x for x in cur if not _eq_match([x], arg)]
        if len(keep) != len(cur):
            _put(c, k, keep)
            res.paths.append((path, "set"))
    elif op == "$pop":
        c, k = _walk_create(doc, parts, create=False)
        if c is None:
            return
        cur = _get(c, k)
        if cur is MISSING:
            return
        if not isinstance(cur, list):
            raise MQLError(14, "Path '%s' contains an element of non-array type" % path, "TypeMismatch")
        if not cur:
            return
        if num(arg) >= 1:
            cur.pop()
        else:
            cur.pop(0)
        res.paths.append((path, "set"))  # like MongoDB: $pop logs the whole array
    elif op == "$bit":
        c, k = _walk_create(doc, parts)
        cur = _get(c, k)
        v = 0 if cur is MISSING else cur
        for bop, operand in arg.items():
            o = int(num(operand))
            v2 = int(num(v))
            v2 = v2 & o if bop == "and" else v2 | o if bop == "or" else v2 ^ o
            v = Int64(v2) if type(v) is Int64 or type(operand) is Int64 else v2
        _put(c, k, v)
        res.paths.append((path, "set"))
    else:
        raise MQLError(9, "Unknown modifier: %s. Expected a valid update modifier or pipeline-style update specified as an array" % op, "FailedToParse")


def apply_pipeline_update(doc, pipeline):
    """Pipeline-style update ($set/$addFields/$unset/$project/$replaceRoot/$replaceWith)."""
    for st in pipeline:
        name = next(iter(st))
        if name not in ("$set", "$addFields", "$unset", "$project", "$replaceRoot", "$replaceWith"):
            raise MQLError(72, "%s is not allowed to be used within an update" % name, "InvalidOptions")
    out = run_pipeline([copy.deepcopy(doc)], pipeline)
    new = out[0]
    if "_id" in doc:
        if "_id" not in new:
            new = dict([("_id", doc["_id"])] + list(new.items()))
        elif key(new["_id"]) != key(doc["_id"]):
            raise MQLError(66, "Performing an update on the path '_id' would modify the immutable field '_id'", "ImmutableField")
    return new


def diff_docs(old, new, prefix=""):
    """Generic document diff like MongoDB's pipeline-update delta.

    Returns (updatedFields dict, removedFields list, truncatedArrays list).
    """
    upd, rem, trunc = {}, [], []
    for k, v in old.items():
        if k not in new:
            rem.append(prefix + k)
    for k, v in new.items():
        p = prefix + k
        if k not in old:
            upd[p] = v
            continue
        ov = old[k]
        if type(ov) is type(v) and isinstance(v, dict):
            if list(ov.keys()) == [x for x in v.keys() if x in ov] and key(ov) != key(v):
                u2, r2, t2 = diff_docs(ov, v, p + ".")
                upd.update(u2)
                rem.extend(r2)
                trunc.extend(t2)
            elif key(ov) != key(v):
                upd[p] = v
        elif type(ov) is list and type(v) is list:
            if key(ov) == key(v):
                continue
            if len(v) < len(ov):
                trunc.append({"field": p, "newSize": len(v)})
            for i, e in enumerate(v):
                if i >= len(ov) or type(ov[i]) is not type(e) or key(ov[i]) != key(e):
                    upd["%s.%d" % (p, i)] = e
        elif type(ov) is not type(v) or key(ov) != key(v):
            upd[p] = v
    return upd, rem, trunc


def update_description(old, new, res):
    """Build a change event updateDescription from the modified paths of an operator update."""
    # collapse: a path under another recorded path is covered by the parent
    recorded = []
    for p, kind in res.paths:
        recorded = [(q, kk) for q, kk in recorded if not q.startswith(p + ".") and q != p]
        if any(p.startswith(q + ".") for q, _ in recorded):
            continue
        recorded.append((p, kind))
    upd, rem = {}, []
    for p, kind in recorded:
        v = get_path(new, p)
        ov = get_path(old, p)
        if v is MISSING:
            if ov is not MISSING:
                rem.append(p)
        elif ov is MISSING or type(ov) is not type(v) or key(ov) != key(v):
            upd[p] = v  # fields set to an identical value are no-ops and not reported
    trunc = []
    for p, n in res.truncated:
        if any(p == q or p.startswith(q + ".") for q, _ in recorded):
            continue
        trunc.append({"field": p, "newSize": n})
    return {"updatedFields": upd, "removedFields": rem, "truncatedArrays": trunc}


def index_key_values(doc, keyspec):
    """Tuple of index key values (canonical keys) for a unique index. Missing -> null."""
    vals = []
    for f in keyspec:
        v = get_path(doc, f)
        if v is MISSING:
            res = [x for x in resolve(doc, split_path(f)) if x is not MISSING]
            v = res[0] if len(res) == 1 else (res if res else None)
        vals.append(key(v))
    return tuple(vals)


import mql_ops  # noqa: E402,F401  (registers the operators and stages of mql_ops.py)

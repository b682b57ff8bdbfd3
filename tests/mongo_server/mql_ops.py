"""More aggregation expression operators (MongoDB 6.0 semantics) and the $sample stage.

Registered into mql.py (its _EXT / _EXT_STAGES tables), which looks them up before its own
operators, so the control-flow operators here ($cond, $switch, $ifNull, $and, $or, $let, $map,
$filter, $reduce) evaluate lazily as MongoDB does (a branch not taken is never evaluated, so a
conversion in it cannot fail the pipeline).

Besides being generally useful, these are what `arraysync verify` sends (adapters/mongodb/
mongo_verify.c): $toHashedIndexKey (MongoDB's hashed-index hash, src/mongo/db/hasher.cpp: md5
over int32 0 (seed), then per element int32 canonical type, [field name + NUL inside documents],
the value bytes; numbers as the int64 of safeNumberLongForHash; the first 8 digest bytes read as
a little-endian int64), $toString and the $convert family (a double prints as C's "%g", as
MongoDB before 8.0 does: six significant digits; NaN, Infinity, -Infinity, -0 specially),
$strLenBytes, $indexOfBytes, $regexMatch, $replaceAll, $rtrim/$ltrim/$trim, $objectToArray,
$arrayToObject, $sortArray, $concatArrays, $getField, $in, $abs, $log, $floor, $ceil, $trunc,
$pow, $tsSecond, $tsIncrement, $isArray.
"""
import datetime
import decimal
import hashlib
import math
import random
import re
import struct

from bson.binary import Binary
from bson.code import Code
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp

import mql
from mql import MISSING, MQLError, eval_expr, truthy, key, is_number, num, bson_type
from bsoncodec import DateMS, Undefined, Symbol, DBPointer

_TYPE_NAMES = {c: n for n, c in mql._TYPE_ALIASES.items()}
_INT64_MIN, _INT64_MAX = -2 ** 63, 2 ** 63 - 1


def type_name(v):
    if v is MISSING:
        return "missing"
    return _TYPE_NAMES.get(bson_type(v), "unknown")


def nullish(v):
    return v is None or v is MISSING or type(v) is Undefined


def ev(e, doc, vars):
    return eval_expr(e, doc, vars)


def _spec(arg, op, fields, required=()):
    if not isinstance(arg, dict):
        raise MQLError(40469 if op == "$let" else 16878, "%s only supports an object as its argument" % op,
                       "Location40469")
    for k in arg:
        if k not in fields:
            raise MQLError(16879, "Unrecognized parameter to %s: %s" % (op, k), "Location16879")
    for k in required:
        if k not in arg:
            raise MQLError(16880, "Missing '%s' parameter to %s" % (k, op), "Location16880")
    return arg


def _with(vars, **kv):
    n = dict(vars or {})
    n.update(kv)
    return n


# ---------------------------------------------------------------- control flow (lazy)

def op_cond(arg, doc, vars):
    if isinstance(arg, dict):
        _spec(arg, "$cond", ("if", "then", "else"), ("if", "then", "else"))
        c, t, f = arg["if"], arg["then"], arg["else"]
    elif isinstance(arg, list) and len(arg) == 3:
        c, t, f = arg
    else:
        raise MQLError(16020, "Expression $cond takes exactly 3 arguments.", "Location16020")
    return ev(t if truthy(ev(c, doc, vars)) else f, doc, vars)


def op_switch(arg, doc, vars):
    _spec(arg, "$switch", ("branches", "default"), ("branches",))
    br = arg["branches"]
    if not isinstance(br, list):
        raise MQLError(40061, "$switch expected an array for 'branches'", "Location40061")
    for b in br:
        if not isinstance(b, dict) or "case" not in b or "then" not in b:
            raise MQLError(40064, "$switch requires each branch have a 'case' expression", "Location40064")
        if truthy(ev(b["case"], doc, vars)):
            return ev(b["then"], doc, vars)
    if "default" not in arg:
        raise MQLError(40066, "$switch could not find a matching branch for an input, and no default was specified.",
                       "Location40066")
    return ev(arg["default"], doc, vars)


def op_ifnull(arg, doc, vars):
    if not isinstance(arg, list) or len(arg) < 2:
        raise MQLError(1257300, "$ifNull needs at least two arguments", "Location1257300")
    for e in arg:
        v = ev(e, doc, vars)
        if not nullish(v):
            return v
    return None if v is MISSING else v


def op_and(arg, doc, vars):
    for e in (arg if isinstance(arg, list) else [arg]):
        if not truthy(ev(e, doc, vars)):
            return False
    return True


def op_or(arg, doc, vars):
    for e in (arg if isinstance(arg, list) else [arg]):
        if truthy(ev(e, doc, vars)):
            return True
    return False


def _check_var(name):
    if not isinstance(name, str) or not name or not (name[0].islower() or ord(name[0]) > 127) or \
            not all(c.isalnum() or c == "_" or ord(c) > 127 for c in name):
        raise MQLError(16867, "'%s' starts with an invalid character for a user variable name" % name,
                       "Location16867")


def op_let(arg, doc, vars):
    _spec(arg, "$let", ("vars", "in"), ("vars", "in"))
    if not isinstance(arg["vars"], dict):
        raise MQLError(10065, "invalid parameter: expected an object (vars)", "Location10065")
    new = {}
    for k, e in arg["vars"].items():
        _check_var(k)
        new[k] = ev(e, doc, vars)  # in the outer scope
    return ev(arg["in"], doc, _with(vars, **new))


def _array_input(v, op, code):
    if nullish(v):
        return None
    if not isinstance(v, list):
        raise MQLError(code, "input to %s must be an array not %s" % (op, type_name(v)), "Location%d" % code)
    return v


def op_map(arg, doc, vars):
    _spec(arg, "$map", ("input", "as", "in"), ("input", "in"))
    name = arg.get("as", "this")
    _check_var(name)
    arr = _array_input(ev(arg["input"], doc, vars), "$map", 16883)
    if arr is None:
        return None
    out = []
    for x in arr:
        v = ev(arg["in"], doc, _with(vars, **{name: x}))
        out.append(None if v is MISSING else v)
    return out


def op_filter(arg, doc, vars):
    _spec(arg, "$filter", ("input", "as", "cond", "limit"), ("input", "cond"))
    name = arg.get("as", "this")
    _check_var(name)
    arr = _array_input(ev(arg["input"], doc, vars), "$filter", 28651)
    if arr is None:
        return None
    limit = ev(arg["limit"], doc, vars) if "limit" in arg else None
    out = []
    for x in arr:
        if limit is not None and len(out) >= int(num(limit)):
            break
        if truthy(ev(arg["cond"], doc, _with(vars, **{name: x}))):
            out.append(x)
    return out


def op_reduce(arg, doc, vars):
    _spec(arg, "$reduce", ("input", "initialValue", "in"), ("input", "initialValue", "in"))
    arr = _array_input(ev(arg["input"], doc, vars), "$reduce", 40080)
    if arr is None:
        return None
    acc = ev(arg["initialValue"], doc, vars)
    for x in arr:
        acc = ev(arg["in"], doc, _with(vars, value=acc, this=x))
    return acc


# ---------------------------------------------------------------- arguments

def _argv(arg, doc, vars, op, n=None, lo=None, hi=None):
    a = arg if isinstance(arg, list) else [arg]
    if n is not None and len(a) != n:
        raise MQLError(16020, "Expression %s takes exactly %d arguments. %d were passed in." % (op, n, len(a)),
                       "Location16020")
    if lo is not None and not (lo <= len(a) <= hi):
        raise MQLError(16020, "Expression %s takes at least %d arguments, and at most %d. %d were passed in."
                       % (op, lo, hi, len(a)), "Location16020")
    return [ev(x, doc, vars) for x in a]


# ---------------------------------------------------------------- strings

def op_strlenbytes(arg, doc, vars):
    s, = _argv(arg, doc, vars, "$strLenBytes", 1)
    if not isinstance(s, str):
        raise MQLError(34473, "$strLenBytes requires a string argument, found: %s" % type_name(s), "Location34473")
    return len(s.encode("utf-8"))


def op_strlencp(arg, doc, vars):
    s, = _argv(arg, doc, vars, "$strLenCP", 1)
    if not isinstance(s, str):
        raise MQLError(34471, "$strLenCP requires a string argument, found: %s" % type_name(s), "Location34471")
    return len(s)


def op_indexofbytes(arg, doc, vars):
    a = _argv(arg, doc, vars, "$indexOfBytes", lo=2, hi=4)
    s, sub = a[0], a[1]
    if nullish(s):
        return None
    if not isinstance(s, str):
        raise MQLError(40091, "$indexOfBytes requires a string as the first argument, found: %s" % type_name(s),
                       "Location40091")
    if not isinstance(sub, str):
        raise MQLError(40092, "$indexOfBytes requires a string as the second argument, found: %s"
                       % type_name(sub), "Location40092")
    b, t = s.encode("utf-8"), sub.encode("utf-8")
    start = int(num(a[2])) if len(a) > 2 else 0
    end = int(num(a[3])) if len(a) > 3 else len(b)
    if start < 0 or end < 0:
        raise MQLError(40097, "$indexOfBytes requires a nonnegative start index", "Location40097")
    return b.find(t, start, end)


def _regex_args(arg, doc, vars, op):
    _spec(arg, op, ("input", "regex", "options"), ("input", "regex"))
    s = ev(arg["input"], doc, vars)
    rx = ev(arg["regex"], doc, vars)
    opts = ev(arg["options"], doc, vars) if "options" in arg else ""
    if isinstance(rx, Regex):
        if opts and rx.flags:
            raise MQLError(51075, "%s: found regex option(s) specified in both 'regex' and 'option' fields" % op,
                           "Location51075")
        opts = opts or (rx.flags if isinstance(rx.flags, str) else "")
        rx = rx.pattern
    if nullish(rx):
        return s, None
    if not isinstance(rx, str):
        raise MQLError(51105, "%s needs 'regex' to be of type string or regex" % op, "Location51105")
    if not nullish(s) and not isinstance(s, str):
        raise MQLError(51104, "%s needs 'input' to be of type string" % op, "Location51104")
    flags = 0
    for c in opts or "":
        flags |= {"i": re.I, "m": re.M, "s": re.S, "x": re.X}.get(c, 0)
    return s, re.compile(rx, flags)


def op_regexmatch(arg, doc, vars):
    s, rx = _regex_args(arg, doc, vars, "$regexMatch")
    if rx is None or nullish(s):
        return False
    return rx.search(s) is not None


def op_replaceall(arg, doc, vars):
    _spec(arg, "$replaceAll", ("input", "find", "replacement"), ("input", "find", "replacement"))
    vals = [ev(arg[k], doc, vars) for k in ("input", "find", "replacement")]
    for k, v in zip(("input", "find", "replacement"), vals):
        if not nullish(v) and not isinstance(v, str):
            raise MQLError(51746, "$replaceAll requires that '%s' be a string, found: %s" % (k, type_name(v)),
                           "Location51746")
    if any(nullish(v) for v in vals):
        return None
    s, f, r = vals
    if f == "":
        # MongoDB inserts the replacement around every code point
        return r + r.join(s) + r if s else r
    return s.replace(f, r)


def _trim(op, left, right):
    ws = "\u0000 \t\n\v\f\r\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"

    def f(arg, doc, vars):
        _spec(arg, op, ("input", "chars"), ("input",))
        s = ev(arg["input"], doc, vars)
        chars = ev(arg["chars"], doc, vars) if "chars" in arg else ws
        if nullish(s) or nullish(chars):
            return None
        if not isinstance(s, str):
            raise MQLError(50699, "%s requires its input to be a string, got %s" % (op, type_name(s)), "Location50699")
        if not isinstance(chars, str):
            raise MQLError(50700, "%s requires 'chars' to be a string, got %s" % (op, type_name(chars)),
                           "Location50700")
        if left:
            s = s.lstrip(chars)
        if right:
            s = s.rstrip(chars)
        return s
    return f


# ---------------------------------------------------------------- objects and arrays

def op_objecttoarray(arg, doc, vars):
    o, = _argv(arg, doc, vars, "$objectToArray", 1)
    if nullish(o):
        return None
    if not isinstance(o, dict):
        raise MQLError(40390, "$objectToArray requires a document input, found: %s" % type_name(o),
                       "Location40390")
    return [{"k": k, "v": v} for k, v in o.items()]


def op_arraytoobject(arg, doc, vars):
    a, = _argv(arg, doc, vars, "$arrayToObject", 1)
    if nullish(a):
        return None
    if not isinstance(a, list):
        raise MQLError(40386, "$arrayToObject requires an array input, found: %s" % type_name(a),
                       "Location40386")
    out = {}
    for e in a:
        if isinstance(e, dict) and set(e) == {"k", "v"}:
            k, v = e["k"], e["v"]
        elif isinstance(e, list) and len(e) == 2:
            k, v = e
        else:
            raise MQLError(40398, "Unrecognised input type format for $arrayToObject", "Location40398")
        if not isinstance(k, str):
            raise MQLError(40394, "$arrayToObject requires a string as the key", "Location40394")
        out[k] = v
    return out


def op_sortarray(arg, doc, vars):
    _spec(arg, "$sortArray", ("input", "sortBy"), ("input", "sortBy"))
    a = ev(arg["input"], doc, vars)
    by = arg["sortBy"]
    if nullish(a):
        return None
    if not isinstance(a, list):
        raise MQLError(2942504, "The input argument to $sortArray must be an array, but was of type: %s"
                       % type_name(a), "Location2942504")
    out = list(a)
    if is_number(by):
        return sorted(out, key=key, reverse=num(by) < 0)
    if not isinstance(by, dict) or not by:
        raise MQLError(2942505, "$sortArray sortBy must be a number or a document", "Location2942505")
    for f, d in reversed(list(by.items())):  # stable sorts, last field first
        def k(x, f=f):
            v = mql._expr_path(x, f) if isinstance(x, dict) else MISSING
            return key(None if v is MISSING else v)
        out.sort(key=k, reverse=num(d) < 0)
    return out


def op_concatarrays(arg, doc, vars):
    vals = _argv(arg, doc, vars, "$concatArrays")
    out = []
    for v in vals:
        if nullish(v):
            return None
        if not isinstance(v, list):
            raise MQLError(28664, "$concatArrays only supports arrays, not %s" % type_name(v), "Location28664")
        out.extend(v)
    return out


def op_in(arg, doc, vars):
    x, arr = _argv(arg, doc, vars, "$in", 2)
    if not isinstance(arr, list):
        raise MQLError(40081, "$in requires an array as a second argument, found: %s" % type_name(arr),
                       "Location40081")
    kx = key(None if x is MISSING else x)
    return any(key(e) == kx for e in arr)


def op_isarray(arg, doc, vars):
    v, = _argv(arg, doc, vars, "$isArray", 1)
    return isinstance(v, list)


def op_getfield(arg, doc, vars):
    if isinstance(arg, dict) and "field" in arg:
        _spec(arg, "$getField", ("field", "input"), ("field",))
        field = arg["field"]
        inp = ev(arg["input"], doc, vars) if "input" in arg else doc
    else:
        field, inp = arg, doc
    if isinstance(field, dict) and set(field) == {"$literal"}:
        field = field["$literal"]
    if not isinstance(field, str):
        raise MQLError(5654602, "$getField requires 'field' to evaluate to type String", "Location5654602")
    if nullish(inp):
        return None
    if not isinstance(inp, dict):
        raise MQLError(3041705, "$getField requires 'input' to evaluate to type Object", "Location3041705")
    return inp.get(field, MISSING)


# ---------------------------------------------------------------- arithmetic

def _num_arg(v, op):
    if nullish(v):
        return None
    if not is_number(v):
        raise MQLError(28765, "%s only supports numeric types, not %s" % (op, type_name(v)), "Location28765")
    return v


def op_abs(arg, doc, vars):
    v, = _argv(arg, doc, vars, "$abs", 1)
    v = _num_arg(v, "$abs")
    if v is None:
        return None
    if type(v) is Decimal128:
        return Decimal128(abs(v.to_decimal()))
    if isinstance(v, float):
        return abs(v)
    if int(v) == _INT64_MIN:
        raise MQLError(28680, "can't take $abs of long long min", "Location28680")
    r = abs(int(v))
    if type(v) is Int64 or r >= 2 ** 31:
        return Int64(r)
    return r


def _round_op(op, fn, dround):
    def f(arg, doc, vars):
        v, = _argv(arg, doc, vars, op, 1)
        v = _num_arg(v, op)
        if v is None:
            return None
        if type(v) is Decimal128:
            d = v.to_decimal()
            return Decimal128(d if not d.is_finite() else d.to_integral_value(rounding=dround))
        if isinstance(v, float):
            return float(fn(v)) if math.isfinite(v) else v
        return v
    return f


def op_log(arg, doc, vars):
    x, b = _argv(arg, doc, vars, "$log", 2)
    if nullish(x) or nullish(b):
        return None
    if not is_number(x) or not is_number(b):
        raise MQLError(28756, "$log's argument must be numeric, not %s" % type_name(x if not is_number(x) else b),
                       "Location28756")
    if type(x) is Decimal128 or type(b) is Decimal128:
        xd, bd = decimal.Decimal(str(num(x))), decimal.Decimal(str(num(b)))
        if xd <= 0:
            raise MQLError(28766, "$log's argument must be a positive number, but is %s" % x, "Location28766")
        return Decimal128(xd.ln() / bd.ln())
    xf, bf = float(num(x)), float(num(b))
    if not (xf > 0):
        raise MQLError(28758, "$log's argument must be a positive number, but is %s" % mql_repr(xf), "Location28758")
    if not (bf > 0) or bf == 1:
        raise MQLError(28759, "$log's base must be a positive number not equal to 1, but is %s" % mql_repr(bf),
                       "Location28759")
    return math.log(xf) / math.log(bf)


def mql_repr(x):
    return format_double(x)


def _pow_float(b, e):
    try:
        return math.pow(b, e)
    except OverflowError:
        return math.inf if b > 0 or float(e).is_integer() and int(e) % 2 == 0 else -math.inf
    except ValueError:
        return math.nan


def op_pow(arg, doc, vars):
    b, e = _argv(arg, doc, vars, "$pow", 2)
    if nullish(b) or nullish(e):
        return None
    if not is_number(b) or not is_number(e):
        raise MQLError(28762, "$pow's base must be numeric, not %s" % type_name(b if not is_number(b) else e),
                       "Location28762")
    if type(b) is Decimal128 or type(e) is Decimal128:
        return Decimal128(decimal.Decimal(str(num(b))) ** decimal.Decimal(str(num(e))))
    if isinstance(b, float) or isinstance(e, float):
        return _pow_float(float(num(b)), float(num(e)))
    bi, ei = int(b), int(e)
    if bi == 0 and ei < 0:
        raise MQLError(28764, "$pow cannot take a base of 0 and a negative exponent", "Location28764")
    if ei < 0:
        if bi == 1:
            return Int64(1) if type(b) is Int64 or type(e) is Int64 else 1
        if bi == -1:
            r = 1 if ei % 2 == 0 else -1
            return Int64(r) if type(b) is Int64 or type(e) is Int64 else r
        return _pow_float(float(bi), float(ei))
    r = bi ** ei
    wide = type(b) is Int64 or type(e) is Int64
    if not wide and -2 ** 31 <= r < 2 ** 31:
        return r
    if _INT64_MIN <= r <= _INT64_MAX:
        return Int64(r)
    return _pow_float(float(bi), float(ei))


def _ts_part(op, which):
    def f(arg, doc, vars):
        v, = _argv(arg, doc, vars, op, 1)
        if nullish(v):
            return None
        if type(v) is not Timestamp:
            raise MQLError(5687301, "%s expects argument of type timestamp but received %s" % (op, type_name(v)),
                           "Location5687301")
        return Int64(v.time if which == "t" else v.inc)
    return f


# ---------------------------------------------------------------- conversions

def format_double(x):
    """MongoDB (< 8.0) double -> string: NaN, Infinity, -Infinity, -0 specially, else C's %g."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "-Infinity" if x < 0 else "Infinity"
    if x == 0 and math.copysign(1.0, x) < 0:
        return "-0"
    return "%g" % x


def format_date(ms):
    d = datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=ms)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (d.year, d.month, d.day, d.hour, d.minute, d.second,
                                                    d.microsecond // 1000)


_CONV_TYPES = {"double": 1, "string": 2, "objectId": 7, "bool": 8, "date": 9, "int": 16, "long": 18,
               "decimal": 19}


class _ConvError(Exception):
    pass


def _fail(msg):
    raise _ConvError(msg)


def _to_integral(v, lo, hi, what):
    if isinstance(v, float):
        if math.isnan(v):
            _fail("Attempt to convert NaN value to integer type in $convert with no onError value")
        if math.isinf(v):
            _fail("Attempt to convert infinity value to integer type in $convert with no onError value")
        if not (lo <= math.trunc(v) <= hi):
            _fail("Conversion would overflow target type in $convert with no onError value: %s" % format_double(v))
        return math.trunc(v)
    if type(v) is Decimal128:
        d = v.to_decimal()
        if d.is_nan():
            _fail("Attempt to convert NaN value to integer type in $convert with no onError value")
        if d.is_infinite():
            _fail("Attempt to convert infinity value to integer type in $convert with no onError value")
        i = int(d.to_integral_value(rounding=decimal.ROUND_DOWN))
        if not (lo <= i <= hi):
            _fail("Conversion would overflow target type in $convert with no onError value: %s" % str(v))
        return i
    i = int(v)
    if not (lo <= i <= hi):
        _fail("Conversion would overflow target type in $convert with no onError value: %d" % i)
    return i


def _parse_int_string(s, lo, hi):
    if not re.fullmatch(r"-?[0-9]+", s):
        _fail("Failed to parse number '%s' in $convert with no onError value: Did not consume whole string." % s)
    i = int(s)
    if not (lo <= i <= hi):
        _fail("Failed to parse number '%s' in $convert with no onError value: Overflow" % s)
    return i


def convert(v, to):
    """Converts v (not null/missing) to BSON type code `to`; raises _ConvError."""
    t = bson_type(v)
    tn = _TYPE_NAMES.get(t, "unknown")
    if to == 2:  # string
        if t == 1:
            return format_double(v)
        if t in (16, 18):
            return str(int(v))
        if t == 19:
            return str(v)
        if t in (2, 14):
            return str(v)
        if t == 8:
            return "true" if v else "false"
        if t == 7:
            return str(v)
        if t == 9:
            return format_date(v.ms)
    elif to == 18 or to == 16:  # long / int
        lo, hi = (_INT64_MIN, _INT64_MAX) if to == 18 else (-2 ** 31, 2 ** 31 - 1)
        if t in (1, 16, 18, 19):
            i = _to_integral(v, lo, hi, "long")
        elif t == 8:
            i = 1 if v else 0
        elif t == 9 and to == 18:
            i = v.ms
        elif t == 2:
            i = _parse_int_string(v, lo, hi)
        else:
            i = None
        if i is not None:
            return Int64(i) if to == 18 else int(i)
    elif to == 1:  # double
        if t == 1:
            return v
        if t in (16, 18):
            return float(int(v))
        if t == 19:
            return float(v.to_decimal())
        if t == 8:
            return 1.0 if v else 0.0
        if t == 9:
            return float(v.ms)
        if t == 2:
            s = v
            if re.fullmatch(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", s):
                return float(s)
            if s in ("NaN", "nan", "Infinity", "inf", "-Infinity", "-inf"):
                return float(s.replace("Infinity", "inf"))
            _fail("Failed to parse number '%s' in $convert with no onError value: Did not consume whole string." % s)
    elif to == 19:  # decimal
        if t == 1:
            if not math.isfinite(v):
                return Decimal128(decimal.Decimal(repr(v).replace("inf", "Infinity").replace("nan", "NaN")))
            return Decimal128(decimal.Decimal("%.14e" % v))  # 15 significant digits, as MongoDB
        if t in (16, 18):
            return Decimal128(str(int(v)))
        if t == 19:
            return v
        if t == 8:
            return Decimal128("1" if v else "0")
        if t == 9:
            return Decimal128(str(v.ms))
        if t == 2:
            try:
                return Decimal128(v)
            except Exception:
                _fail("Failed to parse number '%s' in $convert with no onError value" % v)
    elif to == 8:  # bool
        if t in (1, 16, 18, 19):
            return num(v) != 0
        return True
    elif to == 9:  # date
        if t in (16, 18):
            return DateMS(int(v))
        if t == 1:
            return DateMS(_to_integral(v, _INT64_MIN, _INT64_MAX, "date"))
        if t == 9:
            return v
        if t == 17:
            return DateMS(v.time * 1000)
        if t == 7:
            return DateMS(int(v.generation_time.timestamp()) * 1000)
    elif to == 7:  # objectId
        if t == 7:
            return v
        if t == 2:
            if re.fullmatch(r"[0-9a-fA-F]{24}", v):
                return ObjectId(v)
            _fail("Failed to parse objectId '%s' in $convert with no onError value" % v)
    _fail("Unsupported conversion from %s to %s in $convert with no onError value"
          % (tn, _TYPE_NAMES.get(to, "?")))


def _convert_op(op, to):
    def f(arg, doc, vars):
        v, = _argv(arg, doc, vars, op, 1)
        if nullish(v):
            return None
        try:
            return convert(v, to)
        except _ConvError as e:
            raise MQLError(241, str(e), "ConversionFailure")
    return f


def op_convert(arg, doc, vars):
    _spec(arg, "$convert", ("input", "to", "onError", "onNull"), ("input", "to"))
    v = ev(arg["input"], doc, vars)
    to = ev(arg["to"], doc, vars)
    if nullish(to):
        return None
    if isinstance(to, str):
        if to not in _CONV_TYPES:
            raise MQLError(ErrorCodes_BadValue, "Unknown type name: %s" % to, "BadValue")
        to = _CONV_TYPES[to]
    elif is_number(to):
        to = int(num(to))
    if nullish(v):
        return ev(arg["onNull"], doc, vars) if "onNull" in arg else None
    try:
        return convert(v, to)
    except _ConvError as e:
        if "onError" in arg:
            return ev(arg["onError"], doc, vars)
        raise MQLError(241, str(e), "ConversionFailure")


ErrorCodes_BadValue = 2


# ---------------------------------------------------------------- $toHashedIndexKey

_CANON = {-1: -1, 127: 127, 0: 0, 6: 0, 10: 5, 1: 10, 16: 10, 18: 10, 19: 10, 2: 15, 14: 15, 3: 20, 4: 25,
          5: 30, 7: 35, 8: 40, 9: 45, 17: 47, 11: 50, 12: 55, 13: 60, 15: 65}


def _safe_long_for_hash(v):
    if isinstance(v, float):
        if math.isnan(v):
            return 0
        if v == 2.0 ** 63:
            return _INT64_MIN  # kept from older versions (see hasher.cpp's callers)
        if v >= 2.0 ** 63:
            return _INT64_MAX
        if v < -2.0 ** 63:
            return _INT64_MIN
        return int(v)
    if type(v) is Decimal128:
        d = v.to_decimal()
        if d.is_nan():
            return 0
        if d > _INT64_MAX:
            return _INT64_MAX
        if d < _INT64_MIN:
            return _INT64_MIN
        return int(d.to_integral_value(rounding=decimal.ROUND_HALF_EVEN))
    return int(v)


def _value_bytes(v):
    import bsoncodec
    raw = bsoncodec.encode({"": v})  # one element: type, "", NUL, value, then the document's EOO
    return raw[4 + 1 + 1:-1]


def _hash_elem(h, v, name):
    t = bson_type(v)
    h.update(struct.pack("<i", _CANON.get(t, t)))
    if name is not None:
        h.update(name.encode("utf-8") + b"\0")
    if is_number(v):
        h.update(struct.pack("<q", _safe_long_for_hash(v)))
    elif isinstance(v, (dict, list)):
        items = v.items() if isinstance(v, dict) else ((str(i), x) for i, x in enumerate(v))
        for k, x in items:
            _hash_elem(h, x, k)
        h.update(struct.pack("<i", 0))  # the EOO element: canonical type 0, no name, no value
    elif v is None or type(v) is Undefined or type(v) in (MinKey, MaxKey):
        pass
    else:
        h.update(_value_bytes(v))


def hashed_index_key(v):
    if v is MISSING:
        v = None
    h = hashlib.md5(struct.pack("<i", 0))
    _hash_elem(h, v, None)
    return Int64(struct.unpack("<q", h.digest()[:8])[0])


def op_tohashedindexkey(arg, doc, vars):
    if isinstance(arg, list):
        if len(arg) != 1:
            raise MQLError(16020, "Expression $toHashedIndexKey takes exactly 1 arguments. %d were passed in."
                           % len(arg), "Location16020")
        arg = arg[0]
    return hashed_index_key(ev(arg, doc, vars))


# ---------------------------------------------------------------- stages

def stage_sample(docs, spec):
    if not isinstance(spec, dict) or set(spec) != {"size"} or not is_number(spec["size"]):
        raise MQLError(28745, "$sample stage must specify a size", "Location28745")
    n = int(num(spec["size"]))
    if n < 0:
        raise MQLError(28747, "size argument to $sample must not be negative", "Location28747")
    docs = list(docs)
    return random.sample(docs, min(n, len(docs)))


OPS = {
    "$cond": op_cond, "$switch": op_switch, "$ifNull": op_ifnull, "$and": op_and, "$or": op_or,
    "$let": op_let, "$map": op_map, "$filter": op_filter, "$reduce": op_reduce,
    "$strLenBytes": op_strlenbytes, "$strLenCP": op_strlencp, "$indexOfBytes": op_indexofbytes,
    "$regexMatch": op_regexmatch, "$replaceAll": op_replaceall,
    "$trim": _trim("$trim", True, True), "$ltrim": _trim("$ltrim", True, False),
    "$rtrim": _trim("$rtrim", False, True),
    "$objectToArray": op_objecttoarray, "$arrayToObject": op_arraytoobject, "$sortArray": op_sortarray,
    "$concatArrays": op_concatarrays, "$in": op_in, "$isArray": op_isarray, "$getField": op_getfield,
    "$abs": op_abs, "$log": op_log, "$pow": op_pow,
    "$floor": _round_op("$floor", math.floor, decimal.ROUND_FLOOR),
    "$ceil": _round_op("$ceil", math.ceil, decimal.ROUND_CEILING),
    "$trunc": _round_op("$trunc", math.trunc, decimal.ROUND_DOWN),
    "$tsSecond": _ts_part("$tsSecond", "t"), "$tsIncrement": _ts_part("$tsIncrement", "i"),
    "$toString": _convert_op("$toString", 2), "$toLong": _convert_op("$toLong", 18),
    "$toInt": _convert_op("$toInt", 16), "$toDouble": _convert_op("$toDouble", 1),
    "$toDecimal": _convert_op("$toDecimal", 19), "$toBool": _convert_op("$toBool", 8),
    "$toDate": _convert_op("$toDate", 9), "$toObjectId": _convert_op("$toObjectId", 7),
    "$convert": op_convert, "$toHashedIndexKey": op_tohashedindexkey,
}

STAGES = {"$sample": stage_sample}

mql._EXT.update(OPS)
mql._EXT_STAGES.update(STAGES)

"""Byte-exact BSON codec for the ArraySync MongoDB test server.

Debian's python3-bson (3.11) has no C extension here and cannot decode dates
outside Python's datetime range, maps `undefined` to None and symbols to str.
This small codec keeps every value round-trippable:

  double -> float            string -> str           document -> dict (ordered)
  array  -> list             binary -> bson Binary (any subtype, never uuid.UUID)
  undefined -> Undefined     ObjectId -> bson ObjectId
  bool -> bool               date -> DateMS (int milliseconds, any int64)
  null -> None               regex -> bson Regex
  dbpointer -> DBPointer     code -> bson Code       symbol -> Symbol
  code w/ scope -> bson Code(scope)                  int32 -> int
  timestamp -> bson Timestamp                        int64 -> bson Int64
  decimal128 -> bson Decimal128                      min/max key -> MinKey/MaxKey

Encoding a Python int that is not an Int64 gives int32 when it fits, else int64.
"""
import struct
import datetime

from bson.objectid import ObjectId
from bson.int64 import Int64
from bson.decimal128 import Decimal128
from bson.timestamp import Timestamp
from bson.regex import Regex
from bson.binary import Binary
from bson.code import Code
from bson.min_key import MinKey
from bson.max_key import MaxKey

_EPOCH = datetime.datetime(1970, 1, 1)


class DateMS(object):
    """A BSON UTC datetime as signed 64-bit milliseconds since the epoch."""
    __slots__ = ("ms",)

    def __init__(self, ms):
        self.ms = int(ms)

    @classmethod
    def now(cls):
        d = datetime.datetime.utcnow() - _EPOCH
        return cls(d.days * 86400000 + d.seconds * 1000 + d.microseconds // 1000)

    def __eq__(self, other):
        return isinstance(other, DateMS) and other.ms == self.ms

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(("date", self.ms))

    def __repr__(self):
        return "DateMS(%d)" % self.ms


class Undefined(object):
    __slots__ = ()

    def __eq__(self, other):
        return isinstance(other, Undefined)

    def __hash__(self):
        return 6

    def __repr__(self):
        return "Undefined()"


class Symbol(str):
    pass


class DBPointer(object):
    __slots__ = ("ns", "oid")

    def __init__(self, ns, oid):
        self.ns, self.oid = ns, oid

    def __eq__(self, other):
        return isinstance(other, DBPointer) and (self.ns, self.oid) == (other.ns, other.oid)

    def __hash__(self):
        return hash((self.ns, self.oid))


class BSONError(ValueError):
    pass


_unpack_i32 = struct.Struct("<i").unpack_from
_unpack_i64 = struct.Struct("<q").unpack_from
_unpack_u32 = struct.Struct("<I").unpack_from
_unpack_dbl = struct.Struct("<d").unpack_from
_pack_i32 = struct.Struct("<i").pack
_pack_i64 = struct.Struct("<q").pack
_pack_dbl = struct.Struct("<d").pack


def _cstring(data, pos):
    end = data.index(b"\x00", pos)
    return data[pos:end].decode("utf-8", "surrogateescape"), end + 1


def _string(data, pos):
    n = _unpack_i32(data, pos)[0]
    if n < 1 or data[pos + 4 + n - 1] != 0:
        raise BSONError("bad string length")
    return data[pos + 4:pos + 4 + n - 1].decode("utf-8", "surrogateescape"), pos + 4 + n


def _decode_elems(data, pos, end, as_list):
    out = [] if as_list else {}
    while pos < end - 1:
        t = data[pos]
        kend = data.index(b"\x00", pos + 1)
        if as_list:
            key = None
        else:
            key = data[pos + 1:kend].decode("utf-8", "surrogateescape")
        pos = kend + 1
        if t == 0x02:
            n = _unpack_i32(data, pos)[0]
            v = data[pos + 4:pos + 3 + n].decode("utf-8", "surrogateescape")
            pos += 4 + n
        elif t == 0x10:
            v = _unpack_i32(data, pos)[0]
            pos += 4
        elif t == 0x01:
            v = _unpack_dbl(data, pos)[0]
            pos += 8
        elif t == 0x03 or t == 0x04:
            n = _unpack_i32(data, pos)[0]
            v = _decode_elems(data, pos + 4, pos + n, t == 0x04)
            pos += n
        elif t == 0x07:
            v = ObjectId(bytes(data[pos:pos + 12]))
            pos += 12
        elif t == 0x12:
            v = Int64(_unpack_i64(data, pos)[0])
            pos += 8
        elif t == 0x08:
            v = data[pos] != 0
            pos += 1
        elif t == 0x0A:
            v = None
        elif t == 0x09:
            v = DateMS(_unpack_i64(data, pos)[0])
            pos += 8
        elif t == 0x05:
            n = _unpack_i32(data, pos)[0]
            sub = data[pos + 4]
            payload = bytes(data[pos + 5:pos + 5 + n])
            if sub == 2 and len(payload) >= 4:  # old binary: keep as is
                pass
            v = Binary(payload, sub)
            pos += 5 + n
        elif t == 0x11:
            inc = _unpack_u32(data, pos)[0]
            tm = _unpack_u32(data, pos + 4)[0]
            v = Timestamp(tm, inc)
            pos += 8
        elif t == 0x13:
            v = Decimal128.from_bid(bytes(data[pos:pos + 16]))
            pos += 16
        elif t == 0x0B:
            pat, pos = _cstring(data, pos)
            flags, pos = _cstring(data, pos)
            v = Regex(pat, flags)
        elif t == 0x06:
            v = Undefined()
        elif t == 0xFF:
            v = MinKey()
        elif t == 0x7F:
            v = MaxKey()
        elif t == 0x0D:
            s, pos = _string(data, pos)
            v = Code(s)
        elif t == 0x0E:
            s, pos = _string(data, pos)
            v = Symbol(s)
        elif t == 0x0F:
            n = _unpack_i32(data, pos)[0]
            s, p2 = _string(data, pos + 4)
            sn = _unpack_i32(data, p2)[0]
            scope = _decode_elems(data, p2 + 4, p2 + sn, False)
            v = Code(s, scope)
            pos += n
        elif t == 0x0C:
            s, pos = _string(data, pos)
            v = DBPointer(s, ObjectId(bytes(data[pos:pos + 12])))
            pos += 12
        else:
            raise BSONError("unknown BSON type 0x%02x" % t)
        if as_list:
            out.append(v)
        else:
            out[key] = v
    if pos != end - 1 or data[end - 1] != 0:
        raise BSONError("bad document framing")
    return out


def decode(data, pos=0):
    """Decode one BSON document starting at pos; returns a dict."""
    n = _unpack_i32(data, pos)[0]
    if n < 5 or pos + n > len(data):
        raise BSONError("bad document length")
    try:
        return _decode_elems(data, pos + 4, pos + n, False)
    except (IndexError, struct.error, ValueError) as e:
        if isinstance(e, BSONError):
            raise
        raise BSONError("invalid BSON: %s" % e)


def decode_all(data):
    out, pos = [], 0
    while pos < len(data):
        n = _unpack_i32(data, pos)[0]
        out.append(decode(data, pos))
        pos += n
    return out


def _enc_key(k):
    if not isinstance(k, str):
        k = str(k)
    return k.encode("utf-8", "surrogateescape") + b"\x00"


def _enc_str(s):
    b = s.encode("utf-8", "surrogateescape")
    return _pack_i32(len(b) + 1) + b + b"\x00"


def _encode_value(parts, kb, v):
    t = type(v)
    if t is str:
        parts.append(b"\x02" + kb + _enc_str(v))
    elif t is int:
        if -2147483648 <= v <= 2147483647:
            parts.append(b"\x10" + kb + _pack_i32(v))
        else:
            parts.append(b"\x12" + kb + _pack_i64(v))
    elif t is float:
        parts.append(b"\x01" + kb + _pack_dbl(v))
    elif t is dict or isinstance(v, dict):
        parts.append(b"\x03" + kb + encode(v))
    elif t is list or t is tuple:
        parts.append(b"\x04" + kb + _encode_list(v))
    elif t is bool:
        parts.append(b"\x08" + kb + (b"\x01" if v else b"\x00"))
    elif v is None:
        parts.append(b"\x0A" + kb)
    elif t is ObjectId:
        parts.append(b"\x07" + kb + v.binary)
    elif t is Int64:
        parts.append(b"\x12" + kb + _pack_i64(v))
    elif t is DateMS:
        parts.append(b"\x09" + kb + _pack_i64(v.ms))
    elif t is Binary:
        parts.append(b"\x05" + kb + _pack_i32(len(v)) + bytes([v.subtype]) + bytes(v))
    elif t is Timestamp:
        parts.append(b"\x11" + kb + struct.pack("<II", v.inc, v.time))
    elif t is Decimal128:
        parts.append(b"\x13" + kb + v.bid)
    elif t is Regex:
        flags = v.flags
        if isinstance(flags, int):
            flags = "".join(c for c, bit in (("i", 2), ("l", 4), ("m", 8), ("s", 16), ("u", 32), ("x", 64)) if flags & bit)
        parts.append(b"\x0B" + kb + _enc_key(v.pattern) + _enc_key("".join(sorted(flags))))
    elif t is Undefined:
        parts.append(b"\x06" + kb)
    elif t is MinKey:
        parts.append(b"\xFF" + kb)
    elif t is MaxKey:
        parts.append(b"\x7F" + kb)
    elif t is Symbol:
        parts.append(b"\x0E" + kb + _enc_str(str(v)))
    elif t is Code:
        if v.scope is None:
            parts.append(b"\x0D" + kb + _enc_str(str(v)))
        else:
            body = _enc_str(str(v)) + encode(v.scope)
            parts.append(b"\x0F" + kb + _pack_i32(len(body) + 4) + body)
    elif t is DBPointer:
        parts.append(b"\x0C" + kb + _enc_str(v.ns) + v.oid.binary)
    elif t is bytes:
        parts.append(b"\x05" + kb + _pack_i32(len(v)) + b"\x00" + v)
    elif isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.replace(tzinfo=None) - v.utcoffset()
        d = v - _EPOCH
        parts.append(b"\x09" + kb + _pack_i64(d.days * 86400000 + d.seconds * 1000 + d.microseconds // 1000))
    elif isinstance(v, RawDoc):
        parts.append(b"\x03" + kb + v.raw)
    elif isinstance(v, bool):
        parts.append(b"\x08" + kb + (b"\x01" if v else b"\x00"))
    elif isinstance(v, int):
        _encode_value(parts, kb, int(v))
    elif isinstance(v, str):
        parts.append(b"\x02" + kb + _enc_str(str(v)))
    else:
        raise BSONError("cannot encode %r" % (t,))


def _encode_list(lst):
    parts = []
    for i, v in enumerate(lst):
        _encode_value(parts, str(i).encode() + b"\x00", v)
    body = b"".join(parts)
    return _pack_i32(len(body) + 5) + body + b"\x00"


def encode(doc):
    parts = []
    for k, v in doc.items():
        _encode_value(parts, _enc_key(k), v)
    body = b"".join(parts)
    return _pack_i32(len(body) + 5) + body + b"\x00"


class RawDoc(object):
    """Already-encoded document embedded verbatim."""
    __slots__ = ("raw",)

    def __init__(self, raw):
        self.raw = raw

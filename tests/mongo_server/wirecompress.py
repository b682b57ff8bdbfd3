"""OP_COMPRESSED (opcode 2012) for the MongoDB test server: the compressors, their wire ids, and
the network counters mongod reports in serverStatus.network.

Compressor ids as in MongoDB's wire compression spec: 0 noop, 1 snappy, 2 zlib, 3 zstd. zlib is in
the standard library; snappy and zstd need Debian's python3-snappy and python3-zstandard and are
simply not offered when their module is missing (e.g. under PyPy).
"""
import zlib

try:
    import snappy as _snappy
except ImportError:  # pragma: no cover - depends on the interpreter's packages
    _snappy = None
try:
    import zstandard as _zstd
except ImportError:  # pragma: no cover
    _zstd = None

NOOP, SNAPPY, ZLIB, ZSTD = 0, 1, 2, 3
IDS = {"noop": NOOP, "snappy": SNAPPY, "zlib": ZLIB, "zstd": ZSTD}
NAMES = {v: k for k, v in IDS.items()}
# mongod's default --networkMessageCompressors
DEFAULT = ("snappy", "zstd", "zlib")
# replies to these commands are never compressed (the spec's list: handshake and authentication)
NEVER_COMPRESSED = {"hello", "ismaster", "saslstart", "saslcontinue", "getnonce", "authenticate",
                    "createuser", "updateuser", "copydbsaslstart", "copydbgetnonce", "copydb"}


class CompressionError(Exception):
    pass


def available():
    """Names of the compressors this interpreter can run, in mongod's default order."""
    out = []
    for n in DEFAULT:
        if n == "snappy" and _snappy is None:
            continue
        if n == "zstd" and _zstd is None:
            continue
        out.append(n)
    return out


def parse_list(spec):
    """--compressors value ("snappy,zstd,zlib", "disabled") -> list of enabled names."""
    if spec is None:
        return available()
    spec = spec.strip()
    if spec in ("", "disabled"):
        return []
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for n in names:
        if n not in IDS or n == "noop":
            raise ValueError("unknown compressor %r (known: snappy, zstd, zlib)" % n)
        if n not in available():
            raise ValueError("compressor %r needs a Python module this interpreter lacks" % n)
    return names


class Codec(object):
    """Compress/decompress one message payload, keeping mongod's per-compressor counters."""

    def __init__(self, enabled):
        self.enabled = list(enabled)
        self._zc = _zstd.ZstdCompressor(level=3) if _zstd is not None else None
        self._zd = _zstd.ZstdDecompressor() if _zstd is not None else None
        # network.compression.<name>.{compressor,decompressor}.{bytesIn,bytesOut}
        self.stats = {n: {"compressor": [0, 0], "decompressor": [0, 0]} for n in self.enabled}

    def negotiate(self, client_list):
        """The client's hello `compression` list -> the ones both sides have, in the client's order."""
        if not isinstance(client_list, list):
            return []
        out = []
        for n in client_list:
            if isinstance(n, str) and n in self.enabled and n not in out:
                out.append(n)
        return out

    def decompress(self, cid, data, size):
        name = NAMES.get(cid)
        if cid != NOOP and name not in self.enabled:
            raise CompressionError("compressor id %d is not enabled on this server" % cid)
        try:
            if cid == NOOP:
                out = bytes(data)
            elif cid == SNAPPY:
                out = _snappy.uncompress(bytes(data))
            elif cid == ZLIB:
                out = zlib.decompress(data)
            else:
                out = self._zd.decompress(bytes(data), max_output_size=size)
        except Exception as e:
            raise CompressionError("cannot decompress %s message: %s" % (name, e))
        if len(out) != size:
            raise CompressionError("decompressed size %d does not match uncompressedSize %d" % (len(out), size))
        if name in self.stats:
            st = self.stats[name]["decompressor"]
            st[0] += len(data)
            st[1] += len(out)
        return out

    def compress(self, cid, data):
        if cid == NOOP:
            return bytes(data)
        if cid == SNAPPY:
            out = _snappy.compress(bytes(data))
        elif cid == ZLIB:
            out = zlib.compress(data)
        else:
            out = self._zc.compress(bytes(data))
        st = self.stats[NAMES[cid]]["compressor"]
        st[0] += len(data)
        st[1] += len(out)
        return out

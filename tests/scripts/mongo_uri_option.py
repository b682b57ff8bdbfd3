#!/usr/bin/python3
"""Prints a MongoDB connection string with one URI option set.

  mongo_uri_option.py URI NAME=VALUE   # e.g. URI compressors=zstd
  mongo_uri_option.py --selftest       # checks the cases below; exit 1 on a mismatch

The option is appended to the query (`?` or `&` as the URI needs; a `/` is added after the hosts
when the URI has neither a path nor a query, as the connection-string format requires). An
option of the same name already in the URI is replaced (names compare case-insensitively, as
drivers treat them), so a user's own URI keeps every other option it has.
"""
import sys


def with_option(uri, name, value):
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise ValueError("not a connection string (no scheme): %r" % uri)
    base, q, query = rest.partition("?")
    if not q and "/" not in base:
        base += "/"
    kept = [p for p in query.replace(";", "&").split("&")
            if p and p.split("=", 1)[0].lower() != name.lower()]
    kept.append("%s=%s" % (name, value))
    return "%s://%s?%s" % (scheme, base, "&".join(kept))


CASES = [
    ("mongodb://127.0.0.1:27017", "mongodb://127.0.0.1:27017/?compressors=zstd"),
    ("mongodb://127.0.0.1:27017/", "mongodb://127.0.0.1:27017/?compressors=zstd"),
    ("mongodb://127.0.0.1:27017/?", "mongodb://127.0.0.1:27017/?compressors=zstd"),
    ("mongodb://127.0.0.1:27017/app", "mongodb://127.0.0.1:27017/app?compressors=zstd"),
    ("mongodb://127.0.0.1:27017/?replicaSet=rs0",
     "mongodb://127.0.0.1:27017/?replicaSet=rs0&compressors=zstd"),
    ("mongodb://u:p@127.0.0.1:1,127.0.0.1:2/admin?replicaSet=rs0&w=majority&",
     "mongodb://u:p@127.0.0.1:1,127.0.0.1:2/admin?replicaSet=rs0&w=majority&compressors=zstd"),
    ("mongodb://127.0.0.1/?Compressors=snappy&replicaSet=rs0",
     "mongodb://127.0.0.1/?replicaSet=rs0&compressors=zstd"),
]


def selftest():
    bad = 0
    for uri, want in CASES:
        got = with_option(uri, "compressors", "zstd")
        if got != want:
            print("FAIL %s -> %s (want %s)" % (uri, got, want))
            bad += 1
    print("%d of %d cases ok" % (len(CASES) - bad, len(CASES)))
    return 1 if bad else 0


def main(argv):
    if argv[1:] == ["--selftest"]:
        return selftest()
    if len(argv) != 3 or "=" not in argv[2]:
        sys.stderr.write("usage: %s URI NAME=VALUE | --selftest\n" % argv[0])
        return 2
    name, value = argv[2].split("=", 1)
    print(with_option(argv[1], name, value))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

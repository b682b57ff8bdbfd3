#!/usr/bin/python3
"""Print the test server's wire byte counters (serverStatus.network) as one JSON object.

Usage: server_stats.py PORT|URI [--all]
With PORT, sends a single OP_MSG {serverStatus: 1} on a fresh connection to 127.0.0.1:PORT -- no
driver handshake or monitoring traffic -- and prints {bytesIn, bytesOut, physicalBytesIn,
physicalBytesOut, numRequests} (with --all: the whole network section, compression per
compressor included). The counters are cumulative since the server started and, like mongod's,
already include this request (bytesIn) but not its reply, so the difference between two calls
includes one serverStatus request and one reply of the first call.
With a mongodb:// URI (any server, mongod included), asks through pymongo instead: the delta then
also holds that client's handshake and monitoring traffic (uncompressed, a few kB).
"""
import json
import socket
import struct
import sys

import bson

OP_MSG = 2013


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the server")
        buf += chunk
    return buf


def server_status(port):
    payload = struct.pack("<I", 0) + b"\x00" + bson.encode({"serverStatus": 1, "$db": "admin"})
    sock = socket.create_connection(("127.0.0.1", port), 5)
    try:
        sock.sendall(struct.pack("<iiii", 16 + len(payload), 1, 0, OP_MSG) + payload)
        length, _, _, opcode = struct.unpack("<iiii", recv_exact(sock, 16))
        body = recv_exact(sock, length - 16)
    finally:
        sock.close()
    if opcode != OP_MSG or body[4] != 0:
        raise RuntimeError("unexpected reply opcode %d" % opcode)
    reply = bson.decode(body[5:])
    if reply.get("ok") != 1:
        raise RuntimeError("serverStatus failed: %r" % reply)
    return reply


def server_status_uri(uri):
    from pymongo import MongoClient
    client = MongoClient(uri, serverSelectionTimeoutMS=10000)
    try:
        return client.admin.command("serverStatus")
    finally:
        client.close()


def plain(v):
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    return int(v) if isinstance(v, int) else v


def main(argv):
    if len(argv) < 2 or not (argv[1].isdigit() or "://" in argv[1]):
        sys.stderr.write("usage: %s PORT|URI [--all]\n" % argv[0])
        return 2
    if argv[1].isdigit():
        net = server_status(int(argv[1]))["network"]
    else:
        net = server_status_uri(argv[1])["network"]
    if "--all" not in argv[2:]:
        net = {k: net[k] for k in ("bytesIn", "bytesOut", "physicalBytesIn", "physicalBytesOut", "numRequests")}
    print(json.dumps(plain(net), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

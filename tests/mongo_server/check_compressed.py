#!/usr/bin/python3
"""check_compressed.py COMPRESSOR BEFORE_JSON AFTER_JSON

Given two `mongo_server.sh stats PORT DIR --all` outputs taken around a client run, prints what
the server decompressed and compressed with COMPRESSOR in between and exits 1 unless the run
really sent compressed requests and got compressed replies (and fewer bytes crossed the wire
than the messages held)."""
import json
import sys


def main(argv):
    comp, before, after = argv[1], json.loads(argv[2]), json.loads(argv[3])
    c_b, c_a = before["compression"].get(comp), after["compression"].get(comp)
    if c_a is None:
        print("   %s: not enabled on the server" % comp)
        return 1
    dec = c_a["decompressor"]["bytesIn"] - c_b["decompressor"]["bytesIn"]
    dec_out = c_a["decompressor"]["bytesOut"] - c_b["decompressor"]["bytesOut"]
    com = c_a["compressor"]["bytesIn"] - c_b["compressor"]["bytesIn"]
    com_out = c_a["compressor"]["bytesOut"] - c_b["compressor"]["bytesOut"]
    wire = (after["physicalBytesIn"] - before["physicalBytesIn"]) + (after["physicalBytesOut"] - before["physicalBytesOut"])
    logical = (after["bytesIn"] - before["bytesIn"]) + (after["bytesOut"] - before["bytesOut"])
    print("   %s: requests %d -> %d bytes decompressed, replies %d -> %d bytes compressed; "
          "%d message bytes, %d on the wire" % (comp, dec, dec_out, com, com_out, logical, wire))
    return 0 if dec > 0 and com > 0 and wire < logical else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

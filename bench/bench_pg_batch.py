#!/usr/bin/python3
"""What each statement the PostgreSQL sink sends around a batch's COPY costs the server.

  bench_pg_batch.py DSN [BATCHES] [REPS]

One table like bench_postgres's (bigint key, two texts, bigint, double, timestamptz), no
capture objects. The same binary COPY data (BATCHES batches of 1,000 new rows, made by the
server outside the timing) is written in one transaction per batch, with more of the sink's
statements each time:
  plain       BEGIN; COPY; COMMIT (the baseline)
  savepoint   + SAVEPOINT / RELEASE around the COPY (the sink's optimistic COPY)
  checkpoint  + the checkpoint upsert
Prints rows/s of each and its ratio to plain, REPS rounds (the best of each).
"""
import io
import sys
import time

import psycopg2

VARIANTS = ("plain", "savepoint", "checkpoint")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    dsn = sys.argv[1]
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    c = psycopg2.connect(dsn)
    c.autocommit = True
    cur = c.cursor()
    cur.execute("DROP TABLE IF EXISTS bench_pg_batch; CREATE TABLE bench_pg_batch (id bigint PRIMARY KEY,"
                " name text, email text, n bigint, score double precision, created timestamptz)")
    cur.execute("DROP TABLE IF EXISTS bench_pg_batch_ck; CREATE TABLE bench_pg_batch_ck ("
                "stream_id text PRIMARY KEY, position text, updated_at timestamptz)")
    data = []
    for k in range(batches):
        buf = io.BytesIO()
        cur.copy_expert("COPY (SELECT g::bigint, 'user number ' || g, 'user' || g || '@example.com', "
                        "(g * 7919 %% 100000)::bigint, (g / 7.0)::float8, now() FROM generate_series(%d, %d) g)"
                        " TO STDOUT WITH (FORMAT binary)" % (k * 1000 + 1, k * 1000 + 1000), buf)
        data.append(buf.getvalue())

    def run(variant):
        cur.execute("TRUNCATE bench_pg_batch")
        cur.execute("CHECKPOINT")
        level = VARIANTS.index(variant)
        t0 = time.monotonic()
        for k in range(batches):
            cur.execute("BEGIN")
            if level >= 1:
                cur.execute("SAVEPOINT s")
            cur.copy_expert("COPY bench_pg_batch FROM STDIN WITH (FORMAT binary)", io.BytesIO(data[k]))
            if level >= 1:
                cur.execute("RELEASE SAVEPOINT s")
            if level >= 2:
                cur.execute("INSERT INTO bench_pg_batch_ck VALUES ('s', %s, now()) ON CONFLICT (stream_id) "
                            "DO UPDATE SET position = EXCLUDED.position, updated_at = EXCLUDED.updated_at",
                            (str(k),))
            cur.execute("COMMIT")
        return batches * 1000 / (time.monotonic() - t0)

    best = {v: 0.0 for v in VARIANTS}
    for _ in range(reps):
        for v in VARIANTS:
            best[v] = max(best[v], run(v))
    for v in VARIANTS:
        print("pg_batch.%s rows_per_s=%.0f ratio=%.2f" % (v, best[v], best[v] / best["plain"]))
    cur.execute("DROP TABLE bench_pg_batch; DROP TABLE bench_pg_batch_ck")


if __name__ == "__main__":
    main()

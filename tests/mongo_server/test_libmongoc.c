/* libmongoc 1.23 checks of the ArraySync MongoDB test server.
 *
 * Usage: test_mongo_libmongoc [URI]   (default: $ARRAYSYNC_TEST_MONGODB_URI)
 * e.g.   test_mongo_libmongoc 'mongodb://127.0.0.1:27017/?replicaSet=rs0'
 * Exits 0 when every check passed, 1 otherwise (each failure is printed).
 */
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                    \
            fprintf(stderr, "\n");                                           \
            failures++;                                                      \
        }                                                                    \
    } while (0)

static const char *DB = "libmongoc_test";

static int32_t get_int(const bson_t *doc, const char *path) {
    bson_iter_t it, f;
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &f) && BSON_ITER_HOLDS_NUMBER(&f))
        return (int32_t)bson_iter_as_int64(&f);
    return -1;
}

static const char *get_str(const bson_t *doc, const char *path) {
    bson_iter_t it, f;
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &f) && BSON_ITER_HOLDS_UTF8(&f))
        return bson_iter_utf8(&f, NULL);
    return "";
}

static bool get_ts(const bson_t *doc, const char *path, uint32_t *t, uint32_t *i) {
    bson_iter_t it, f;
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &f) && BSON_ITER_HOLDS_TIMESTAMP(&f)) {
        bson_iter_timestamp(&f, t, i);
        return true;
    }
    return false;
}

static bool fail_point(mongoc_client_t *client, const char *json) {
    bson_error_t err;
    bson_t *cmd = bson_new_from_json((const uint8_t *)json, -1, &err);
    if (!cmd) {
        fprintf(stderr, "bad failpoint json: %s\n", err.message);
        return false;
    }
    bool ok = mongoc_client_command_simple(client, "admin", cmd, NULL, NULL, &err);
    if (!ok) fprintf(stderr, "configureFailPoint: %s\n", err.message);
    bson_destroy(cmd);
    return ok;
}

static void test_handshake(mongoc_client_t *client) {
    bson_error_t err;
    bson_t reply;
    bson_t *cmd = BCON_NEW("hello", BCON_INT32(1));
    bool ok = mongoc_client_command_simple(client, "admin", cmd, NULL, &reply, &err);
    CHECK(ok, "hello: %s", err.message);
    if (ok) {
        bson_iter_t it;
        CHECK(strcmp(get_str(&reply, "setName"), "rs0") == 0, "setName=%s", get_str(&reply, "setName"));
        CHECK(bson_iter_init_find(&it, &reply, "isWritablePrimary") && bson_iter_as_bool(&it), "not writable primary");
        CHECK(get_int(&reply, "maxWireVersion") == 21, "maxWireVersion=%d", get_int(&reply, "maxWireVersion"));
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    mongoc_server_description_t *sd = mongoc_client_select_server(client, true, NULL, &err);
    CHECK(sd != NULL, "select writable server: %s", err.message);
    if (sd) {
        CHECK(strcmp(mongoc_server_description_type(sd), "RSPrimary") == 0, "server type %s",
              mongoc_server_description_type(sd));
        mongoc_server_description_destroy(sd);
    }
}

static void test_pool(const mongoc_uri_t *uri) {
    bson_error_t err;
    mongoc_client_pool_t *pool = mongoc_client_pool_new(uri);
    CHECK(pool != NULL, "pool_new");
    if (!pool) return;
    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    for (int round = 0; round < 3; round++) {
        mongoc_client_t *c[4];
        for (int i = 0; i < 4; i++) c[i] = mongoc_client_pool_pop(pool);
        for (int i = 0; i < 4; i++) {
            bson_t *ping = BCON_NEW("ping", BCON_INT32(1));
            bool ok = mongoc_client_command_simple(c[i], "admin", ping, NULL, NULL, &err);
            CHECK(ok, "pool client %d ping: %s", i, err.message);
            mongoc_collection_t *coll = mongoc_client_get_collection(c[i], DB, "pool");
            bson_t *doc = BCON_NEW("round", BCON_INT32(round), "i", BCON_INT32(i));
            ok = mongoc_collection_insert_one(coll, doc, NULL, NULL, &err);
            CHECK(ok, "pool insert: %s", err.message);
            bson_destroy(doc);
            mongoc_collection_destroy(coll);
            bson_destroy(ping);
        }
        for (int i = 0; i < 4; i++) mongoc_client_pool_push(pool, c[i]);
    }
    mongoc_client_t *c = mongoc_client_pool_pop(pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(c, DB, "pool");
    bson_t empty = BSON_INITIALIZER;
    int64_t n = mongoc_collection_count_documents(coll, &empty, NULL, NULL, NULL, &err);
    CHECK(n == 12, "pool docs=%lld (%s)", (long long)n, err.message);
    n = mongoc_collection_estimated_document_count(coll, NULL, NULL, NULL, &err);
    CHECK(n == 12, "estimated count=%lld (%s)", (long long)n, err.message);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(pool, c);
    mongoc_client_pool_destroy(pool);
}

/* Reads up to want events (each a document with an int "_id" fullDocument) into ids. */
static int read_events(mongoc_change_stream_t *cs, int *ids, int want, int timeout_loops) {
    const bson_t *ev;
    int got = 0;
    bson_error_t err;
    for (int loops = 0; got < want && loops < timeout_loops; loops++) {
        while (got < want && mongoc_change_stream_next(cs, &ev)) {
            ids[got++] = get_int(ev, "fullDocument._id");
        }
        if (mongoc_change_stream_error_document(cs, &err, NULL)) {
            fprintf(stderr, "change stream error: %s\n", err.message);
            break;
        }
    }
    return got;
}

static void test_change_stream_resume(mongoc_client_t *client) {
    bson_error_t err;
    mongoc_collection_t *coll = mongoc_client_get_collection(client, DB, "cs");
    bson_t *opts = BCON_NEW("maxAwaitTimeMS", BCON_INT64(100));
    bson_t empty = BSON_INITIALIZER;
    mongoc_change_stream_t *cs = mongoc_collection_watch(coll, &empty, opts);
    int ids[16];
    for (int i = 0; i < 3; i++) {
        bson_t *d = BCON_NEW("_id", BCON_INT32(i));
        CHECK(mongoc_collection_insert_one(coll, d, NULL, NULL, &err), "insert: %s", err.message);
        bson_destroy(d);
    }
    int got = read_events(cs, ids, 3, 50);
    CHECK(got == 3, "events before fault: %d", got);
    CHECK(fail_point(client, "{\"configureFailPoint\": \"failCommand\", \"mode\": {\"times\": 1},"
                             " \"data\": {\"failCommands\": [\"getMore\"], \"closeConnection\": true}}"),
          "set failpoint");
    for (int i = 3; i < 6; i++) {
        bson_t *d = BCON_NEW("_id", BCON_INT32(i));
        CHECK(mongoc_collection_insert_one(coll, d, NULL, NULL, &err), "insert: %s", err.message);
        bson_destroy(d);
    }
    got += read_events(cs, ids + got, 3, 50);
    CHECK(got == 6, "events total: %d", got);
    for (int i = 0; i < got; i++) CHECK(ids[i] == i, "event %d has _id %d", i, ids[i]);
    /* a resumable error code on getMore (labelled ResumableChangeStreamError by the server, as
       mongod does once the cursor is checked out) is also survived */
    CHECK(fail_point(client, "{\"configureFailPoint\": \"failGetMoreAfterCursorCheckout\", \"mode\": {\"times\": 1},"
                             " \"data\": {\"errorCode\": 6}}"),
          "set failpoint 2");
    bson_t *d = BCON_NEW("_id", BCON_INT32(6));
    CHECK(mongoc_collection_insert_one(coll, d, NULL, NULL, &err), "insert: %s", err.message);
    bson_destroy(d);
    int more = read_events(cs, ids + got, 1, 50);
    CHECK(more == 1 && ids[got] == 6, "event after errorCode fault: n=%d id=%d", more, more ? ids[got] : -1);
    /* nothing extra was delivered */
    const bson_t *ev;
    CHECK(!mongoc_change_stream_next(cs, &ev), "unexpected extra event");
    const bson_t *tok = mongoc_change_stream_get_resume_token(cs);
    CHECK(tok != NULL, "no resume token");
    /* the same code from failCommand carries no label (mongod fails the command before the
       cursor is checked out): libmongoc must not resume but report the error */
    CHECK(fail_point(client, "{\"configureFailPoint\": \"failCommand\", \"mode\": {\"times\": 1},"
                             " \"data\": {\"failCommands\": [\"getMore\"], \"errorCode\": 6}}"),
          "set failpoint 3");
    d = BCON_NEW("_id", BCON_INT32(7));
    CHECK(mongoc_collection_insert_one(coll, d, NULL, NULL, &err), "insert: %s", err.message);
    bson_destroy(d);
    CHECK(!mongoc_change_stream_next(cs, &ev), "event delivered despite the unlabelled error");
    CHECK(mongoc_change_stream_error_document(cs, &err, NULL) && err.code == 6,
          "expected error 6 without resume, got %u: %s", err.code, err.message);
    mongoc_change_stream_destroy(cs);
    bson_destroy(opts);
    mongoc_collection_destroy(coll);
}

static void test_retryable_write(mongoc_client_t *client) {
    bson_error_t err;
    mongoc_collection_t *coll = mongoc_client_get_collection(client, DB, "retry");
    CHECK(fail_point(client, "{\"configureFailPoint\": \"failCommand\", \"mode\": {\"times\": 1},"
                             " \"data\": {\"failCommands\": [\"insert\"], \"closeConnection\": true}}"),
          "set failpoint");
    bson_t *d = BCON_NEW("_id", BCON_INT32(1));
    bool ok = mongoc_collection_insert_one(coll, d, NULL, NULL, &err);
    CHECK(ok, "retryable insert failed: %s", err.message);
    bson_destroy(d);
    CHECK(fail_point(client, "{\"configureFailPoint\": \"failCommand\", \"mode\": {\"times\": 1},"
                             " \"data\": {\"failCommands\": [\"update\"], \"errorCode\": 189}}"),
          "set failpoint");
    bson_t *q = BCON_NEW("_id", BCON_INT32(1));
    bson_t *u = BCON_NEW("$inc", "{", "n", BCON_INT32(1), "}");
    bson_t reply;
    ok = mongoc_collection_update_one(coll, q, u, NULL, &reply, &err);
    CHECK(ok, "retryable update failed: %s", err.message);
    CHECK(get_int(&reply, "modifiedCount") == 1, "modifiedCount=%d", get_int(&reply, "modifiedCount"));
    bson_destroy(&reply);
    bson_t empty = BSON_INITIALIZER;
    int64_t n = mongoc_collection_count_documents(coll, &empty, NULL, NULL, NULL, &err);
    CHECK(n == 1, "documents after retried insert: %lld", (long long)n);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, q, NULL, NULL);
    const bson_t *doc;
    CHECK(mongoc_cursor_next(cur, &doc) && get_int(doc, "n") == 1, "update applied exactly once");
    mongoc_cursor_destroy(cur);
    bson_destroy(q);
    bson_destroy(u);
    mongoc_collection_destroy(coll);
}

static void test_transaction(mongoc_client_t *client) {
    bson_error_t err;
    mongoc_collection_t *coll = mongoc_client_get_collection(client, DB, "txn");
    mongoc_collection_t *other_coll = mongoc_client_get_collection(client, DB, "txn");
    bson_t *opts = BCON_NEW("maxAwaitTimeMS", BCON_INT64(100));
    bson_t empty = BSON_INITIALIZER;
    mongoc_change_stream_t *cs = mongoc_collection_watch(coll, &empty, opts);
    mongoc_client_session_t *s = mongoc_client_start_session(client, NULL, &err);
    CHECK(s != NULL, "start session: %s", err.message);
    if (!s) return;
    CHECK(mongoc_client_session_start_transaction(s, NULL, &err), "start txn: %s", err.message);
    bson_t sopts = BSON_INITIALIZER;
    CHECK(mongoc_client_session_append(s, &sopts, &err), "append session: %s", err.message);
    for (int i = 0; i < 2; i++) {
        bson_t *d = BCON_NEW("_id", BCON_INT32(i));
        CHECK(mongoc_collection_insert_one(coll, d, &sopts, NULL, &err), "txn insert: %s", err.message);
        bson_destroy(d);
    }
    int64_t inside = mongoc_collection_count_documents(coll, &empty, &sopts, NULL, NULL, &err);
    CHECK(inside == 2, "count inside txn=%lld (%s)", (long long)inside, err.message);
    int64_t outside = mongoc_collection_count_documents(other_coll, &empty, NULL, NULL, NULL, &err);
    CHECK(outside == 0, "count outside txn before commit=%lld", (long long)outside);
    bson_t reply;
    CHECK(mongoc_client_session_commit_transaction(s, &reply, &err), "commit: %s", err.message);
    bson_destroy(&reply);
    outside = mongoc_collection_count_documents(other_coll, &empty, NULL, NULL, NULL, &err);
    CHECK(outside == 2, "count after commit=%lld", (long long)outside);
    const bson_t *ev;
    uint32_t t[2] = {0, 0}, inc[2] = {0, 0};
    int got = 0;
    for (int loops = 0; got < 2 && loops < 50; loops++) {
        while (got < 2 && mongoc_change_stream_next(cs, &ev)) {
            CHECK(get_ts(ev, "clusterTime", &t[got], &inc[got]), "event without clusterTime");
            bson_iter_t it;
            CHECK(bson_iter_init_find(&it, ev, "lsid") && bson_iter_init_find(&it, ev, "txnNumber"),
                  "txn event without lsid/txnNumber");
            got++;
        }
    }
    CHECK(got == 2, "txn events: %d", got);
    CHECK(t[0] == t[1] && inc[0] == inc[1], "txn events have different clusterTime (%u,%u) vs (%u,%u)", t[0], inc[0], t[1],
          inc[1]);
    bson_destroy(&sopts);
    mongoc_client_session_destroy(s);
    mongoc_change_stream_destroy(cs);
    bson_destroy(opts);
    mongoc_collection_destroy(other_coll);
    mongoc_collection_destroy(coll);
}

static void test_cluster_watch_and_bulk(mongoc_client_t *client) {
    bson_error_t err;
    bson_t *opts = BCON_NEW("maxAwaitTimeMS", BCON_INT64(100));
    bson_t empty = BSON_INITIALIZER;
    mongoc_change_stream_t *cs = mongoc_client_watch(client, &empty, opts);
    const char *dbs[2] = {DB, "libmongoc_test2"};
    for (int i = 0; i < 2; i++) {
        mongoc_collection_t *coll = mongoc_client_get_collection(client, dbs[i], "w");
        bson_t *d = BCON_NEW("_id", BCON_INT32(i));
        CHECK(mongoc_collection_insert_one(coll, d, NULL, NULL, &err), "insert: %s", err.message);
        bson_destroy(d);
        mongoc_collection_destroy(coll);
    }
    const bson_t *ev;
    int got = 0;
    for (int loops = 0; got < 2 && loops < 50; loops++) {
        while (got < 2 && mongoc_change_stream_next(cs, &ev)) {
            CHECK(strcmp(get_str(ev, "ns.db"), dbs[got]) == 0, "event %d ns.db=%s", got, get_str(ev, "ns.db"));
            CHECK(strcmp(get_str(ev, "operationType"), "insert") == 0, "operationType=%s", get_str(ev, "operationType"));
            got++;
        }
    }
    CHECK(got == 2, "cluster-wide events: %d", got);
    mongoc_change_stream_destroy(cs);
    bson_destroy(opts);
    mongoc_database_t *db2 = mongoc_client_get_database(client, "libmongoc_test2");
    mongoc_database_drop(db2, NULL);
    mongoc_database_destroy(db2);

    /* unordered bulk write with a duplicate key continues and reports the failed index */
    mongoc_collection_t *coll = mongoc_client_get_collection(client, DB, "bulk");
    bson_t *bopts = BCON_NEW("ordered", BCON_BOOL(false));
    mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(coll, bopts);
    for (int i = 0; i < 4; i++) {
        bson_t *d = BCON_NEW("_id", BCON_INT32(i == 2 ? 1 : i));
        mongoc_bulk_operation_insert(bulk, d);
        bson_destroy(d);
    }
    bson_t reply;
    uint32_t ok = mongoc_bulk_operation_execute(bulk, &reply, &err);
    CHECK(ok == 0 && err.code == 11000, "bulk dup key: ok=%u code=%u", ok, err.code);
    CHECK(get_int(&reply, "nInserted") == 3, "nInserted=%d", get_int(&reply, "nInserted"));
    CHECK(get_int(&reply, "writeErrors.0.index") == 2, "writeErrors.0.index=%d", get_int(&reply, "writeErrors.0.index"));
    bson_destroy(&reply);
    mongoc_bulk_operation_destroy(bulk);
    bson_destroy(bopts);
    mongoc_collection_destroy(coll);
}

int main(int argc, char **argv) {
    const char *uri_str = argc > 1 ? argv[1] : getenv("ARRAYSYNC_TEST_MONGODB_URI");
    if (!uri_str || !*uri_str) {
        fprintf(stderr, "usage: %s mongodb://127.0.0.1:PORT/?replicaSet=rs0 (or set ARRAYSYNC_TEST_MONGODB_URI)\n", argv[0]);
        return 2;
    }
    mongoc_init();
    bson_error_t err;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_str, &err);
    if (!uri) {
        fprintf(stderr, "bad URI: %s\n", err.message);
        return 2;
    }
    mongoc_client_t *client = mongoc_client_new_from_uri(uri);
    mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    mongoc_database_t *db = mongoc_client_get_database(client, DB);
    mongoc_database_drop(db, NULL);
    mongoc_database_destroy(db);

    struct {
        const char *name;
        int before;
    } cur;
#define RUN(call, label)                                                              \
    do {                                                                              \
        cur.name = label;                                                             \
        cur.before = failures;                                                        \
        call;                                                                         \
        printf("%s %s\n", failures == cur.before ? "ok  " : "FAIL", cur.name);        \
        fflush(stdout);                                                               \
    } while (0)
    RUN(test_handshake(client), "handshake replicaSet=rs0");
    RUN(test_pool(uri), "client pool");
    RUN(test_change_stream_resume(client), "change stream resume after closeConnection");
    RUN(test_retryable_write(client), "retryable writes");
    RUN(test_transaction(client), "transaction");
    RUN(test_cluster_watch_and_bulk(client), "cluster-wide change stream, unordered bulk write");

    db = mongoc_client_get_database(client, DB);
    mongoc_database_drop(db, NULL);
    mongoc_database_destroy(db);
    mongoc_client_destroy(client);
    mongoc_uri_destroy(uri);
    mongoc_cleanup();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("all libmongoc checks passed\n");
    return 0;
}

/* test_secrets.c — connection strings never show a secret in messages: every libpq conninfo
 * form (key=value with and without spaces around '=', quoted values, a misspelled key, URIs
 * with user:password@ and ?password=) through pg_dsn_describe, and MongoDB URIs through
 * as_log_redact. */
#include <check.h>

#include <stdlib.h>
#include <string.h>

#include "as_log.h"
#include "as_test_util.h"
#include "postgres/pg_internal.h"

static void no_secret(const char *shown, const char *input) {
  ck_assert_msg(shown != NULL, "%s: nothing shown", input);
  ck_assert_msg(strstr(shown, "S3cret") == NULL && strstr(shown, "S3 cret") == NULL,
                "%s: shown as %s", input, shown);
}

START_TEST(postgres_forms) {
  static const char *const forms[] = {
      "host=127.0.0.1 port=5432 dbname=app user=sync password=S3cret",
      "host=127.0.0.1 port=5432 dbname=app user=sync password = S3cret",
      "host=127.0.0.1 dbname=app password='S3 cret'",
      "host=127.0.0.1 dbname=app pasword=S3cret",
      "postgresql://sync:S3cret@127.0.0.1:5432/app",
      "postgresql://sync@127.0.0.1:5432/app?password=S3cret",
      "postgres://sync:S3cret@127.0.0.1/app?sslmode=disable",
      "host=127.0.0.1 dbname=app sslpassword=S3cret",
  };
  for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
    char *s = pg_dsn_describe(forms[i]);
    no_secret(s, forms[i]);
    if (strstr(forms[i], "pasword") == NULL) {
      ck_assert_msg(strstr(s, "127.0.0.1") != NULL, "%s: host missing in %s", forms[i], s);
      ck_assert_msg(strstr(s, "dbname=app") != NULL, "%s: dbname missing in %s", forms[i], s);
    }
    free(s);
  }
}
END_TEST

START_TEST(mongodb_forms) {
  static const char *const forms[] = {
      "mongodb://sync:S3cret@127.0.0.1:27017/?replicaSet=rs0",
      "mongodb://sync:S3cret@127.0.0.1:27017,127.0.0.1:27018/app?authSource=admin",
      "mongodb+srv://sync:S3cret@localhost/app",
  };
  for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
    char *s = as_log_redact(forms[i]);
    no_secret(s, forms[i]);
    ck_assert_msg(strstr(s, "sync:***@") != NULL, "%s: shown as %s", forms[i], s);
    free(s);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("secrets");
  TCase *tc = tcase_create("forms");
  tcase_add_test(tc, postgres_forms);
  tcase_add_test(tc, mongodb_forms);
  suite_add_tcase(s, tc);
  return as_test_run(s);
}

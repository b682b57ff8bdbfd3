/* fuzz_common.c — helpers shared by the fuzz targets (fuzz_common.h). */
#include "fuzz_common.h"

as_schema *fuzz_schema(const char *yaml) {
  as_schema *s = NULL;
  as_error err = {0};
  if (as_schema_load_string("fuzz-mapping.yaml", yaml, &s, &err) != AS_OK) {
    fprintf(stderr, "fuzz: fixed mapping does not load: %s\n", err.message);
    abort();
  }
  return s;
}

bool fuzz_rows_equal(const as_row *a, const as_row *b, size_t *col) {
  if (a->n != b->n) {
    *col = 0;
    return false;
  }
  for (size_t i = 0; i < a->n; i++) {
    *col = i;
    if (as_row_has(a, i) != as_row_has(b, i)) return false;
    if (as_row_has(a, i) && !as_value_equal(&a->v[i], &b->v[i])) return false;
  }
  return true;
}

char *fuzz_cstr(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s) abort();
  memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

void fuzz_check_row_json(const as_schema *s, const as_row *r) {
  as_delta d;
  as_error err = {0};
  if (as_delta_init(&d, s, AS_OP_INSERT) != AS_OK || (as_row_clear(&d.row), as_row_copy(&d.row, r)) != AS_OK) abort();
  char *j = as_delta_to_json_string(&d, &err);
  FUZZ_CHECK(j != NULL, "mapping %s: a converted row has no JSON form: %s", s->name, err.message);
  free(j);
  as_delta_clear(&d);
}

/* as_json.c — jansson calls that fail on allocation failure (as_json.h). */
#include "as_json.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local bool alloc_failed;

static void *json_alloc(size_t n) {
  void *p = malloc(n);
  if (!p) alloc_failed = true;
  return p;
}

/* Installed before main (no thread exists yet, no jansson value has been made): jansson's
 * own default is malloc/free, so values made either way are freed alike. */
__attribute__((constructor)) static void install(void) { json_set_alloc_funcs(json_alloc, free); }

json_t *as_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *error) {
  alloc_failed = false;
  json_t *j = json_loadb(buf, len, flags, error);
  if (alloc_failed) {
    json_decref(j);
    if (error) {
      snprintf(error->text, sizeof error->text, "out of memory");
      error->text[JSON_ERROR_TEXT_LENGTH - 1] = (char)json_error_out_of_memory; /* json_error_code */
    }
    return NULL;
  }
  return j;
}

json_t *as_json_loads(const char *text, size_t flags, json_error_t *error) {
  return as_json_loadb(text, strlen(text), flags, error);
}

char *as_json_dumps(const json_t *j, size_t flags) {
  alloc_failed = false;
  char *s = json_dumps(j, flags);
  if (alloc_failed) {
    free(s);
    return NULL;
  }
  return s;
}

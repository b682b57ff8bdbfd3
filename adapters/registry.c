/* registry.c — adapters by kind. */
#include <string.h>

#include "adapter.h"

static const as_adapter *const all[] = {&as_adapter_mongodb, &as_adapter_postgres,
                                        &as_adapter_sqlite, NULL};

const as_adapter *const *as_adapter_all(void) { return all; }

const as_adapter *as_adapter_find(const char *kind) {
  for (size_t i = 0; kind && all[i]; i++) {
    if (strcmp(all[i]->kind, kind) == 0) return all[i];
  }
  return NULL;
}

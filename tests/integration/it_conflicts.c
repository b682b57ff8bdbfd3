/* it_conflicts — records one conflict in a state store through as_state_conflict_record (the
 * call the engine makes), for tests/integration/test_conflicts.sh. Prints the new id.
 *   it_conflicts STATE MAPPING KEY STRATEGY COLUMNS CHOSEN OPEN(0|1)
 *                LOCAL_NODE LOCAL_ROW LOCAL_VV LOCAL_TS_US
 *                REMOTE_NODE REMOTE_ROW REMOTE_VV REMOTE_TS_US
 * "-" stands for NULL (a timestamp "-" for 0). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_state.h"

static const char *arg(const char *s) { return strcmp(s, "-") == 0 ? NULL : s; }
static int64_t ts(const char *s) { return strcmp(s, "-") == 0 ? 0 : strtoll(s, NULL, 10); }

int main(int argc, char **argv) {
  if (argc != 16) {
    fprintf(stderr, "usage: it_conflicts STATE MAPPING KEY STRATEGY COLUMNS CHOSEN OPEN LOCAL_NODE "
                    "LOCAL_ROW LOCAL_VV LOCAL_TS REMOTE_NODE REMOTE_ROW REMOTE_VV REMOTE_TS\n");
    return 2;
  }
  as_conflict_rec c = {.mapping = argv[2], .key = argv[3], .strategy = arg(argv[4]),
                       .columns_json = arg(argv[5]), .chosen = arg(argv[6]),
                       .open = strcmp(argv[7], "1") == 0,
                       .local = {arg(argv[8]), arg(argv[9]), arg(argv[10]), ts(argv[11])},
                       .remote = {arg(argv[12]), arg(argv[13]), arg(argv[14]), ts(argv[15])}};
  as_state *st = NULL;
  as_error err;
  int64_t id = 0;
  if (as_state_open(argv[1], false, &st, &err) != AS_OK ||
      as_state_conflict_record(st, &c, &id, &err) != AS_OK) {
    fprintf(stderr, "it_conflicts: %s\n", err.message);
    as_state_close(st);
    return 1;
  }
  as_state_close(st);
  printf("%lld\n", (long long)id);
  return 0;
}

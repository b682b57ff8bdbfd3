/* cmd_verify.h — `arraysync verify` (cmd_verify.c; the comparison itself is as_verify.h). */
#ifndef AS_CMD_VERIFY_H
#define AS_CMD_VERIFY_H

/* argv[0] is "verify". Returns the process exit code: 0 equal, 3 differences, 1 runtime
 * error, 2 bad usage or configuration. */
int as_cmd_verify(int argc, char **argv);

#endif

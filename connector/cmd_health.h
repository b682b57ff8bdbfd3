/* cmd_health.h — `arraysync healthcheck URL`: a minimal HTTP GET for container health checks
 * (the runtime image has no curl or wget). */
#ifndef AS_CMD_HEALTH_H
#define AS_CMD_HEALTH_H

#include "as_error.h"

/* GETs url (http://HOST:PORT/PATH; HOST a name or an IPv4/IPv6 address) and returns AS_OK
 * when the answer's status is 200 within timeout_ms; AS_EINVAL for a malformed URL, AS_ERR
 * otherwise (err says what was answered or why nothing was). */
int as_cmd_healthcheck(const char *url, int timeout_ms, as_error *err);

#endif

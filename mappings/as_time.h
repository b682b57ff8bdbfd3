/* as_time.h — wall-clock time in microseconds (UTC), shared by every floor. */
#ifndef AS_TIME_H
#define AS_TIME_H

#include <stdint.h>

int64_t as_now_us(void);       /* CLOCK_REALTIME, µs since the epoch */
int64_t as_monotonic_us(void); /* CLOCK_MONOTONIC, µs */

#endif

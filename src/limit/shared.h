/* limit/shared.h - per-client rate limits that hold across every kurz process
 * sharing one Redis: a sliding-window estimate over two fixed windows
 * (count(current) + count(previous) * the part of the previous window still
 * inside the sliding one), kept under "kurz:rl:<scope>:{client}:<window>"
 * and counted by one script (one round trip; both keys share the {client}
 * hash tag, so a Redis Cluster serves it from one slot). Windows are numbered
 * by wall-clock time, which the processes share. Refused requests are not
 * counted. Blocks for at most the Redis client's timeout; thread-safe. */
#ifndef KURZ_LIMIT_SHARED_H
#define KURZ_LIMIT_SHARED_H
#include <stdint.h>

#include "util/str.h"

struct kurz_redis; /* redis/cluster.h */

/* Counts one request of client under scope ("create", ...): limit requests
 * per window_ms. now_ms: unix time in milliseconds. Returns 1 when allowed,
 * 0 when refused (then *retry_after_s, if non-NULL, gets the seconds until the
 * estimate drops below the limit, at least 1), or a negative errno when
 * Redis could not be asked: the caller then falls back to its own limiter. */
int kurz_shared_limit_take(struct kurz_redis *r, const char *scope, struct kurz_str client,
                           unsigned limit, unsigned window_ms, uint64_t now_ms,
                           unsigned *retry_after_s);
#endif

/* limit/ratelimit.h - per-client request limits (e.g. 100 creates per minute
 * per IP): a sliding-window counter per key in a bounded, striped hash table.
 * When the table is full, the least recently seen keys in a stripe are
 * dropped, never the limit itself. Thread-safe (a mutex per stripe). */
#ifndef KURZ_LIMIT_RATELIMIT_H
#define KURZ_LIMIT_RATELIMIT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/str.h"

struct kurz_ratelimit; /* opaque */

/* limit: requests allowed per window (0 = unlimited: take always allows).
 * window_ms: length of the window. max_keys: bound on remembered clients.
 * Returns NULL on ENOMEM. */
struct kurz_ratelimit *kurz_ratelimit_new(unsigned limit, unsigned window_ms, size_t max_keys);
void kurz_ratelimit_free(struct kurz_ratelimit *rl); /* NULL is a no-op */

/* Counts one request of key at now_ms (monotonic). Returns true when allowed;
 * when refused, *retry_after_s (if non-NULL) gets the seconds until one more
 * request would be allowed (at least 1). */
bool kurz_ratelimit_take(struct kurz_ratelimit *rl, struct kurz_str key, uint64_t now_ms,
                         unsigned *retry_after_s);
/* Keys remembered now (for tests and metrics). */
size_t kurz_ratelimit_keys(struct kurz_ratelimit *rl);
#endif

/* ids/snowflake.h - the plan's 64-bit ids: 41 bits of milliseconds since a
 * configurable epoch, 10 bits of worker id, 12 bits of sequence. A clock that
 * steps backwards is waited out for at most max_wait_ms; beyond that the call
 * fails, so an id is never issued twice. Thread-safe (internal mutex). */
#ifndef KURZ_IDS_SNOWFLAKE_H
#define KURZ_IDS_SNOWFLAKE_H
#include <stdint.h>

struct kurz_snowflake; /* opaque */

/* Clock in unix milliseconds; tests inject their own. */
typedef uint64_t (*kurz_clock_ms_fn)(void *arg);
/* Sleeps ms milliseconds; tests inject their own. */
typedef void (*kurz_sleep_ms_fn)(void *arg, unsigned ms);

struct kurz_snowflake_config {
        uint64_t epoch_ms;      /* default 1704067200000 (2024-01-01T00:00:00Z) */
        unsigned worker_id;     /* 0..1023 */
        unsigned max_wait_ms;   /* clock-backwards tolerance, default 1000 */
        kurz_clock_ms_fn clock; /* NULL: CLOCK_REALTIME */
        kurz_sleep_ms_fn sleep; /* NULL: nanosleep */
        void *clock_arg;
};

/* Returns 0, -EINVAL (worker id out of range) or -ENOMEM. */
int kurz_snowflake_new(const struct kurz_snowflake_config *cfg, struct kurz_snowflake **out);
void kurz_snowflake_free(struct kurz_snowflake *s);
/* Next id, strictly greater than every id this generator returned before.
 * Returns 0, or -EAGAIN when the clock went back more than max_wait_ms (or past
 * the epoch). */
int kurz_snowflake_next(struct kurz_snowflake *s, uint64_t *id);
#endif

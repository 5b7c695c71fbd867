/* stats/clicks.h - click counting without locks on the redirect path. Each
 * loop thread owns a table of (code, day) -> count; the flusher swaps it for
 * an empty one on the owning thread (through kurz_http_server_post) and writes
 * the full one to the store in one batch. */
#ifndef KURZ_STATS_CLICKS_H
#define KURZ_STATS_CLICKS_H
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/str.h"

struct kurz_clicks; /* opaque: one table per thread */

/* Returns NULL on ENOMEM. capacity: initial distinct (code, day) per thread. */
struct kurz_clicks *kurz_clicks_new(unsigned threads, size_t capacity);
void kurz_clicks_free(struct kurz_clicks *c);

/* Counts one click of code at unix time now_s. Only thread `thread` may call
 * this for its table. No lock; allocates only when the table must grow. Returns
 * 0 or -ENOMEM (the click is then lost and counted in kurz_clicks_dropped). */
int kurz_clicks_add(struct kurz_clicks *c, unsigned thread, struct kurz_str code, int64_t now_s);

/* What one thread counted, detached from it. Owned by whoever detached it;
 * usable from any thread. */
struct kurz_clicks_taken;

/* Detaches what thread `thread` counted so far (*out, NULL when nothing) and
 * gives it an empty table: constant time, one allocation, whatever the count
 * (the flush no longer walks a table of 100,000 keys on the loop). Must run
 * on thread `thread` (or when it is stopped). Returns 0, or -ENOMEM with the
 * counts kept for the next call. */
int kurz_clicks_detach(struct kurz_clicks *c, unsigned thread, struct kurz_clicks_taken **out);
/* Number of aggregates in k. */
size_t kurz_clicks_taken_count(const struct kurz_clicks_taken *k);
/* Copies up to cap aggregates of k into arr, resuming at *pos (start at 0);
 * returns how many, 0 once all were copied. */
size_t kurz_clicks_next(const struct kurz_clicks_taken *k, size_t *pos, struct kurz_click *arr,
                        size_t cap);
/* Frees k (NULL is a no-op). */
void kurz_clicks_taken_free(struct kurz_clicks_taken *k);

/* Clicks lost to allocation failure since start. Thread-safe. */
uint64_t kurz_clicks_dropped(struct kurz_clicks *c);
#endif

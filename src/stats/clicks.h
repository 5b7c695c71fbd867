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

/* Takes what thread `thread` counted so far, as a malloc'ed array of
 * aggregates (*out, caller frees with free()), and empties the table. Must run
 * on thread `thread` (or when it is stopped). Returns the count or -ENOMEM. */
int kurz_clicks_take(struct kurz_clicks *c, unsigned thread, struct kurz_click **out);

/* Clicks lost to allocation failure since start. Thread-safe. */
uint64_t kurz_clicks_dropped(struct kurz_clicks *c);
#endif

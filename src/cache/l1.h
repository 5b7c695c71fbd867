/* cache/l1.h - bounded in-process cache of code -> target URL, shared by all
 * worker threads. A lookup takes no lock, makes no allocation and no syscall:
 * slots hold pointers to immutable entries that are published with release
 * stores and freed through QSBR. Writers take a per-shard mutex. Eviction is
 * CLOCK-like, approximating LRU. Negative entries remember unknown codes for a
 * short time. A per-shard invalidation sequence lets a miss that raced a delete
 * refuse to re-insert the deleted link (caches never resurrect). */
#ifndef KURZ_CACHE_L1_H
#define KURZ_CACHE_L1_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/str.h"

struct kurz_l1; /* opaque */
struct kurz_qsbr;

struct kurz_l1_config {
        size_t max_entries;       /* default 100000; 0 disables the cache */
        unsigned ttl_ms;          /* positive entries, default 30000 */
        unsigned negative_ttl_ms; /* negative entries, default 5000; 0 disables them */
        struct kurz_qsbr *qsbr;   /* required: readers must be registered there */
};

/* Returns NULL when out of memory. Free with kurz_l1_free() once no reader is
 * online. */
struct kurz_l1 *kurz_l1_new(const struct kurz_l1_config *cfg);
void kurz_l1_free(struct kurz_l1 *c); /* NULL is a no-op */

enum kurz_l1_result {
        KURZ_L1_MISS = 0, /* not cached (or stale): ask the next tier */
        KURZ_L1_HIT,      /* *url filled */
        KURZ_L1_NEGATIVE, /* cached as unknown: answer 404 */
};

/* A hit, borrowed: valid until the calling reader's next quiescent state (for
 * a loop thread: until it returns to the loop). */
struct kurz_l1_hit {
        struct kurz_str url;
        int64_t expires_at; /* unix seconds of the link's own expiry, 0 = never */
};

/* Looks up code. now_ms is a monotonic millisecond clock (the loop's cached
 * time is fine). Reader-side: the caller must be online in the QSBR domain.
 * Lock-free, no allocation. */
enum kurz_l1_result kurz_l1_get(struct kurz_l1 *c, struct kurz_str code, uint64_t now_ms,
                                struct kurz_l1_hit *hit);

/* Returns the shard's invalidation sequence for code. Read it BEFORE asking the
 * store, and pass it to kurz_l1_put(): the put is dropped if code was
 * invalidated since. Thread-safe. */
uint64_t kurz_l1_seq(struct kurz_l1 *c, struct kurz_str code);

/* Inserts or replaces code -> url (copied). expires_at: the link's expiry in
 * unix seconds (0 = never); the entry never outlives it. Returns 0, -ENOMEM,
 * or -ESTALE when code was invalidated after seq was read. Thread-safe. */
int kurz_l1_put(struct kurz_l1 *c, struct kurz_str code, struct kurz_str url, int64_t expires_at,
                uint64_t seq, uint64_t now_ms);
/* Remembers that code is unknown (negative entry), same seq rule. */
int kurz_l1_put_negative(struct kurz_l1 *c, struct kurz_str code, uint64_t seq, uint64_t now_ms);
/* Removes code and bumps its shard's invalidation sequence. Thread-safe. */
void kurz_l1_invalidate(struct kurz_l1 *c, struct kurz_str code);
/* Removes every entry and bumps every shard's sequence (a racing put of a
 * value read before is refused). For when invalidations may have been missed.
 * Thread-safe. */
void kurz_l1_invalidate_all(struct kurz_l1 *c);

struct kurz_l1_stats {
        size_t entries;
        size_t bytes; /* heap bytes held by entries and tables */
        uint64_t evictions;
};
void kurz_l1_stats(struct kurz_l1 *c, struct kurz_l1_stats *out); /* thread-safe */
#endif

/* cache/l2.h - the shared cache tier on Redis (standalone or Cluster): code ->
 * (expires_at, url) under "kurz:u:{code}", filled on a miss and on create,
 * removed on delete and expiry, with a TTL that grows with how hot a link is.
 * Deletes write a short-lived tombstone "kurz:t:{code}" (same slot thanks to
 * the hash tag) and every fill is a script that refuses to write while the
 * tombstone exists, so a miss that read the link before a delete can never
 * put it back (caches never resurrect). Invalidated codes are published on
 * "kurz:invalidate" so every process drops its L1 entry.
 *
 * Fills, invalidation retries and publishes run on the cache's own thread
 * from a bounded queue, so callers on the writer thread or the blocking pool
 * never wait for them. kurz_l2_get() and kurz_l2_invalidate() block for at
 * most the Redis client's timeout. Everything is thread-safe. */
#ifndef KURZ_CACHE_L2_H
#define KURZ_CACHE_L2_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/str.h"

struct kurz_l2;    /* opaque */
struct kurz_redis; /* redis/cluster.h */
struct kurz_buf;   /* util/buf.h */

#define KURZ_L2_CHANNEL   "kurz:invalidate"
#define KURZ_L2_MAX_TIERS 8

/* A hotter link lives longer in L2: at least min_hits accesses -> ttl_ms. */
struct kurz_l2_tier {
        uint64_t min_hits;
        uint64_t ttl_ms;
};

struct kurz_l2_config {
        struct kurz_redis *redis; /* required; borrowed, must outlive the cache */
        uint64_t ttl_ms;          /* base TTL, default 300000 (5 min) */
        const char *hot_ttls;     /* "HITS=DUR,...", default "10=10m,100=15m,1000=30m" */
        uint64_t tombstone_ms;    /* default 60000 */
        size_t max_queue;         /* queued fills and invalidations, default 10000 */
};

/* Parses "10=10m,100=15m,1000=30m" (ascending hits) into tiers. Returns the
 * number of tiers (0 for "" or "off") or -EINVAL. */
int kurz_l2_parse_tiers(const char *s, struct kurz_l2_tier *tiers, size_t cap);

/* Starts the cache thread. Returns 0 and *out (free with kurz_l2_free()),
 * -EINVAL for bad hot_ttls, -ENOMEM, or a negative errno. */
int kurz_l2_new(const struct kurz_l2_config *cfg, struct kurz_l2 **out);
/* Stops the thread (queued work is dropped: L2 is a cache) and the
 * subscription (no callback runs after it returns), then frees l2. NULL is a
 * no-op. */
void kurz_l2_free(struct kurz_l2 *l2);

/* Looks code up. Returns 0 on a hit (out->url malloc'ed: caller frees; only
 * url, url_len and expires_at are set), KURZ_E_NOTFOUND on a miss, or a
 * negative errno when Redis failed (the caller asks the store). */
int kurz_l2_get(struct kurz_l2 *l2, const char *code, size_t code_len, struct kurz_link *out);

/* Queues a fill of code -> url (both copied). read_at_ms: the monotonic time
 * (kurz_redis_now_ms()) at which the value was read from the store or
 * committed; a fill older than the tombstone lifetime is dropped. hits: what
 * the caller knows of the link's popularity (e.g. its stored click count).
 * Never blocks. */
void kurz_l2_put_async(struct kurz_l2 *l2, const char *code, size_t code_len, const char *url,
                       size_t url_len, int64_t expires_at, int64_t hits, uint64_t read_at_ms);

/* Deletes code from L2 now (tombstone + DEL, one round trip) and queues the
 * publish. On failure the invalidation is retried in the background until it
 * succeeds or no L2 entry can still exist. Returns 0 or the negative errno of
 * the first attempt. Call it after the store delete committed and before
 * dropping the L1 entry. */
int kurz_l2_invalidate(struct kurz_l2 *l2, const char *code, size_t code_len);
/* The same, entirely in the background (expiry cleanup). Never blocks. */
void kurz_l2_invalidate_async(struct kurz_l2 *l2, const char *code, size_t code_len);

/* Subscribes to the invalidation channel: fn(arg, code) runs on the
 * subscriber thread for every code any process invalidated (this one too),
 * and with an empty code whenever the subscription is (re)established:
 * invalidations published while it was down were missed, so every code may
 * be stale. */
typedef void (*kurz_l2_invalidate_fn)(void *arg, struct kurz_str code);
int kurz_l2_subscribe(struct kurz_l2 *l2, kurz_l2_invalidate_fn fn, void *arg);

/* Appends Prometheus text: hits, misses, errors, get latency, fills,
 * invalidations sent/received/pending, then the Redis client's metrics. */
int kurz_l2_metrics(struct kurz_l2 *l2, struct kurz_buf *out);

/* Value encoding "EXPIRES_AT URL" (decimal unix seconds, 0 = never). decode
 * borrows url from v. Returns 0, or -EINVAL for a malformed value. */
int kurz_l2_encode(struct kurz_buf *out, int64_t expires_at, const char *url, size_t url_len);
int kurz_l2_decode(const char *v, size_t len, int64_t *expires_at, struct kurz_str *url);
#endif

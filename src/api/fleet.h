/* api/fleet.h - what the handlers share with the rest of the fleet: the
 * Redis client and L2 cache (opened from --redis / --redis-cluster), the
 * single-flight table that lets a miss storm on one code cost one store read
 * per process, the lookup that runs on the blocking pool (L2, then the store,
 * then an L2 fill), and the fleet-wide create limit. Not for use outside
 * src/api. Without Redis configured, s->redis and s->l2 stay NULL and only
 * single flight is active. */
#ifndef KURZ_API_FLEET_H
#define KURZ_API_FLEET_H
#include <stdbool.h>

#include "store/store.h"
#include "util/str.h"

struct kurz_service;
struct kurz_http_exchange;
struct kurz_http_deferred;
struct kurz_buf;

/* Opens Redis, L2 and the invalidation subscriber when configured, and the
 * single-flight table always. Returns 0 or a negative errno (logged). */
int kurz_api_fleet_open(struct kurz_service *s);
/* Stops the subscriber and the L2 thread and frees everything opened. Call
 * after the HTTP loops, the pool and the writer stopped. */
void kurz_api_fleet_close(struct kurz_service *s);

/* --- single flight (loop threads) --- */

/* A request waiting for another one's store read of the same code. */
struct kurz_api_flight_waiter {
        struct kurz_api_flight_waiter *next;
        struct kurz_http_deferred *d;
};

/* On a miss of code on x's loop thread: when a read of code is already in
 * flight, x is deferred and queued on it and true is returned (the caller
 * must not answer x: the leader will resume it). Otherwise the caller becomes
 * the leader, returns false, must read, and must then call
 * kurz_api_flight_finish() exactly once, also when its read fails. */
bool kurz_api_flight_join(struct kurz_service *s, struct kurz_http_exchange *x,
                          struct kurz_str code);
/* Ends the flight of code and returns its waiters (a list the caller resumes
 * with kurz_http_resume() and frees with free(), one node at a time).
 * Thread-safe. */
struct kurz_api_flight_waiter *kurz_api_flight_finish(struct kurz_service *s, struct kurz_str code);

/* --- blocking pool --- */

/* The read behind a redirect miss: L2 when configured, else (or on an L2 miss
 * or error) the store, whose answer then fills L2 in the background. Same
 * contract as store ops->lookup (out->url malloc'ed on success). Counts store
 * reads (kurz_store_reads_total). Blocking-pool threads only. */
int kurz_api_fleet_read(struct kurz_service *s, const char *code, size_t len,
                        struct kurz_link *out);

/* --- create limit --- */

/* Runs cont(s, x) when the client may create now, else answers 429 with
 * Retry-After. With Redis the check is fleet-wide and runs on the blocking
 * pool (the loop never waits for Redis); when Redis cannot answer it falls
 * back to the per-process limiter, never to no limit. Loop thread of x. */
void kurz_api_create_limited(struct kurz_service *s, struct kurz_http_exchange *x,
                             void (*cont)(struct kurz_service *s, struct kurz_http_exchange *x));
/* The same, but a refused client is answered by deny(s, x, retry_after_s)
 * (the web form answers with a page instead of JSON). */
void kurz_api_create_limited_ex(struct kurz_service *s, struct kurz_http_exchange *x,
                                void (*cont)(struct kurz_service *s, struct kurz_http_exchange *x),
                                void (*deny)(struct kurz_service *s, struct kurz_http_exchange *x,
                                             unsigned retry));

/* Appends single-flight, L2 and Redis metrics (nothing else when Redis is
 * off). Thread-safe. */
int kurz_api_fleet_metrics(struct kurz_service *s, struct kurz_buf *out);
#endif

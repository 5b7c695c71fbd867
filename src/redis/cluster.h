/* redis/cluster.h - the one Redis client kurz uses, for a standalone server
 * and for Redis Cluster alike (hiredis 0.14 has no cluster API). In cluster
 * mode a command goes to the master of its key's slot (CRC16 with hash tags),
 * found in a slot map read with CLUSTER SLOTS; MOVED updates the map and
 * retries, ASK retries once on the target after ASKING, TRYAGAIN and
 * CLUSTERDOWN are retried with a short backoff. The map is refreshed in a
 * background thread: periodically, after MOVED and after a node failed.
 * Every command, retries included, finishes within the configured timeout.
 * A subscriber thread (optional) delivers pub/sub messages, reconnecting with
 * backoff; in cluster mode it subscribes on any reachable node, since the
 * cluster forwards PUBLISH to every node.
 *
 * All functions are thread-safe. Replies returned belong to the caller. */
#ifndef KURZ_REDIS_CLUSTER_H
#define KURZ_REDIS_CLUSTER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct redisReply; /* hiredis */
struct kurz_buf;   /* util/buf.h */
struct kurz_redis; /* opaque */

struct kurz_redis_config {
        const char *url;          /* "redis://[:password@]host[:port][/db]" (standalone), or NULL */
        const char *cluster;      /* "host:port,host:port,..." seed nodes, or NULL */
        unsigned timeout_ms;      /* per command, retries included (default 50) */
        unsigned pool_size;       /* connections per node (default 8) */
        unsigned refresh_ms;      /* periodic slot map refresh (default 5000) */
        unsigned breaker_base_ms; /* default 250 */
        unsigned breaker_max_ms;  /* default 5000 */
};

/* Parses cfg (exactly one of url and cluster). Does not need the servers to be
 * up: an unreachable server only makes commands fail until it answers.
 * Returns 0 and *out (free with kurz_redis_close()), -EINVAL for a bad
 * address (message in err, when non-NULL, of errlen bytes), or -ENOMEM. */
int kurz_redis_open(const struct kurz_redis_config *cfg, struct kurz_redis **out, char *err,
                    size_t errlen);
/* Stops the threads, closes every connection, frees r. No command may be
 * running. NULL is a no-op. */
void kurz_redis_close(struct kurz_redis *r);
bool kurz_redis_is_cluster(const struct kurz_redis *r);

/* Runs a command that touches key (routing; every key of a multi-key command
 * must share its slot). Returns 0 and *reply (may be an error reply other than
 * a redirection; caller frees with freeReplyObject), or a negative errno:
 * -EAGAIN (node failing, breaker open, or no node known for the slot),
 * -ETIMEDOUT, -ECONNREFUSED, -EIO, -ENOMEM. */
int kurz_redis_command(struct kurz_redis *r, const char *key, size_t keylen, int argc,
                       const char **argv, const size_t *argvlen, struct redisReply **reply);

/* PUBLISH channel msg. Returns 0 or a negative errno. */
int kurz_redis_publish(struct kurz_redis *r, const char *channel, const char *msg, size_t len);

/* Called on the subscriber thread for each message; msg is borrowed. msg is
 * NULL each time a subscription is confirmed (the first, and after every
 * reconnection): messages published while there was none were missed. */
typedef void (*kurz_redis_message_fn)(void *arg, const char *msg, size_t len);
/* Starts the subscriber thread on channel (copied). At most one per client.
 * Returns 0, -EBUSY when one runs, or a negative errno. */
int kurz_redis_subscribe(struct kurz_redis *r, const char *channel, kurz_redis_message_fn fn,
                         void *arg);
/* Stops the subscriber thread and waits for it: no callback runs after
 * this returns. Not thread-safe against kurz_redis_subscribe. */
void kurz_redis_unsubscribe(struct kurz_redis *r);
/* True while the subscriber holds a confirmed subscription. */
bool kurz_redis_subscribed(struct kurz_redis *r);

/* Appends Prometheus text: breaker state and counters per node, MOVED/ASK/
 * retry counts, slot map refreshes. */
int kurz_redis_metrics(struct kurz_redis *r, struct kurz_buf *out);
#endif

/* redis/client.h - one Redis node as kurz sees it: a bounded pool of
 * synchronous hiredis connections (a hiredis context is not thread-safe, so
 * each command borrows one), connect and command timeouts, and a circuit
 * breaker. After a failure or timeout the breaker opens: commands fail at once
 * for a backoff period, then a single probe is let through; its success
 * closes the breaker, its failure doubles the backoff (up to a maximum). Idle
 * connections are dropped when the node fails, so a restarted node is not
 * asked over dead sockets. */
#ifndef KURZ_REDIS_CLIENT_H
#define KURZ_REDIS_CLIENT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct redisReply; /* hiredis */

/* --- circuit breaker: a pure state machine (the node locks around it) --- */

enum kurz_redis_breaker_state {
        KURZ_BREAKER_CLOSED = 0,    /* healthy: everything goes through */
        KURZ_BREAKER_OPEN = 1,      /* failing: fail fast until open_until_ms */
        KURZ_BREAKER_HALF_OPEN = 2, /* one probe is out; others fail fast */
};

struct kurz_redis_breaker {
        enum kurz_redis_breaker_state state;
        uint64_t open_until_ms; /* monotonic ms */
        unsigned backoff_ms;    /* the next open period */
        unsigned base_ms, max_ms;
        uint64_t opens; /* times it went CLOSED -> OPEN */
};

void kurz_redis_breaker_init(struct kurz_redis_breaker *b, unsigned base_ms, unsigned max_ms);
/* May a command go to the node at now_ms? *probe (optional) becomes true when
 * this caller is the half-open probe. */
bool kurz_redis_breaker_allow(struct kurz_redis_breaker *b, uint64_t now_ms, bool *probe);
/* A command got an answer: close the breaker, reset the backoff. */
void kurz_redis_breaker_success(struct kurz_redis_breaker *b);
/* A command failed (connection error or timeout): open the breaker. A failure
 * reported while already open (a straggler) changes nothing. */
void kurz_redis_breaker_failure(struct kurz_redis_breaker *b, uint64_t now_ms);

/* --- node --- */

struct kurz_redis_node; /* opaque */

struct kurz_redis_node_config {
        const char *host;
        unsigned port;
        const char *password; /* AUTH on connect, or NULL/"" */
        unsigned db;          /* SELECT on connect when > 0 (standalone only) */
        unsigned pool_size;   /* connections at most, >= 1 */
        unsigned connect_timeout_ms;
        unsigned breaker_base_ms; /* first open period, e.g. 250 */
        unsigned breaker_max_ms;  /* longest open period, e.g. 5000 */
};

/* Copies cfg's strings. Connects lazily. NULL on ENOMEM. */
struct kurz_redis_node *kurz_redis_node_new(const struct kurz_redis_node_config *cfg);
/* Closes every connection; no command may be running. NULL is a no-op. */
void kurz_redis_node_free(struct kurz_redis_node *n);

/* Runs one command (argv/argvlen as redisCommandArgv). When asking, sends
 * ASKING first on the same connection. Waits at most until deadline_ms
 * (monotonic, kurz_redis_now_ms()) for a connection and the reply. Returns 0
 * and *reply (owned by the caller: freeReplyObject; it may be an error reply,
 * which is not a node failure), or: -EAGAIN breaker open (nothing sent),
 * -ETIMEDOUT, -ECONNREFUSED (cannot connect), -EIO (connection broke),
 * -ENOMEM. Thread-safe. */
int kurz_redis_node_command(struct kurz_redis_node *n, int argc, const char **argv,
                            const size_t *argvlen, bool asking, uint64_t deadline_ms,
                            struct redisReply **reply);

struct kurz_redis_node_stats {
        enum kurz_redis_breaker_state state;
        uint64_t commands, failures, breaker_opens;
        unsigned open_conns, idle_conns;
};
void kurz_redis_node_stats(struct kurz_redis_node *n, struct kurz_redis_node_stats *out);
const char *kurz_redis_node_host(const struct kurz_redis_node *n);
unsigned kurz_redis_node_port(const struct kurz_redis_node *n);
/* The breaker state now (for routing decisions). Thread-safe. */
bool kurz_redis_node_available(struct kurz_redis_node *n);

/* Monotonic milliseconds. */
uint64_t kurz_redis_now_ms(void);
#endif

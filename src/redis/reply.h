/* redis/reply.h - parsing what Redis Cluster says about its topology: the
 * MOVED / ASK / TRYAGAIN / CLUSTERDOWN error replies and the CLUSTER SLOTS
 * reply. Replies come from the network, so every field is checked and bounded;
 * these functions never trust a length or a count they did not verify. Pure
 * functions (no I/O, no globals), thread-safe; fuzzed through
 * kurz_redis_parse_error() and kurz_redis_slots_parse_resp(). */
#ifndef KURZ_REDIS_REPLY_H
#define KURZ_REDIS_REPLY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "redis/crc16.h"

struct redisReply; /* hiredis */

#define KURZ_REDIS_HOST_MAX  256 /* longest host name or address, with NUL */
#define KURZ_REDIS_MAX_NODES 128 /* nodes a slot map may name */
#define KURZ_REDIS_NO_NODE   0xffffu

/* One node address; host "" means "the host of the node that answered". */
struct kurz_redis_addr {
        char host[KURZ_REDIS_HOST_MAX];
        unsigned port;
};

enum kurz_redis_err {
        KURZ_REDIS_ERR_OTHER = 0,   /* any other error reply */
        KURZ_REDIS_ERR_MOVED,       /* slot lives elsewhere for good: remap */
        KURZ_REDIS_ERR_ASK,         /* slot migrating: ASKING + retry there once */
        KURZ_REDIS_ERR_TRYAGAIN,    /* multi-key op during resharding: retry */
        KURZ_REDIS_ERR_CLUSTERDOWN, /* cluster not serving (failover): retry */
};

/* A MOVED/ASK target. */
struct kurz_redis_redirect {
        unsigned slot;
        struct kurz_redis_addr addr;
};

/* Classifies the error reply text s (len bytes, no NUL needed), e.g.
 * "MOVED 3999 127.0.0.1:6381" or "ASK 3999 [::1]:6381". For MOVED and ASK
 * *out is filled; a malformed MOVED/ASK (bad slot, port or host) is
 * KURZ_REDIS_ERR_OTHER. The host may come back empty (Redis 7 with an
 * unknown endpoint sends "MOVED 3999 :6381"). */
enum kurz_redis_err kurz_redis_parse_error(const char *s, size_t len,
                                           struct kurz_redis_redirect *out);

/* Which master serves each slot, and every node named. */
struct kurz_redis_slotmap {
        uint16_t owner[KURZ_REDIS_SLOTS]; /* index into nodes, or KURZ_REDIS_NO_NODE */
        unsigned nnodes;
        struct kurz_redis_node_info {
                struct kurz_redis_addr addr;
                bool master;
        } nodes[KURZ_REDIS_MAX_NODES];
};

/* Builds *map from a CLUSTER SLOTS reply: an array of [start, end, [host,
 * port, id?, ...] (the master), [replica]...]. A node with an empty host or
 * "?" gets default_host (the node asked). Returns the number of slots covered
 * (0..16384), or -EPROTO when the reply is malformed (then *map is
 * unspecified). */
int kurz_redis_slots_parse(const struct redisReply *r, const char *default_host,
                           struct kurz_redis_slotmap *map);

/* The same from raw RESP bytes (one complete reply), for tests and fuzzing.
 * Returns as above, or -EPROTO when buf is not exactly one complete reply. */
int kurz_redis_slots_parse_resp(const char *buf, size_t len, const char *default_host,
                                struct kurz_redis_slotmap *map);
#endif

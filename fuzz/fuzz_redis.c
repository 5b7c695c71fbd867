/* fuzz/fuzz_redis.c - what Redis Cluster says about its topology, straight
 * from the network: MOVED/ASK/TRYAGAIN/CLUSTERDOWN error replies and raw RESP
 * CLUSTER SLOTS replies. Input: a mode byte (bit 0: 0 error text, 1 RESP),
 * then the bytes. Invariants: redirects name a slot in range, a port and a
 * terminated host; a slot map owns exactly the slots it counts, through
 * nodes it lists. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf(stderr, "fuzz_redis: invariant failed: %s\n", #cond);              \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

static void check_addr(const struct kurz_redis_addr *a)
{
        CHECK(memchr(a->host, '\0', sizeof(a->host)) != NULL);
        CHECK(a->port <= 65535);
}

static void fuzz_error(const char *p, size_t n)
{
        struct kurz_redis_redirect r;
        enum kurz_redis_err e;

        memset(&r, 0xa5, sizeof(r));
        e = kurz_redis_parse_error(p, n, &r);
        CHECK(e >= KURZ_REDIS_ERR_OTHER && e <= KURZ_REDIS_ERR_CLUSTERDOWN);
        if (e == KURZ_REDIS_ERR_MOVED || e == KURZ_REDIS_ERR_ASK) {
                CHECK(r.slot < KURZ_REDIS_SLOTS);
                check_addr(&r.addr);
                CHECK(r.addr.port >= 1);
        }
}

static void fuzz_slots(const char *p, size_t n)
{
        struct kurz_redis_slotmap *m = malloc(sizeof(*m));
        int rc, owned = 0;

        if (!m)
                abort();
        rc = kurz_redis_slots_parse_resp(p, n, "10.0.0.1", m);
        CHECK(rc == -EPROTO || (rc >= 0 && rc <= KURZ_REDIS_SLOTS));
        if (rc >= 0) {
                CHECK(m->nnodes <= KURZ_REDIS_MAX_NODES);
                for (unsigned i = 0; i < m->nnodes; i++) {
                        check_addr(&m->nodes[i].addr);
                        CHECK(m->nodes[i].addr.host[0] != '\0');
                }
                for (unsigned s = 0; s < KURZ_REDIS_SLOTS; s++) {
                        if (m->owner[s] == KURZ_REDIS_NO_NODE)
                                continue;
                        CHECK(m->owner[s] < m->nnodes && m->nodes[m->owner[s]].master);
                        owned++;
                }
                CHECK(owned == rc);
        }
        free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *copy;

        if (size == 0)
                return 0;
        copy = malloc(size - 1 ? size - 1 : 1); /* exact: ASan sees reads past the end */
        if (!copy)
                abort();
        memcpy(copy, data + 1, size - 1);
        if (data[0] & 1)
                fuzz_slots(copy, size - 1);
        else
                fuzz_error(copy, size - 1);
        free(copy);
        return 0;
}

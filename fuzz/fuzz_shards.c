/* fuzz/fuzz_shards.c - the shards file parser of the PostgreSQL backend.
 * A file that parses must describe a complete map (every slot owned by a
 * listed shard, URLs that look like postgres:// URLs, bounded counts), and
 * routing must stay inside it; a file that does not parse must say why. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/shards.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf(stderr, "fuzz_shards: invariant failed: %s\n", #cond);             \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

static void check_url(const char *u)
{
        CHECK(u && (strncmp(u, "postgres://", 11) == 0 || strncmp(u, "postgresql://", 13) == 0));
        for (const char *p = u; *p; p++)
                CHECK((unsigned char)*p > ' ' && (unsigned char)*p < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct kurz_shards *s = NULL;
        char err[256];
        int rc;

        memset(err, 'x', sizeof(err));
        rc = kurz_shards_parse((const char *)data, size, &s, err, sizeof(err));
        if (rc < 0) {
                CHECK(rc == -EINVAL || rc == -ENOMEM);
                CHECK(s == NULL);
                CHECK(memchr(err, '\0', sizeof(err)) != NULL);
                if (rc == -EINVAL)
                        CHECK(err[0] != '\0');
                return 0;
        }
        CHECK(s && s->n >= 1 && s->n <= KURZ_SHARDS_MAX);
        for (size_t i = 0; i < s->n; i++) {
                const struct kurz_shard_def *d = &s->shards[i];
                CHECK(memchr(d->name, '\0', sizeof(d->name)) && d->name[0]);
                check_url(d->primary);
                CHECK(d->n_replicas <= KURZ_SHARD_REPLICAS_MAX);
                for (size_t j = 0; j < d->n_replicas; j++)
                        check_url(d->replicas[j]);
                for (size_t j = 0; j < i; j++)
                        CHECK(strcmp(s->shards[j].name, d->name) != 0);
        }
        for (unsigned slot = 0; slot < KURZ_SLOTS; slot++)
                CHECK(s->slot_shard[slot] < s->n);
        CHECK(kurz_shards_route(s, data, size) < s->n);
        CHECK(kurz_shards_slot(data, size) < KURZ_SLOTS);
        if (size >= 8) {
                uint64_t h;
                memcpy(&h, data, 8);
                CHECK(kurz_shards_route_hash(s, h) < s->n);
        }
        kurz_shards_free(s);
        return 0;
}

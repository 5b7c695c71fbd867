/* ids/codegen.c - makes the codes of new links. `compact`: counters leased
 * from the store in blocks, scattered by the store-wide keyed permutation,
 * written as 7 base62 digits. `snowflake`: the shortest base62 of a snowflake
 * id. One mutex serialises next(). */
#include "ids/codegen.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "ids/base62.h"
#include "ids/perm.h"

#define CODEGEN_DEFAULT_BLOCK 1000
#define CODEGEN_COMPACT_WIDTH 7 /* 62^7 = KURZ_PERM_DOMAIN codes */

struct kurz_codegen {
        pthread_mutex_t lock;
        enum kurz_codes_kind kind;
        struct kurz_store *store; /* borrowed */
        uint64_t block;
        struct kurz_perm perm;
        /* Guarded by lock: the unused rest of the leased block, [next, end). */
        uint64_t next, end;
        struct kurz_snowflake *snowflake;
};

int kurz_codegen_new(const struct kurz_codegen_config *cfg, struct kurz_codegen **out)
{
        struct kurz_codegen *g;
        uint8_t key[16];
        int rc;

        *out = NULL;
        if (cfg->kind != KURZ_CODES_COMPACT && cfg->kind != KURZ_CODES_SNOWFLAKE)
                return -EINVAL;
        if (cfg->kind == KURZ_CODES_COMPACT &&
            (!cfg->store || !cfg->store->ops || !cfg->store->ops->lease_counter ||
             !cfg->store->ops->permutation_key))
                return -EINVAL;
        g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        g->kind = cfg->kind;
        g->store = cfg->store;
        g->block = cfg->block ? cfg->block : CODEGEN_DEFAULT_BLOCK;
        if (g->kind == KURZ_CODES_COMPACT) {
                rc = cfg->store->ops->permutation_key(cfg->store, key);
                if (rc < 0)
                        goto out_free_g;
                kurz_perm_init(&g->perm, key);
        } else {
                rc = kurz_snowflake_new(&cfg->snowflake, &g->snowflake);
                if (rc < 0)
                        goto out_free_g;
        }
        if (pthread_mutex_init(&g->lock, NULL) != 0) {
                rc = -ENOMEM;
                goto out_free_snowflake;
        }
        *out = g;
        return 0;

out_free_snowflake:
        kurz_snowflake_free(g->snowflake);
out_free_g:
        free(g);
        return rc;
}

void kurz_codegen_free(struct kurz_codegen *g)
{
        if (!g)
                return;
        pthread_mutex_destroy(&g->lock);
        kurz_snowflake_free(g->snowflake);
        free(g);
}

/* Called with g->lock held. */
static int next_compact(struct kurz_codegen *g, char *out, size_t cap)
{
        uint64_t start, counter;
        int rc;

        /* Refuse before a counter is spent on a code that would not fit. */
        if (cap < CODEGEN_COMPACT_WIDTH + 1)
                return -ERANGE;
        if (g->next >= g->end) {
                rc = g->store->ops->lease_counter(g->store, g->block, &start);
                if (rc < 0)
                        return rc;
                g->next = start;
                g->end = start > UINT64_MAX - g->block ? UINT64_MAX : start + g->block;
        }
        /* Every 7-digit code has been issued: the counter space is spent, and
         * it stays so (further calls lease nothing more). */
        if (g->next >= KURZ_PERM_DOMAIN)
                return -ENOSPC;
        counter = g->next++;
        rc =
            kurz_base62_encode(kurz_perm_apply(&g->perm, counter), CODEGEN_COMPACT_WIDTH, out, cap);
        return rc < 0 ? rc : 0;
}

/* Called with g->lock held. */
static int next_snowflake(struct kurz_codegen *g, char *out, size_t cap)
{
        uint64_t id;
        int rc;

        rc = kurz_snowflake_next(g->snowflake, &id);
        if (rc < 0)
                return rc;
        rc = kurz_base62_encode(id, 0, out, cap);
        return rc < 0 ? rc : 0;
}

int kurz_codegen_next(void *arg, char *out, size_t cap)
{
        struct kurz_codegen *g = arg;
        int rc;

        pthread_mutex_lock(&g->lock);
        if (g->kind == KURZ_CODES_COMPACT)
                rc = next_compact(g, out, cap);
        else
                rc = next_snowflake(g, out, cap);
        pthread_mutex_unlock(&g->lock);
        return rc;
}

/* fuzz/memstore.c - the in-memory store of the fuzz targets: links in a
 * chained hash map keyed by code under one mutex. It mirrors what the SQLite
 * backend promises the service (store/store.h), not how it does it: dedupe
 * by URL for live default-expiry links, aliases taken even when expired,
 * lookups returning expired links for the caller to judge. */
#include "memstore.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/hash.h"

#define NBUCKETS    1024
#define MAX_KEYS    16
#define GEN_RETRIES 8

struct mlink {
        struct mlink *next;
        char code[KURZ_CODE_MAX + 1];
        char *url;
        size_t url_len;
        uint64_t url_hash;
        int64_t created_at, expires_at, clicks, last_access;
        bool dedupe;
};

struct memstore {
        struct kurz_store store; /* first: the handle the service sees */
        pthread_mutex_t mu;      /* guards everything below */
        struct mlink *buckets[NBUCKETS];
        size_t n;
        uint64_t counter;
        char keys[MAX_KEYS][65];
        size_t nkeys;
        bool failing;
};

static struct memstore *to_mem(struct kurz_store *s)
{
        return (struct memstore *)s;
}

static struct mlink **slot_of(struct memstore *m, const char *code, size_t len)
{
        return &m->buckets[kurz_hash(code, len) % NBUCKETS];
}

/* Under m->mu. */
static struct mlink *find(struct memstore *m, const char *code, size_t len)
{
        struct mlink *l;

        if (len == 0 || len > KURZ_CODE_MAX)
                return NULL;
        for (l = *slot_of(m, code, len); l; l = l->next)
                if (strlen(l->code) == len && memcmp(l->code, code, len) == 0)
                        return l;
        return NULL;
}

static void fill(struct kurz_link *out, const struct mlink *l, char *url)
{
        memcpy(out->code, l->code, sizeof(out->code));
        out->url = url;
        out->url_len = l->url_len;
        out->created_at = l->created_at;
        out->expires_at = l->expires_at;
        out->clicks = l->clicks;
        out->last_access = l->last_access;
}

static int ms_lookup(struct kurz_store *s, const char *code, size_t code_len, struct kurz_link *out)
{
        struct memstore *m = to_mem(s);
        struct mlink *l;
        char *url;
        int rc = 0;

        pthread_mutex_lock(&m->mu);
        if (m->failing) {
                rc = KURZ_E_UNAVAILABLE;
                goto out_unlock;
        }
        l = find(m, code, code_len);
        if (!l) {
                rc = KURZ_E_NOTFOUND;
                goto out_unlock;
        }
        url = strndup(l->url, l->url_len);
        if (!url) {
                rc = -ENOMEM;
                goto out_unlock;
        }
        fill(out, l, url);
out_unlock:
        pthread_mutex_unlock(&m->mu);
        return rc;
}

/* Under m->mu. Stores it under it->code. */
static int insert(struct memstore *m, struct kurz_create *it, bool alias)
{
        size_t len = strlen(it->code);
        struct mlink *l, **slot;

        if (m->n >= KURZ_MEMSTORE_MAX)
                return KURZ_E_UNAVAILABLE;
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->url = malloc(it->url_len + 1);
        if (!l->url) {
                free(l);
                return -ENOMEM;
        }
        memcpy(l->url, it->url, it->url_len);
        l->url[it->url_len] = '\0';
        memcpy(l->code, it->code, len + 1);
        l->url_len = it->url_len;
        l->url_hash = it->url_hash;
        l->created_at = it->created_at;
        l->expires_at = it->expires_at;
        l->dedupe = !alias && it->dedupe;
        slot = slot_of(m, l->code, len);
        l->next = *slot;
        *slot = l;
        m->n++;
        it->status = KURZ_CREATE_NEW;
        it->out_created_at = it->created_at;
        it->out_expires_at = it->expires_at;
        return 0;
}

static void fail(struct kurz_create *it, int err)
{
        it->status = KURZ_CREATE_FAILED;
        it->err = err;
}

/* Under m->mu. A live deduplicable link of the same URL, or NULL. */
static struct mlink *find_dup(struct memstore *m, const struct kurz_create *it)
{
        for (size_t b = 0; b < NBUCKETS; b++)
                for (struct mlink *l = m->buckets[b]; l; l = l->next)
                        if (l->dedupe && l->url_hash == it->url_hash && l->url_len == it->url_len &&
                            memcmp(l->url, it->url, it->url_len) == 0 &&
                            (l->expires_at == 0 || l->expires_at > it->created_at))
                                return l;
        return NULL;
}

/* Under m->mu. */
static void create_one(struct memstore *m, struct kurz_create *it, kurz_code_fn gen, void *gen_arg)
{
        struct mlink *dup;
        size_t len;
        int rc;

        if (!it->url || it->url_len == 0 || it->url_len > KURZ_URL_MAX) {
                fail(it, -EINVAL);
                return;
        }
        if (it->alias) {
                len = strnlen(it->alias, KURZ_CODE_MAX + 1);
                if (len == 0 || len > KURZ_CODE_MAX) {
                        fail(it, -EINVAL);
                        return;
                }
                if (find(m, it->alias, len)) {
                        it->status = KURZ_CREATE_ALIAS_TAKEN;
                        return;
                }
                memcpy(it->code, it->alias, len + 1);
                rc = insert(m, it, true);
                if (rc < 0)
                        fail(it, rc);
                return;
        }
        if (it->dedupe && (dup = find_dup(m, it))) {
                memcpy(it->code, dup->code, sizeof(it->code));
                it->out_created_at = dup->created_at;
                it->out_expires_at = dup->expires_at;
                it->status = KURZ_CREATE_EXISTING;
                return;
        }
        if (!gen) {
                fail(it, -EINVAL);
                return;
        }
        for (int tries = 0; tries < GEN_RETRIES; tries++) {
                it->code[0] = '\0';
                /* gen may call lease_counter: drop the lock around it. */
                pthread_mutex_unlock(&m->mu);
                rc = gen(gen_arg, it->code, sizeof(it->code));
                pthread_mutex_lock(&m->mu);
                if (rc < 0) {
                        fail(it, rc);
                        return;
                }
                len = strnlen(it->code, sizeof(it->code));
                if (len == 0 || len > KURZ_CODE_MAX) {
                        fail(it, -EINVAL);
                        return;
                }
                if (find(m, it->code, len))
                        continue; /* an alias took it: generate another */
                rc = insert(m, it, false);
                if (rc < 0)
                        fail(it, rc);
                return;
        }
        it->code[0] = '\0';
        fail(it, -EEXIST);
}

static int ms_create_batch(struct kurz_store *s, struct kurz_create *items, size_t n,
                           kurz_code_fn gen, void *gen_arg)
{
        struct memstore *m = to_mem(s);

        pthread_mutex_lock(&m->mu);
        for (size_t i = 0; i < n; i++) {
                items[i].status = KURZ_CREATE_PENDING;
                items[i].err = 0;
                items[i].code[0] = '\0';
                if (m->failing)
                        fail(&items[i], KURZ_E_UNAVAILABLE);
                else
                        create_one(m, &items[i], gen, gen_arg);
        }
        pthread_mutex_unlock(&m->mu);
        return 0;
}

static void unlink_free(struct mlink **pp)
{
        struct mlink *l = *pp;

        *pp = l->next;
        free(l->url);
        free(l);
}

static int ms_remove(struct kurz_store *s, const char *code, size_t code_len)
{
        struct memstore *m = to_mem(s);
        int rc = KURZ_E_NOTFOUND;

        pthread_mutex_lock(&m->mu);
        if (m->failing) {
                rc = KURZ_E_UNAVAILABLE;
        } else if (code_len && code_len <= KURZ_CODE_MAX) {
                for (struct mlink **pp = slot_of(m, code, code_len); *pp; pp = &(*pp)->next) {
                        if (strlen((*pp)->code) == code_len &&
                            memcmp((*pp)->code, code, code_len) == 0) {
                                unlink_free(pp);
                                m->n--;
                                rc = 0;
                                break;
                        }
                }
        }
        pthread_mutex_unlock(&m->mu);
        return rc;
}

static int ms_add_clicks(struct kurz_store *s, const struct kurz_click *clicks, size_t n)
{
        struct memstore *m = to_mem(s);
        int rc = 0;

        pthread_mutex_lock(&m->mu);
        if (m->failing) {
                rc = KURZ_E_UNAVAILABLE;
                goto out_unlock;
        }
        for (size_t i = 0; i < n; i++) {
                struct mlink *l;

                if (clicks[i].count < 0)
                        continue;
                l = find(m, clicks[i].code, strnlen(clicks[i].code, sizeof(clicks[i].code)));
                if (!l)
                        continue; /* deleted since it was clicked */
                l->clicks += clicks[i].count;
                if (clicks[i].last_access > l->last_access)
                        l->last_access = clicks[i].last_access;
        }
out_unlock:
        pthread_mutex_unlock(&m->mu);
        return rc;
}

static int ms_cleanup(struct kurz_store *s, int64_t now, int64_t unused_before, size_t batch,
                      char (**codes)[KURZ_CODE_MAX + 1])
{
        struct memstore *m = to_mem(s);
        char(*arr)[KURZ_CODE_MAX + 1] = NULL;
        size_t n = 0;
        int rc;

        *codes = NULL;
        if (batch == 0)
                return 0;
        if (batch > KURZ_MEMSTORE_MAX)
                batch = KURZ_MEMSTORE_MAX;
        pthread_mutex_lock(&m->mu);
        if (m->failing) {
                rc = KURZ_E_UNAVAILABLE;
                goto out_unlock;
        }
        arr = calloc(batch, sizeof(*arr));
        if (!arr) {
                rc = -ENOMEM;
                goto out_unlock;
        }
        for (size_t b = 0; b < NBUCKETS && n < batch; b++) {
                struct mlink **pp = &m->buckets[b];

                while (*pp && n < batch) {
                        struct mlink *l = *pp;
                        bool expired = l->expires_at && l->expires_at <= now;
                        bool unused = unused_before > 0 && l->created_at < unused_before &&
                                      l->last_access < unused_before;

                        if (!expired && !unused) {
                                pp = &l->next;
                                continue;
                        }
                        memcpy(arr[n++], l->code, sizeof(arr[0]));
                        unlink_free(pp);
                        m->n--;
                }
        }
        rc = (int)n;
        if (n)
                *codes = arr;
        else
                free(arr);
out_unlock:
        pthread_mutex_unlock(&m->mu);
        return rc;
}

static int ms_lease_counter(struct kurz_store *s, uint64_t n, uint64_t *start)
{
        struct memstore *m = to_mem(s);
        int rc = 0;

        pthread_mutex_lock(&m->mu);
        if (m->failing) {
                rc = KURZ_E_UNAVAILABLE;
        } else {
                *start = m->counter;
                m->counter += n;
        }
        pthread_mutex_unlock(&m->mu);
        return rc;
}

static int ms_permutation_key(struct kurz_store *s, uint8_t key[16])
{
        (void)s;
        memcpy(key, "kurz-fuzz-key-16", 16);
        return 0;
}

static bool hex64(const char *h)
{
        for (int i = 0; i < 64; i++)
                if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
                        return false;
        return h[64] == '\0';
}

static int ms_key_add(struct kurz_store *s, const char *hash_hex, const char *name)
{
        struct memstore *m = to_mem(s);
        int rc = 0;

        (void)name;
        if (!hex64(hash_hex))
                return -EINVAL;
        pthread_mutex_lock(&m->mu);
        if (m->nkeys == MAX_KEYS)
                rc = -ENOSPC;
        else
                memcpy(m->keys[m->nkeys++], hash_hex, 65);
        pthread_mutex_unlock(&m->mu);
        return rc;
}

static int ms_key_check(struct kurz_store *s, const char *hash_hex)
{
        struct memstore *m = to_mem(s);
        int rc = KURZ_E_NOTFOUND;

        pthread_mutex_lock(&m->mu);
        if (m->failing)
                rc = KURZ_E_UNAVAILABLE;
        else
                for (size_t i = 0; i < m->nkeys; i++)
                        if (strcmp(m->keys[i], hash_hex) == 0)
                                rc = 0;
        pthread_mutex_unlock(&m->mu);
        return rc;
}

static int link_cmp(const void *a, const void *b)
{
        return strcmp(((const struct kurz_link *)a)->code, ((const struct kurz_link *)b)->code);
}

static int ms_list(struct kurz_store *s, const char *after, size_t limit, struct kurz_link **out)
{
        struct memstore *m = to_mem(s);
        struct kurz_link *arr = NULL;
        size_t n = 0;
        int rc;

        *out = NULL;
        pthread_mutex_lock(&m->mu);
        if (m->failing) {
                rc = KURZ_E_UNAVAILABLE;
                goto out_unlock;
        }
        arr = calloc(m->n + 1, sizeof(*arr));
        if (!arr) {
                rc = -ENOMEM;
                goto out_unlock;
        }
        for (size_t b = 0; b < NBUCKETS; b++)
                for (struct mlink *l = m->buckets[b]; l; l = l->next)
                        if (!after || strcmp(l->code, after) > 0)
                                fill(&arr[n++], l, NULL);
        qsort(arr, n, sizeof(*arr), link_cmp);
        if (n > limit)
                n = limit;
        for (size_t i = 0; i < n; i++) {
                struct mlink *l = find(m, arr[i].code, strlen(arr[i].code));

                arr[i].url = strndup(l->url, l->url_len);
                if (!arr[i].url) {
                        kurz_store_links_free(arr, i);
                        arr = NULL;
                        rc = -ENOMEM;
                        goto out_unlock;
                }
        }
        rc = (int)n;
        if (n)
                *out = arr; /* like the real backends: NULL when empty */
        else
                free(arr);
out_unlock:
        pthread_mutex_unlock(&m->mu);
        return rc;
}

static int ms_count(struct kurz_store *s, int64_t now, int64_t *total, int64_t *active)
{
        struct memstore *m = to_mem(s);
        int rc = 0;

        *total = *active = 0;
        pthread_mutex_lock(&m->mu);
        if (m->failing) {
                rc = KURZ_E_UNAVAILABLE;
                goto out_unlock;
        }
        for (size_t b = 0; b < NBUCKETS; b++)
                for (struct mlink *l = m->buckets[b]; l; l = l->next) {
                        (*total)++;
                        if (l->expires_at == 0 || l->expires_at > now)
                                (*active)++;
                }
out_unlock:
        pthread_mutex_unlock(&m->mu);
        return rc;
}

static bool ms_healthy(struct kurz_store *s)
{
        struct memstore *m = to_mem(s);
        bool ok;

        pthread_mutex_lock(&m->mu);
        ok = !m->failing;
        pthread_mutex_unlock(&m->mu);
        return ok;
}

static int ms_metrics(struct kurz_store *s, struct kurz_buf *out)
{
        return kurz_buf_printf(out, "# TYPE kurz_memstore_links gauge\nkurz_memstore_links %zu\n",
                               kurz_memstore_count(s));
}

static void ms_close(struct kurz_store *s)
{
        struct memstore *m = to_mem(s);

        for (size_t b = 0; b < NBUCKETS; b++)
                while (m->buckets[b])
                        unlink_free(&m->buckets[b]);
        pthread_mutex_destroy(&m->mu);
        free(m);
}

static const struct kurz_store_ops memstore_ops = {
    .lookup = ms_lookup,
    .create_batch = ms_create_batch,
    .remove = ms_remove,
    .add_clicks = ms_add_clicks,
    .cleanup = ms_cleanup,
    .lease_counter = ms_lease_counter,
    .permutation_key = ms_permutation_key,
    .key_add = ms_key_add,
    .key_check = ms_key_check,
    .list = ms_list,
    .count = ms_count,
    .healthy = ms_healthy,
    .close = ms_close,
    .metrics = ms_metrics,
};

struct kurz_store *kurz_memstore_new(void)
{
        struct memstore *m = calloc(1, sizeof(*m));

        if (!m)
                return NULL;
        m->store.ops = &memstore_ops;
        m->store.name = "memory";
        m->counter = 1;
        pthread_mutex_init(&m->mu, NULL);
        return &m->store;
}

void kurz_memstore_set_failing(struct kurz_store *s, bool failing)
{
        struct memstore *m = to_mem(s);

        pthread_mutex_lock(&m->mu);
        m->failing = failing;
        pthread_mutex_unlock(&m->mu);
}

size_t kurz_memstore_count(struct kurz_store *s)
{
        struct memstore *m = to_mem(s);
        size_t n;

        pthread_mutex_lock(&m->mu);
        n = m->n;
        pthread_mutex_unlock(&m->mu);
        return n;
}

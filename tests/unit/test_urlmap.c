/* tests/unit/test_urlmap.c - the writer's dedupe entries of unindexed links:
 * every id of a hash is found (newest first) and no other, growth keeps them
 * all, truncating to a mark drops exactly the entries added after it (also
 * across a growth), dropping the oldest keeps the newer in order, clear
 * empties it. */
#include <stdint.h>

#include "store/urlmap.h"
#include "test.h"

/* The ids of hash, in iteration order, into out; returns how many. */
static int ids_of(const struct kurz_urlmap *m, uint64_t hash, int64_t *out, int cap)
{
        size_t cur = 0;
        int64_t id;
        int n = 0;

        while (kurz_urlmap_next(m, hash, &cur, &id)) {
                if (n < cap)
                        out[n] = id;
                n++;
        }
        return n;
}

static void test_find(void)
{
        struct kurz_urlmap *m = kurz_urlmap_new();
        int64_t ids[4];

        CHECK(m != NULL);
        if (!m)
                return;
        CHECK_EQ_INT(ids_of(m, 7, ids, 4), 0);
        CHECK_EQ_INT(kurz_urlmap_add(m, 7, 70), 0);
        CHECK_EQ_INT(kurz_urlmap_add(m, 7 + 1024, 71), 0); /* same bucket, other hash */
        CHECK_EQ_INT(kurz_urlmap_add(m, 7, 72), 0);
        CHECK_EQ_INT(ids_of(m, 7, ids, 4), 2);
        CHECK_EQ_INT((int)ids[0], 72);
        CHECK_EQ_INT((int)ids[1], 70);
        CHECK_EQ_INT(ids_of(m, 7 + 1024, ids, 4), 1);
        CHECK_EQ_INT((int)ids[0], 71);
        CHECK_EQ_INT(ids_of(m, 8, ids, 4), 0);
        kurz_urlmap_free(m);
}

static void test_growth_and_truncate(void)
{
        struct kurz_urlmap *m = kurz_urlmap_new();
        const int n = 5000, extra = 4000; /* the buckets grow at 8192 */
        size_t mark;
        int64_t ids[2];
        int bad = 0;

        CHECK(m != NULL);
        if (!m)
                return;
        for (int i = 0; i < n; i++)
                CHECK_EQ_INT(kurz_urlmap_add(m, (uint64_t)i * 0x9e3779b97f4a7c15ULL, i), 0);
        mark = kurz_urlmap_size(m);
        CHECK_EQ_INT((int)mark, n);
        /* A rolled-back batch: its entries (some of a hash already there)
         * go, across a growth of the buckets. */
        for (int i = 0; i < extra; i++)
                CHECK_EQ_INT(
                    kurz_urlmap_add(m, (uint64_t)(i % 100) * 0x9e3779b97f4a7c15ULL, 100000 + i), 0);
        kurz_urlmap_truncate(m, mark);
        CHECK_EQ_INT((int)kurz_urlmap_size(m), n);
        for (int i = 0; i < n; i++) {
                int k = ids_of(m, (uint64_t)i * 0x9e3779b97f4a7c15ULL, ids, 2);

                if (k != 1 || ids[0] != i)
                        bad++;
        }
        CHECK_EQ_INT(bad, 0);
        /* A finished fold: its entries (the oldest) go, the newer stay. */
        kurz_urlmap_drop_oldest(m, 4000);
        CHECK_EQ_INT((int)kurz_urlmap_size(m), n - 4000);
        bad = 0;
        for (int i = 0; i < n; i++) {
                int k = ids_of(m, (uint64_t)i * 0x9e3779b97f4a7c15ULL, ids, 2);

                if (i < 4000 ? k != 0 : k != 1 || ids[0] != i)
                        bad++;
        }
        CHECK_EQ_INT(bad, 0);
        kurz_urlmap_truncate(m, n - 4000 - 1); /* the newest goes */
        CHECK_EQ_INT(ids_of(m, (uint64_t)(n - 1) * 0x9e3779b97f4a7c15ULL, ids, 2), 0);
        kurz_urlmap_clear(m);
        CHECK_EQ_INT((int)kurz_urlmap_size(m), 0);
        CHECK_EQ_INT(ids_of(m, 0, ids, 2), 0);
        CHECK_EQ_INT(kurz_urlmap_add(m, 0, 5), 0);
        CHECK_EQ_INT(ids_of(m, 0, ids, 2), 1);
        kurz_urlmap_free(m);
}

int main(void)
{
        RUN(test_find);
        RUN(test_growth_and_truncate);
        TEST_END("urlmap");
}

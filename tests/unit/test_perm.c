/* tests/unit/test_perm.c - the code permutation: distinct counters give
 * distinct in-range codes, it inverts, it depends on the key, it scatters
 * consecutive counters, and a key's mapping never changes. */
#include <stdint.h>
#include <stdlib.h>

#include "ids/perm.h"
#include "test.h"

static const uint8_t key_a[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                  0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
static const uint8_t key_b[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                  0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xfe};

static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint64_t rng(void)
{
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

/* Maps n consecutive counters from start; checks range and distinctness. */
static void check_distinct_run(const struct kurz_perm *p, uint64_t start, size_t n)
{
        uint64_t *out = malloc(n * sizeof(*out));
        size_t dups = 0, out_of_range = 0;

        CHECK(out != NULL);
        if (!out)
                return;
        for (size_t i = 0; i < n; i++) {
                out[i] = kurz_perm_apply(p, start + i);
                if (out[i] >= KURZ_PERM_DOMAIN)
                        out_of_range++;
        }
        qsort(out, n, sizeof(*out), cmp_u64);
        for (size_t i = 1; i < n; i++)
                if (out[i] == out[i - 1])
                        dups++;
        CHECK_EQ_INT(out_of_range, 0);
        CHECK_EQ_INT(dups, 0);
        free(out);
}

static void test_distinct_in_range(void)
{
        struct kurz_perm p;

        kurz_perm_init(&p, key_a);
        check_distinct_run(&p, 0, 200000);
        /* The top of the domain too. */
        check_distinct_run(&p, KURZ_PERM_DOMAIN - 50000, 50000);
}

static void test_inverse(void)
{
        struct kurz_perm p;
        uint64_t x, y;

        kurz_perm_init(&p, key_a);
        for (int i = 0; i < 100000; i++) {
                x = rng() % KURZ_PERM_DOMAIN;
                y = kurz_perm_apply(&p, x);
                CHECK(y < KURZ_PERM_DOMAIN);
                CHECK(kurz_perm_invert(&p, y) == x);
                /* and the other way round */
                CHECK(kurz_perm_apply(&p, kurz_perm_invert(&p, x)) == x);
                if (test_case_failed)
                        return;
        }
        CHECK(kurz_perm_invert(&p, kurz_perm_apply(&p, 0)) == 0);
        CHECK(kurz_perm_invert(&p, kurz_perm_apply(&p, KURZ_PERM_DOMAIN - 1)) ==
              KURZ_PERM_DOMAIN - 1);
}

static void test_key_matters(void)
{
        struct kurz_perm a, b;
        int same = 0;

        kurz_perm_init(&a, key_a);
        kurz_perm_init(&b, key_b); /* one bit apart */
        for (uint64_t x = 0; x < 10000; x++)
                if (kurz_perm_apply(&a, x) == kurz_perm_apply(&b, x))
                        same++;
        /* Chance agreement is ~10000 / 62^7; allow one. */
        CHECK(same <= 1);
}

static void test_scatters_consecutive(void)
{
        struct kurz_perm p;
        uint64_t prev, cur, d;
        int close = 0;

        kurz_perm_init(&p, key_a);
        prev = kurz_perm_apply(&p, 1000);
        for (uint64_t x = 1001; x < 21000; x++) {
                cur = kurz_perm_apply(&p, x);
                d = cur > prev ? cur - prev : prev - cur;
                /* Within 62^4 means the 7-char codes share their first 3
                 * digits; random pairs do so with probability ~2 / 62^3. */
                if (d < 62ULL * 62 * 62 * 62)
                        close++;
                prev = cur;
        }
        CHECK(close <= 5);
        /* Not the identity, either. */
        CHECK(kurz_perm_apply(&p, 0) != 0 || kurz_perm_apply(&p, 1) != 1);
}

static void test_mapping_is_stable(void)
{
        struct kurz_perm p;

        /* Codes already issued were made by this mapping: if it changed, new
         * counters could map onto old codes. Pinned values guard it. */
        kurz_perm_init(&p, key_a);
        CHECK(kurz_perm_apply(&p, 0) == 2846041876772ULL);
        CHECK(kurz_perm_apply(&p, 1) == 796202237212ULL);
        CHECK(kurz_perm_apply(&p, 123456789) == 3052860611261ULL);
}

int main(void)
{
        RUN(test_distinct_in_range);
        RUN(test_inverse);
        RUN(test_key_matters);
        RUN(test_scatters_consecutive);
        RUN(test_mapping_is_stable);
        TEST_END("perm");
}

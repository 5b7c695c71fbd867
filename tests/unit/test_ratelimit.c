/* tests/unit/test_ratelimit.c - sliding-window limits: exactly `limit`
 * requests per window, a truthful Retry-After, recovery as the window slides,
 * independent keys, and a bounded number of remembered keys that still keeps
 * an active abuser limited. */
#include <stdint.h>
#include <stdio.h>

#include "limit/ratelimit.h"
#include "test.h"

#define W  60000
#define T0 ((uint64_t)W * 1000) /* the start of a window */

static bool take(struct kurz_ratelimit *rl, const char *key, uint64_t now, unsigned *retry)
{
        return kurz_ratelimit_take(rl, kurz_str_c(key), now, retry);
}

static void test_exact_limit(void)
{
        struct kurz_ratelimit *rl = kurz_ratelimit_new(5, W, 1000);
        unsigned retry = 0;

        CHECK(rl != NULL);
        for (int i = 0; i < 5; i++)
                CHECK(take(rl, "1.2.3.4", T0 + (uint64_t)i, &retry));
        CHECK(!take(rl, "1.2.3.4", T0 + 10, &retry));
        /* Five counted in this window; in the next one they weigh in until
         * prev * (1 - x/W) <= 4, i.e. 12 s into it: 72 s from now. */
        CHECK_EQ_INT(retry, 72);
        CHECK(!take(rl, "1.2.3.4", T0 + 30000, &retry));
        CHECK_EQ_INT(retry, 42);
        CHECK(!take(rl, "1.2.3.4", T0 + W + 11000, &retry));
        CHECK(retry >= 1);
        CHECK(take(rl, "1.2.3.4", T0 + W + 12000, &retry));
        CHECK(!take(rl, "1.2.3.4", T0 + W + 12001, &retry));
        CHECK(retry >= 1);
        kurz_ratelimit_free(rl);
}

static void test_window_slides(void)
{
        struct kurz_ratelimit *rl = kurz_ratelimit_new(3, W, 1000);
        unsigned retry = 0;

        for (int i = 0; i < 3; i++)
                CHECK(take(rl, "k", T0 + 100, &retry));
        CHECK(!take(rl, "k", T0 + 200, &retry));
        /* Refused requests are not counted. */
        CHECK(!take(rl, "k", T0 + 300, &retry));
        /* Right at the next window the previous one still counts in full. */
        CHECK(!take(rl, "k", T0 + W, &retry));
        /* Two windows later it is forgotten: a full quota again. */
        for (int i = 0; i < 3; i++)
                CHECK(take(rl, "k", T0 + 2 * W + 5, &retry));
        CHECK(!take(rl, "k", T0 + 2 * W + 6, &retry));
        kurz_ratelimit_free(rl);
}

static void test_independent_keys(void)
{
        struct kurz_ratelimit *rl = kurz_ratelimit_new(2, W, 1000);
        char a[101], b[101];

        CHECK(take(rl, "a", T0, NULL));
        CHECK(take(rl, "a", T0, NULL));
        CHECK(!take(rl, "a", T0, NULL));
        CHECK(take(rl, "b", T0, NULL));
        CHECK(take(rl, "b", T0, NULL));
        CHECK(!take(rl, "b", T0, NULL));
        CHECK(take(rl, "", T0, NULL));

        /* Long keys sharing a long prefix are still different keys. */
        memset(a, 'x', 100);
        memcpy(b, a, 100);
        a[100] = b[100] = '\0';
        b[99] = 'y';
        CHECK(take(rl, a, T0, NULL));
        CHECK(take(rl, a, T0, NULL));
        CHECK(!take(rl, a, T0, NULL));
        CHECK(take(rl, b, T0, NULL));
        kurz_ratelimit_free(rl);
}

static void test_unlimited(void)
{
        struct kurz_ratelimit *rl = kurz_ratelimit_new(0, W, 10);

        for (int i = 0; i < 1000; i++)
                CHECK(take(rl, "k", T0, NULL));
        kurz_ratelimit_free(rl);
}

static void test_bounded_keys(void)
{
        struct kurz_ratelimit *rl = kurz_ratelimit_new(3, W, 100);
        char key[32];
        unsigned retry;

        for (int i = 0; i < 3; i++)
                CHECK(take(rl, "abuser", T0, NULL));
        for (int i = 0; i < 10000; i++) {
                snprintf(key, sizeof(key), "10.0.%d.%d", i / 256, i % 256);
                CHECK(take(rl, key, T0 + (uint64_t)i, NULL));
                /* The abuser keeps knocking: recently seen, never dropped. */
                CHECK(!take(rl, "abuser", T0 + (uint64_t)i, &retry));
                if (kurz_ratelimit_keys(rl) > 100) {
                        CHECK(kurz_ratelimit_keys(rl) <= 100);
                        break;
                }
        }
        CHECK(kurz_ratelimit_keys(rl) <= 100);
        CHECK(kurz_ratelimit_keys(rl) >= 50);
        kurz_ratelimit_free(rl);

        /* Tiny tables work too. */
        rl = kurz_ratelimit_new(1, W, 1);
        CHECK(take(rl, "a", T0, NULL));
        CHECK(take(rl, "b", T0, NULL));
        CHECK_EQ_INT(kurz_ratelimit_keys(rl), 1);
        CHECK(!take(rl, "b", T0, NULL));
        kurz_ratelimit_free(rl);
}

int main(void)
{
        RUN(test_exact_limit);
        RUN(test_window_slides);
        RUN(test_independent_keys);
        RUN(test_unlimited);
        RUN(test_bounded_keys);
        TEST_END("ratelimit");
}

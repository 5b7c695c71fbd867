/* tests/unit/test_clicks.c - per-thread click counters: aggregates per
 * (code, day) with the latest access, detaching hands everything over once
 * and leaves an empty table, growth keeps every count, threads never mix, a
 * detached table is read back in chunks. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "stats/clicks.h"
#include "test.h"

#define DAY 86400

/* Detaches thread's counts into a malloc'ed array (*out, NULL when none):
 * returns their number or a negative errno. */
static int take(struct kurz_clicks *c, unsigned thread, struct kurz_click **out)
{
        struct kurz_clicks_taken *k;
        size_t pos = 0, n;
        int rc = kurz_clicks_detach(c, thread, &k);

        *out = NULL;
        if (rc < 0 || !k)
                return rc;
        n = kurz_clicks_taken_count(k);
        *out = malloc(n * sizeof(**out));
        CHECK(*out != NULL);
        n = kurz_clicks_next(k, &pos, *out, n);
        kurz_clicks_taken_free(k);
        return (int)n;
}

static const struct kurz_click *find(const struct kurz_click *a, int n, const char *code,
                                     int32_t day)
{
        for (int i = 0; i < n; i++)
                if (strcmp(a[i].code, code) == 0 && a[i].day == day)
                        return &a[i];
        return NULL;
}

static void test_aggregate(void)
{
        struct kurz_clicks *c = kurz_clicks_new(2, 64);
        const struct kurz_click *k;
        struct kurz_click *out;
        int64_t t = 19000 * (int64_t)DAY; /* midnight UTC of day 19000 */
        int n;

        CHECK(c != NULL);
        CHECK_EQ_INT(kurz_clicks_add(c, 0, KURZ_STR_LIT("abc"), t + 100), 0);
        CHECK_EQ_INT(kurz_clicks_add(c, 0, KURZ_STR_LIT("abc"), t + 200), 0);
        CHECK_EQ_INT(kurz_clicks_add(c, 0, KURZ_STR_LIT("abc"), t + 50), 0);
        CHECK_EQ_INT(kurz_clicks_add(c, 0, KURZ_STR_LIT("abc"), t + DAY + 5), 0);
        CHECK_EQ_INT(kurz_clicks_add(c, 0, KURZ_STR_LIT("xyz"), t + DAY - 1), 0);
        CHECK_EQ_INT(kurz_clicks_add(c, 1, KURZ_STR_LIT("abc"), t + 300), 0);

        n = take(c, 0, &out);
        CHECK_EQ_INT(n, 3);
        k = find(out, n, "abc", 19000);
        CHECK(k && k->count == 3 && k->last_access == t + 200);
        k = find(out, n, "abc", 19001);
        CHECK(k && k->count == 1 && k->last_access == t + DAY + 5);
        k = find(out, n, "xyz", 19000);
        CHECK(k && k->count == 1 && k->last_access == t + DAY - 1);
        free(out);

        /* Taken means gone; the other thread's table is untouched. */
        CHECK_EQ_INT(take(c, 0, &out), 0);
        free(out);
        n = take(c, 1, &out);
        CHECK_EQ_INT(n, 1);
        CHECK(n == 1 && out[0].count == 1 && out[0].last_access == t + 300);
        free(out);

        /* Counting starts again from zero. */
        CHECK_EQ_INT(kurz_clicks_add(c, 0, KURZ_STR_LIT("abc"), t + 400), 0);
        n = take(c, 0, &out);
        CHECK_EQ_INT(n, 1);
        CHECK(n == 1 && out[0].count == 1);
        free(out);

        /* Before 1970 the day rounds down. */
        CHECK_EQ_INT(kurz_clicks_add(c, 0, KURZ_STR_LIT("old"), -1), 0);
        n = take(c, 0, &out);
        CHECK(n == 1 && out[0].day == -1);
        free(out);

        CHECK_EQ_INT(kurz_clicks_add(c, 2, KURZ_STR_LIT("abc"), t), -EINVAL);
        CHECK_EQ_INT(kurz_clicks_add(c, 0, KURZ_STR_LIT(""), t), -EINVAL);
        CHECK_EQ_INT(kurz_clicks_add(c, 0,
                                     kurz_str_c("0123456789012345678901234567890123456789"
                                                "01234567890123456789012345"),
                                     t),
                     -EINVAL);
        CHECK_EQ_INT(kurz_clicks_dropped(c), 0);
        kurz_clicks_free(c);
}

#define CODES 3000

static void test_growth(void)
{
        struct kurz_clicks *c = kurz_clicks_new(1, 4);
        struct kurz_click *out;
        char code[16];
        bool ok = true;
        int n;

        for (int round = 0; round < 2; round++) {
                /* Code i gets i % 7 + 1 clicks, spread over two days. */
                for (int i = 0; i < CODES; i++) {
                        snprintf(code, sizeof(code), "k%d", i);
                        for (int j = 0; j <= i % 7; j++)
                                CHECK_EQ_INT(kurz_clicks_add(c, 0, kurz_str_c(code),
                                                             (int64_t)(j % 2) * DAY + i),
                                             0);
                }
                n = take(c, 0, &out);
                CHECK(n > CODES);
                for (int i = 0; i < CODES && n > 0; i++) {
                        const struct kurz_click *d0, *d1;
                        int64_t want0 = i % 7 / 2 + 1, want1 = (i % 7 + 1) / 2;

                        snprintf(code, sizeof(code), "k%d", i);
                        d0 = find(out, n, code, 0);
                        d1 = find(out, n, code, 1);
                        ok &= d0 && d0->count == want0 && d0->last_access == i;
                        ok &= want1 ? d1 && d1->count == want1 && d1->last_access == DAY + i
                                    : d1 == NULL;
                }
                CHECK(ok);
                free(out);
                /* The big table went back to its small size: still works. */
                CHECK_EQ_INT(take(c, 0, &out), 0);
        }
        kurz_clicks_free(c);
}

static struct kurz_clicks *shared;

static void *counter(void *arg)
{
        unsigned id = (unsigned)(uintptr_t)arg;
        char code[16];

        for (int i = 0; i < 100000; i++) {
                snprintf(code, sizeof(code), "t%u-%d", id, i % 100);
                kurz_clicks_add(shared, id, kurz_str_c(code), 1000);
        }
        return NULL;
}

static void test_threads(void)
{
        pthread_t th[2];
        struct kurz_click *out;
        int64_t total;
        int n;

        shared = kurz_clicks_new(2, 16);
        for (unsigned i = 0; i < 2; i++)
                pthread_create(&th[i], NULL, counter, (void *)(uintptr_t)i);
        for (unsigned i = 0; i < 2; i++)
                pthread_join(th[i], NULL);
        for (unsigned i = 0; i < 2; i++) {
                char prefix[8];

                snprintf(prefix, sizeof(prefix), "t%u-", i);
                n = take(shared, i, &out);
                CHECK_EQ_INT(n, 100);
                total = 0;
                for (int j = 0; j < n; j++) {
                        CHECK(strncmp(out[j].code, prefix, strlen(prefix)) == 0);
                        total += out[j].count;
                }
                CHECK_EQ_INT(total, 100000);
                free(out);
        }
        kurz_clicks_free(shared);
}

/* A flush detaches a grown table whole: the loop keeps counting into a
 * fresh one at once, and the detached counts come out exactly, in chunks of
 * any size, on another thread's schedule. */
static void test_detach(void)
{
        struct kurz_clicks *c = kurz_clicks_new(1, 16);
        struct kurz_clicks_taken *k = NULL;
        struct kurz_click buf[7], *out;
        int64_t t = 19000 * (int64_t)DAY, total = 0;
        size_t pos = 0, n, seen = 0;
        char code[16];

        CHECK(c != NULL);
        CHECK_EQ_INT(kurz_clicks_detach(c, 0, &k), 0);
        CHECK(k == NULL); /* nothing counted */
        for (int i = 0; i < 5000; i++) {
                snprintf(code, sizeof(code), "d%d", i % 1000);
                CHECK_EQ_INT(kurz_clicks_add(c, 0, kurz_str_c(code), t + i), 0);
        }
        CHECK_EQ_INT(kurz_clicks_detach(c, 0, &k), 0);
        CHECK(k != NULL);
        CHECK_EQ_INT(kurz_clicks_taken_count(k), 1000);
        /* The thread counts on meanwhile, into an empty table. */
        CHECK_EQ_INT(kurz_clicks_add(c, 0, KURZ_STR_LIT("after"), t), 0);
        while ((n = kurz_clicks_next(k, &pos, buf, 7)) > 0) {
                CHECK(n <= 7);
                for (size_t i = 0; i < n; i++) {
                        CHECK_EQ_INT(buf[i].count, 5);
                        CHECK_EQ_INT(buf[i].day, 19000);
                        total += buf[i].count;
                }
                seen += n;
        }
        CHECK_EQ_INT(seen, 1000);
        CHECK_EQ_INT(total, 5000);
        CHECK_EQ_INT(kurz_clicks_next(k, &pos, buf, 7), 0);
        kurz_clicks_taken_free(k);
        kurz_clicks_taken_free(NULL);
        CHECK_EQ_INT(take(c, 0, &out), 1);
        CHECK_EQ_STR(out[0].code, "after");
        free(out);
        CHECK_EQ_INT(kurz_clicks_detach(c, 1, &k), -EINVAL);
        kurz_clicks_free(c);
}

int main(void)
{
        RUN(test_aggregate);
        RUN(test_growth);
        RUN(test_threads);
        RUN(test_detach);
        TEST_END("clicks");
}

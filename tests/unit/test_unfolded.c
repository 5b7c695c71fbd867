/* tests/unit/test_unfolded.c - the table of logged, unfolded clicks: rows
 * merge per (code, day) and widen their first and last click, a code's sum
 * lists its days in order, totals per day and overall, the day bound refuses
 * a batch whole, growth keeps every row, removal keeps the others findable,
 * clear empties it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "store/unfolded.h"
#include "test.h"

static struct kurz_unfolded_row row(const char *code, int32_t day, int64_t n, int64_t at)
{
        struct kurz_unfolded_row r = {.day = day, .count = n, .first_at = at, .last_at = at};

        snprintf(r.code, sizeof(r.code), "%s", code);
        return r;
}

/* Reserves for r alone, then adds it. */
static void add(struct kurz_unfolded *u, struct kurz_unfolded_row r)
{
        struct kurz_click k = {.day = r.day, .count = r.count, .last_access = r.last_at};

        snprintf(k.code, sizeof(k.code), "%s", r.code);
        CHECK_EQ_INT(kurz_unfolded_reserve(u, &k, 1), 0);
        kurz_unfolded_add(u, &r);
}

static void test_merge_and_sum(void)
{
        struct kurz_unfolded *u = kurz_unfolded_new();
        struct kurz_unfolded_sum s;

        CHECK(u != NULL);
        if (!u)
                return;
        add(u, row("abc", 101, 2, 500));
        add(u, row("abc", 100, 3, 300));
        add(u, row("abc", 101, 4, 450)); /* earlier first click of day 101 */
        add(u, row("abc", 100, 1, 350));
        add(u, row("abcd", 100, 9, 310)); /* a longer code is another code */
        CHECK_EQ_INT(kurz_unfolded_rows(u), 3);
        CHECK(kurz_unfolded_has(u, "abc", 3));
        CHECK(kurz_unfolded_has(u, "abcd", 4));
        CHECK(!kurz_unfolded_has(u, "ab", 2));
        kurz_unfolded_sum(u, "abc", 3, &s);
        CHECK_EQ_INT(s.total, 10);
        CHECK_EQ_INT(s.ndays, 2);
        CHECK_EQ_INT(s.days[0].day, 100);
        CHECK_EQ_INT(s.days[0].clicks, 4);
        CHECK_EQ_INT(s.days[1].day, 101);
        CHECK_EQ_INT(s.days[1].clicks, 6);
        CHECK_EQ_INT(s.first_at, 300); /* of its earliest day */
        CHECK_EQ_INT(s.last_at, 500);  /* of its latest day */
        kurz_unfolded_sum(u, "zzz", 3, &s);
        CHECK_EQ_INT(s.total, 0);
        CHECK_EQ_INT(s.ndays, 0);
        CHECK_EQ_INT(kurz_unfolded_total(u), 19);
        CHECK_EQ_INT(kurz_unfolded_day_total(u, 100), 13);
        CHECK_EQ_INT(kurz_unfolded_day_total(u, 101), 6);
        CHECK_EQ_INT(kurz_unfolded_day_total(u, 99), 0);
        kurz_unfolded_clear(u);
        CHECK_EQ_INT(kurz_unfolded_rows(u), 0);
        CHECK_EQ_INT(kurz_unfolded_total(u), 0);
        CHECK(!kurz_unfolded_has(u, "abc", 3));
        add(u, row("abc", 7, 1, 1));
        kurz_unfolded_sum(u, "abc", 3, &s);
        CHECK_EQ_INT(s.total, 1);
        kurz_unfolded_free(u);
}

static void test_day_bound(void)
{
        struct kurz_unfolded *u = kurz_unfolded_new();
        struct kurz_click k[2] = {{.code = "x", .day = 1000, .count = 1},
                                  {.code = "y", .day = 2000, .count = 1}};

        CHECK(u != NULL);
        if (!u)
                return;
        for (int d = 0; d < KURZ_UNFOLDED_DAYS - 1; d++)
                add(u, row("x", d, 1, d));
        /* One new day fits, two do not: the batch is refused whole. */
        CHECK_EQ_INT(kurz_unfolded_reserve(u, k, 2), -E2BIG);
        CHECK_EQ_INT(kurz_unfolded_reserve(u, k, 1), 0);
        k[1].day = 3; /* a day it holds */
        CHECK_EQ_INT(kurz_unfolded_reserve(u, k, 2), 0);
        kurz_unfolded_clear(u);
        k[1].day = 2000;
        CHECK_EQ_INT(kurz_unfolded_reserve(u, k, 2), 0);
        kurz_unfolded_free(u);
}

static void test_growth(void)
{
        enum { N = 50000 };
        struct kurz_unfolded *u = kurz_unfolded_new();
        struct kurz_click *k = calloc(N, sizeof(*k));
        struct kurz_unfolded_sum s;
        int64_t sum = 0;

        CHECK(u != NULL && k != NULL);
        if (!u || !k)
                goto out;
        for (int i = 0; i < N; i++) {
                snprintf(k[i].code, sizeof(k[i].code), "c%d", i);
                k[i].day = 5 + i % 2;
        }
        CHECK_EQ_INT(kurz_unfolded_reserve(u, k, N), 0);
        for (int i = 0; i < N; i++) {
                struct kurz_unfolded_row r = row(k[i].code, k[i].day, i + 1, i);

                kurz_unfolded_add(u, &r);
                sum += i + 1;
        }
        /* a second round adds to the same rows (room reserved again) */
        CHECK_EQ_INT(kurz_unfolded_reserve(u, k, N), 0);
        for (int i = 0; i < N; i++) {
                struct kurz_unfolded_row r = row(k[i].code, k[i].day, 1, i);

                kurz_unfolded_add(u, &r);
        }
        CHECK_EQ_INT(kurz_unfolded_rows(u), N);
        CHECK_EQ_INT(kurz_unfolded_total(u), sum + N);
        for (int i = 0; i < N; i += 997) {
                kurz_unfolded_sum(u, k[i].code, strlen(k[i].code), &s);
                CHECK_EQ_INT(s.total, i + 2);
        }
        {
                const struct kurz_unfolded_row *rows = kurz_unfolded_data(u);
                int64_t seen = 0;

                for (size_t i = 0; i < kurz_unfolded_rows(u); i++)
                        seen += rows[i].count;
                CHECK_EQ_INT(seen, sum + N);
        }
out:
        free(k);
        kurz_unfolded_free(u);
}

static void test_remove(void)
{
        enum { N = 20000 };
        struct kurz_unfolded *u = kurz_unfolded_new();
        struct kurz_unfolded_sum s;
        char code[KURZ_CODE_MAX + 1];

        CHECK(u != NULL);
        if (!u)
                return;
        for (int i = 0; i < N; i++) {
                snprintf(code, sizeof(code), "r%d", i);
                add(u, row(code, 10, 1, i));
                if (i % 3 == 0)
                        add(u, row(code, 11, 2, i));
        }
        /* remove every other code (both its days): the rest stay findable
         * through the index whose probe runs were shifted */
        for (int i = 0; i < N; i += 2) {
                snprintf(code, sizeof(code), "r%d", i);
                kurz_unfolded_remove(u, code, strlen(code));
        }
        kurz_unfolded_remove(u, "absent", 6);
        for (int i = 0; i < N; i++) {
                snprintf(code, sizeof(code), "r%d", i);
                kurz_unfolded_sum(u, code, strlen(code), &s);
                if (i % 2 == 0)
                        CHECK_EQ_INT(s.total, 0);
                else
                        CHECK_EQ_INT(s.total, i % 3 == 0 ? 3 : 1);
        }
        {
                int64_t want = 0, want11 = 0, rows = 0;

                for (int i = 1; i < N; i += 2) {
                        want += i % 3 == 0 ? 3 : 1;
                        want11 += i % 3 == 0 ? 2 : 0;
                        rows += i % 3 == 0 ? 2 : 1;
                }
                CHECK_EQ_INT(kurz_unfolded_total(u), want);
                CHECK_EQ_INT(kurz_unfolded_day_total(u, 11), want11);
                CHECK_EQ_INT(kurz_unfolded_rows(u), rows);
        }
        /* a day whose last row goes frees its place in the day bound */
        kurz_unfolded_clear(u);
        add(u, row("only", 500, 1, 1));
        kurz_unfolded_remove(u, "only", 4);
        CHECK_EQ_INT(kurz_unfolded_day_total(u, 500), 0);
        for (int d = 0; d < KURZ_UNFOLDED_DAYS; d++)
                add(u, row("x", 1000 + d, 1, d));
        CHECK_EQ_INT(kurz_unfolded_rows(u), KURZ_UNFOLDED_DAYS);
        kurz_unfolded_free(u);
}

int main(void)
{
        RUN(test_merge_and_sum);
        RUN(test_day_bound);
        RUN(test_growth);
        RUN(test_remove);
        TEST_END("unfolded");
}

/* tests/unit/test_snowflake.c - snowflake ids: strictly increasing, the bit
 * layout, sequence overflow, clock steps backwards (small: waited out; large:
 * refused, then recovered), bad worker ids and concurrent callers. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "ids/snowflake.h"
#include "test.h"

#define EPOCH 1704067200000ULL

/* A fake clock: sleeping advances it, unless frozen. */
struct fake_clock {
        uint64_t now;
        uint64_t slept;
        int sleeps;
        int frozen;
};

static uint64_t fake_now(void *arg)
{
        return ((struct fake_clock *)arg)->now;
}

static void fake_sleep(void *arg, unsigned ms)
{
        struct fake_clock *c = arg;

        c->sleeps++;
        c->slept += ms;
        if (!c->frozen)
                c->now += ms;
}

static struct kurz_snowflake *fake_new(struct fake_clock *c, unsigned worker)
{
        struct kurz_snowflake_config cfg = {
            .epoch_ms = EPOCH,
            .worker_id = worker,
            .max_wait_ms = 1000,
            .clock = fake_now,
            .sleep = fake_sleep,
            .clock_arg = c,
        };
        struct kurz_snowflake *s = NULL;

        CHECK_EQ_INT(kurz_snowflake_new(&cfg, &s), 0);
        return s;
}

static void test_monotonic_real_clock(void)
{
        struct kurz_snowflake *s;
        uint64_t prev = 0, id;
        struct kurz_snowflake_config cfg = {.worker_id = 5};

        CHECK_EQ_INT(kurz_snowflake_new(&cfg, &s), 0);
        if (!s)
                return;
        for (int i = 0; i < 100000; i++) {
                CHECK_EQ_INT(kurz_snowflake_next(s, &id), 0);
                CHECK(id > prev);
                if (test_case_failed)
                        break;
                prev = id;
        }
        kurz_snowflake_free(s);
}

static void test_layout(void)
{
        struct fake_clock c = {.now = EPOCH + 123456789};
        struct kurz_snowflake *s = fake_new(&c, 1023);
        uint64_t id;

        if (!s)
                return;
        CHECK_EQ_INT(kurz_snowflake_next(s, &id), 0);
        CHECK(id >> 22 == 123456789);
        CHECK_EQ_INT((id >> 12) & 1023, 1023);
        CHECK_EQ_INT(id & 4095, 0);
        CHECK_EQ_INT(kurz_snowflake_next(s, &id), 0);
        CHECK(id >> 22 == 123456789);
        CHECK_EQ_INT(id & 4095, 1);
        c.now++;
        CHECK_EQ_INT(kurz_snowflake_next(s, &id), 0);
        CHECK(id >> 22 == 123456790);
        CHECK_EQ_INT(id & 4095, 0);
        /* The top bit stays clear for 2^41 ms (~69 years). */
        c.now = EPOCH + (1ULL << 41) - 1;
        CHECK_EQ_INT(kurz_snowflake_next(s, &id), 0);
        CHECK(id >> 63 == 0);
        CHECK(id >> 22 == (1ULL << 41) - 1);
        kurz_snowflake_free(s);
}

static void test_sequence_overflow(void)
{
        struct fake_clock c = {.now = EPOCH + 1000};
        struct kurz_snowflake *s = fake_new(&c, 7);
        uint64_t id, prev = 0;

        if (!s)
                return;
        for (int i = 0; i < 4096; i++) {
                CHECK_EQ_INT(kurz_snowflake_next(s, &id), 0);
                CHECK(id > prev);
                prev = id;
        }
        CHECK_EQ_INT(c.sleeps, 0);
        CHECK_EQ_INT(prev & 4095, 4095);
        /* The 4097th id in the same millisecond waits for the next one. */
        CHECK_EQ_INT(kurz_snowflake_next(s, &id), 0);
        CHECK(c.sleeps >= 1);
        CHECK(id > prev);
        CHECK(id >> 22 == 1001);
        CHECK_EQ_INT(id & 4095, 0);
        kurz_snowflake_free(s);
}

static void test_small_step_back_waits(void)
{
        struct fake_clock c = {.now = EPOCH + 50000};
        struct kurz_snowflake *s = fake_new(&c, 1);
        uint64_t id, prev;

        if (!s)
                return;
        CHECK_EQ_INT(kurz_snowflake_next(s, &prev), 0);
        c.now -= 300; /* NTP stepped the clock back 300 ms */
        CHECK_EQ_INT(kurz_snowflake_next(s, &id), 0);
        CHECK(id > prev);
        CHECK(c.slept >= 300);
        CHECK(c.slept <= 301);
        kurz_snowflake_free(s);
}

static void test_big_step_back_fails_then_recovers(void)
{
        struct fake_clock c = {.now = EPOCH + 50000};
        struct kurz_snowflake *s = fake_new(&c, 1);
        uint64_t id = 0, prev;

        if (!s)
                return;
        CHECK_EQ_INT(kurz_snowflake_next(s, &prev), 0);
        c.now -= 5000; /* beyond max_wait_ms = 1000 */
        CHECK_EQ_INT(kurz_snowflake_next(s, &id), -EAGAIN);
        CHECK_EQ_INT(c.sleeps, 0); /* refused at once, not after a wait */
        c.now += 5000;             /* the clock is back */
        CHECK_EQ_INT(kurz_snowflake_next(s, &id), 0);
        CHECK(id > prev);
        kurz_snowflake_free(s);
}

static void test_stuck_clock_does_not_hang(void)
{
        struct fake_clock c = {.now = EPOCH + 50000};
        struct kurz_snowflake *s = fake_new(&c, 1);
        uint64_t id, prev;

        if (!s)
                return;
        CHECK_EQ_INT(kurz_snowflake_next(s, &prev), 0);
        /* Behind by a little, and sleeping never moves it: give up. */
        c.now -= 10;
        c.frozen = 1;
        CHECK_EQ_INT(kurz_snowflake_next(s, &id), -EAGAIN);
        CHECK(c.slept <= 2000);
        kurz_snowflake_free(s);
}

static void test_before_epoch(void)
{
        struct fake_clock c = {.now = EPOCH - 1};
        struct kurz_snowflake *s = fake_new(&c, 0);
        uint64_t id;

        if (!s)
                return;
        CHECK_EQ_INT(kurz_snowflake_next(s, &id), -EAGAIN);
        c.now = EPOCH;
        CHECK_EQ_INT(kurz_snowflake_next(s, &id), 0);
        CHECK_EQ_INT(id >> 22, 0);
        kurz_snowflake_free(s);
}

static void test_worker_range(void)
{
        struct kurz_snowflake_config cfg = {.worker_id = 1024};
        struct kurz_snowflake *s = (struct kurz_snowflake *)&cfg;

        CHECK_EQ_INT(kurz_snowflake_new(&cfg, &s), -EINVAL);
        CHECK(s == NULL);
        cfg.worker_id = 1023;
        CHECK_EQ_INT(kurz_snowflake_new(&cfg, &s), 0);
        kurz_snowflake_free(s);
        kurz_snowflake_free(NULL);
}

#define THREADS    4
#define PER_THREAD 25000

struct worker_arg {
        struct kurz_snowflake *s;
        uint64_t *ids;
        int errors;
};

static void *worker_main(void *p)
{
        struct worker_arg *w = p;

        for (int i = 0; i < PER_THREAD; i++)
                if (kurz_snowflake_next(w->s, &w->ids[i]) != 0)
                        w->errors++;
        return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static void test_concurrent_unique(void)
{
        struct kurz_snowflake_config cfg = {.worker_id = 42};
        struct kurz_snowflake *s;
        struct worker_arg w[THREADS];
        pthread_t t[THREADS];
        uint64_t *all = malloc(sizeof(*all) * THREADS * PER_THREAD);
        int dups = 0;

        CHECK(all != NULL);
        if (!all || kurz_snowflake_new(&cfg, &s) != 0) {
                free(all);
                return;
        }
        for (int i = 0; i < THREADS; i++) {
                w[i] = (struct worker_arg){.s = s, .ids = all + i * PER_THREAD};
                CHECK_EQ_INT(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
        }
        for (int i = 0; i < THREADS; i++) {
                pthread_join(t[i], NULL);
                CHECK_EQ_INT(w[i].errors, 0);
                /* Each thread sees its own ids increase. */
                for (int j = 1; j < PER_THREAD; j++)
                        if (w[i].ids[j] <= w[i].ids[j - 1])
                                dups++;
        }
        qsort(all, THREADS * PER_THREAD, sizeof(*all), cmp_u64);
        for (int i = 1; i < THREADS * PER_THREAD; i++)
                if (all[i] == all[i - 1])
                        dups++;
        CHECK_EQ_INT(dups, 0);
        kurz_snowflake_free(s);
        free(all);
}

int main(void)
{
        RUN(test_monotonic_real_clock);
        RUN(test_layout);
        RUN(test_sequence_overflow);
        RUN(test_small_step_back_waits);
        RUN(test_big_step_back_fails_then_recovers);
        RUN(test_stuck_clock_does_not_hang);
        RUN(test_before_epoch);
        RUN(test_worker_range);
        RUN(test_concurrent_unique);
        TEST_END("snowflake");
}

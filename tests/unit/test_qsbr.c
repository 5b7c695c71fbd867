/* tests/unit/test_qsbr.c - QSBR: nothing retired is freed while a reader that
 * might hold it is online, everything is freed once readers pass a quiescent
 * state or go offline, and a multi-threaded reader/writer stress stays clean
 * under AddressSanitizer (which catches any early free). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "test.h"
#include "util/qsbr.h"

static int freed;

static void count_free(void *p)
{
        freed++;
        free(p);
}

static void test_grace_period(void)
{
        struct kurz_qsbr *q = kurz_qsbr_new(2);

        CHECK(q != NULL);
        if (!q)
                return;
        freed = 0;
        kurz_qsbr_online(q, 0);
        kurz_qsbr_online(q, 1);
        CHECK_EQ_INT(kurz_qsbr_retire(q, malloc(16), count_free), 0);
        CHECK_EQ_INT(kurz_qsbr_retire(q, malloc(16), count_free), 0);
        CHECK_EQ_INT(kurz_qsbr_pending(q), 2);
        CHECK_EQ_INT(kurz_qsbr_reclaim(q), 0);
        CHECK_EQ_INT(freed, 0);

        /* One reader passed a quiescent state, the other may still hold them. */
        kurz_qsbr_quiescent(q, 0);
        CHECK_EQ_INT(kurz_qsbr_reclaim(q), 0);
        CHECK_EQ_INT(freed, 0);

        /* Retired after reader 0's quiescent state: reader 0 must pass another. */
        CHECK_EQ_INT(kurz_qsbr_retire(q, malloc(16), count_free), 0);
        kurz_qsbr_quiescent(q, 1);
        CHECK_EQ_INT(kurz_qsbr_reclaim(q), 2);
        CHECK_EQ_INT(freed, 2);
        CHECK_EQ_INT(kurz_qsbr_pending(q), 1);

        kurz_qsbr_quiescent(q, 0);
        CHECK_EQ_INT(kurz_qsbr_reclaim(q), 1);
        CHECK_EQ_INT(freed, 3);

        /* Offline readers hold nothing back. */
        CHECK_EQ_INT(kurz_qsbr_retire(q, malloc(16), count_free), 0);
        kurz_qsbr_offline(q, 0);
        CHECK_EQ_INT(kurz_qsbr_reclaim(q), 0);
        kurz_qsbr_offline(q, 1);
        CHECK_EQ_INT(kurz_qsbr_reclaim(q), 1);
        CHECK_EQ_INT(freed, 4);
        CHECK_EQ_INT(kurz_qsbr_pending(q), 0);

        /* A reader coming online after a retirement cannot hold the object. */
        CHECK_EQ_INT(kurz_qsbr_retire(q, malloc(16), count_free), 0);
        kurz_qsbr_online(q, 0);
        CHECK_EQ_INT(kurz_qsbr_reclaim(q), 1);
        CHECK_EQ_INT(freed, 5);

        /* kurz_qsbr_free runs what is still pending. */
        CHECK_EQ_INT(kurz_qsbr_retire(q, malloc(16), count_free), 0);
        kurz_qsbr_offline(q, 0);
        kurz_qsbr_free(q);
        CHECK_EQ_INT(freed, 6);
}

struct obj {
        uint64_t magic;
        uint64_t value;
};

#define MAGIC   0x6b75727a71736272ull
#define READERS 3
#define ROUNDS  200000

static struct kurz_qsbr *stress_q;
static _Atomic(struct obj *) shared;
static atomic_bool stop;
static atomic_int bad;

static void obj_free(void *p)
{
        struct obj *o = p;

        o->magic = 0; /* a reader that still looked at it would see this */
        free(o);
}

static void *reader_main(void *arg)
{
        unsigned id = (unsigned)(uintptr_t)arg;
        unsigned long n = 0;

        kurz_qsbr_online(stress_q, id);
        while (!atomic_load(&stop)) {
                struct obj *o = atomic_load_explicit(&shared, memory_order_acquire);

                if (o->magic != MAGIC)
                        atomic_store(&bad, 1);
                if (++n % 64 == 0) {
                        kurz_qsbr_offline(stress_q, id);
                        kurz_qsbr_online(stress_q, id);
                } else {
                        kurz_qsbr_quiescent(stress_q, id);
                }
        }
        kurz_qsbr_offline(stress_q, id);
        return NULL;
}

static void test_stress(void)
{
        pthread_t th[READERS];
        struct obj *o;
        size_t freed_total = 0;

        stress_q = kurz_qsbr_new(READERS);
        CHECK(stress_q != NULL);
        if (!stress_q)
                return;
        o = malloc(sizeof(*o));
        o->magic = MAGIC;
        o->value = 0;
        atomic_store(&shared, o);
        for (unsigned i = 0; i < READERS; i++)
                pthread_create(&th[i], NULL, reader_main, (void *)(uintptr_t)i);
        for (unsigned long i = 1; i <= ROUNDS; i++) {
                struct obj *n = malloc(sizeof(*n)), *old;

                n->magic = MAGIC;
                n->value = i;
                old = atomic_exchange_explicit(&shared, n, memory_order_acq_rel);
                CHECK_EQ_INT(kurz_qsbr_retire(stress_q, old, obj_free), 0);
                if (i % 32 == 0)
                        freed_total += kurz_qsbr_reclaim(stress_q);
        }
        atomic_store(&stop, true);
        for (unsigned i = 0; i < READERS; i++)
                pthread_join(th[i], NULL);
        freed_total += kurz_qsbr_reclaim(stress_q);
        CHECK_EQ_INT(atomic_load(&bad), 0);
        /* All readers are offline: every retired object is gone. */
        CHECK_EQ_INT(freed_total, ROUNDS);
        CHECK_EQ_INT(kurz_qsbr_pending(stress_q), 0);
        free(atomic_load(&shared));
        kurz_qsbr_free(stress_q);
}

int main(void)
{
        RUN(test_grace_period);
        RUN(test_stress);
        TEST_END("qsbr");
}

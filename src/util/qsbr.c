/* util/qsbr.c - quiescent-state-based reclamation: a global epoch, one padded
 * slot per reader holding the epoch it last observed (0 = offline), and a
 * mutex-protected list of retired objects freed once every online reader has
 * observed an epoch newer than their retirement.
 *
 * Why it is safe (the memory-order argument):
 *
 * retire(): the writer has already unlinked the object (a store U) and then,
 * sequenced after U, does E = fetch_add(&global, 1) (seq_cst, so also a
 * release). The object is tagged with E, the value BEFORE the increment, and is
 * freed only when every online slot holds a value > E.
 *
 * A reader slot s > E was stored by quiescent()/online() after an acquire load
 * of global that returned s > E. That value was written by our fetch_add or by
 * a later fetch_add, which is in the release sequence headed by ours (RMWs
 * continue release sequences). So U happens-before every read the reader makes
 * after that load: it can no longer find the object. And every read it made
 * BEFORE that quiescent state happens-before our free, because the slot store
 * is a release and reclaim() loads the slot with acquire.
 *
 * offline() stores 0 with release: the reader's earlier reads happen-before a
 * reclaim() that sees 0.
 *
 * The delicate case is a reader coming online (0 -> s) while reclaim() runs:
 * the reader stores s and then loads shared pointers, the reclaimer frees and
 * then loads the slot. That is a store->load (Dekker) pattern that
 * acquire/release cannot order, so online() issues a seq_cst fence after its
 * slot store and reclaim() one before loading the slots. In the total order of
 * seq_cst fences either the reader's fence comes first - then the reclaimer
 * sees s (or later), and s <= E holds the object back - or the reclaimer's
 * fence comes first - then U (which happens-before it through the list mutex)
 * is visible to the reader's loads after its fence, and it cannot find the
 * object. quiescent() needs no fence: the slot was already non-zero, so the
 * reclaimer sees either the old or the new value, and both are only > E when
 * the reader really observed the increment. */
#include "util/qsbr.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#define CACHE_LINE 64

struct reader_slot {
        alignas(CACHE_LINE) _Atomic uint64_t epoch; /* 0 = offline */
        char pad[CACHE_LINE - sizeof(uint64_t)];
};

struct kurz_qsbr {
        alignas(CACHE_LINE) _Atomic uint64_t global; /* starts at 1, never 0 */
        char pad0[CACHE_LINE - sizeof(uint64_t)];
        pthread_mutex_t lock;           /* protects retired */
        struct kurz_qsbr_node *retired; /* newest first: epochs decrease along it */
        _Atomic size_t pending;
        unsigned nreaders;
        struct reader_slot *readers;
};

/* The retire() variant that takes any pointer wraps it in one of these. */
struct boxed {
        struct kurz_qsbr_node node; /* first: the node's address is the box's */
        void *ptr;
        void (*free_fn)(void *ptr);
};

/* A full fence. GCC's ThreadSanitizer does not model atomic_thread_fence and
 * warns about it; there a seq_cst read-modify-write stands in for it (TSan
 * checks happens-before through atomics, which the RMW provides). */
#ifdef __SANITIZE_THREAD__
static _Atomic uint64_t fence_dummy;

static inline void full_fence(void)
{
        atomic_fetch_add_explicit(&fence_dummy, 0, memory_order_seq_cst);
}
#else
static inline void full_fence(void)
{
        atomic_thread_fence(memory_order_seq_cst);
}
#endif

struct kurz_qsbr *kurz_qsbr_new(unsigned max_readers)
{
        struct kurz_qsbr *q;

        q = aligned_alloc(CACHE_LINE, sizeof(*q));
        if (!q)
                return NULL;
        atomic_init(&q->global, 1);
        q->retired = NULL;
        atomic_init(&q->pending, 0);
        q->nreaders = max_readers;
        q->readers = NULL;
        if (max_readers) {
                q->readers = aligned_alloc(CACHE_LINE, sizeof(*q->readers) * max_readers);
                if (!q->readers)
                        goto out_free_q;
                for (unsigned i = 0; i < max_readers; i++)
                        atomic_init(&q->readers[i].epoch, 0);
        }
        if (pthread_mutex_init(&q->lock, NULL) != 0)
                goto out_free_readers;
        return q;

out_free_readers:
        free(q->readers);
out_free_q:
        free(q);
        return NULL;
}

static void free_list(struct kurz_qsbr_node *n)
{
        while (n) {
                struct kurz_qsbr_node *next = n->next;

                n->free_fn(n);
                n = next;
        }
}

void kurz_qsbr_free(struct kurz_qsbr *q)
{
        if (!q)
                return;
        free_list(q->retired);
        pthread_mutex_destroy(&q->lock);
        free(q->readers);
        free(q);
}

void kurz_qsbr_online(struct kurz_qsbr *q, unsigned reader)
{
        uint64_t e = atomic_load_explicit(&q->global, memory_order_acquire);

        atomic_store_explicit(&q->readers[reader].epoch, e, memory_order_release);
        full_fence(); /* the slot store before any later load: see the top */
}

void kurz_qsbr_quiescent(struct kurz_qsbr *q, unsigned reader)
{
        struct reader_slot *s = &q->readers[reader];
        uint64_t e = atomic_load_explicit(&q->global, memory_order_acquire);

        /* Only this thread writes its slot, so a relaxed read of it is exact;
         * skipping an unchanged value keeps the line clean when idle. */
        if (atomic_load_explicit(&s->epoch, memory_order_relaxed) != e)
                atomic_store_explicit(&s->epoch, e, memory_order_release);
}

void kurz_qsbr_offline(struct kurz_qsbr *q, unsigned reader)
{
        atomic_store_explicit(&q->readers[reader].epoch, 0, memory_order_release);
}

void kurz_qsbr_retire_node(struct kurz_qsbr *q, struct kurz_qsbr_node *node,
                           void (*free_fn)(struct kurz_qsbr_node *node))
{
        node->free_fn = free_fn;
        pthread_mutex_lock(&q->lock);
        /* Taking the epoch under the lock keeps the list sorted (newest and
         * largest first), so reclaim() can cut it at the first old node. */
        node->epoch = atomic_fetch_add_explicit(&q->global, 1, memory_order_seq_cst);
        node->next = q->retired;
        q->retired = node;
        atomic_fetch_add_explicit(&q->pending, 1, memory_order_relaxed);
        pthread_mutex_unlock(&q->lock);
}

static void free_boxed(struct kurz_qsbr_node *node)
{
        struct boxed *b = (struct boxed *)node;

        b->free_fn(b->ptr);
        free(b);
}

int kurz_qsbr_retire(struct kurz_qsbr *q, void *ptr, void (*free_fn)(void *ptr))
{
        struct boxed *b = malloc(sizeof(*b));

        if (!b)
                return -ENOMEM;
        b->ptr = ptr;
        b->free_fn = free_fn;
        kurz_qsbr_retire_node(q, &b->node, free_boxed);
        return 0;
}

size_t kurz_qsbr_reclaim(struct kurz_qsbr *q)
{
        struct kurz_qsbr_node **link, *doomed, *n;
        uint64_t min = UINT64_MAX;
        size_t count = 0;

        if (atomic_load_explicit(&q->pending, memory_order_relaxed) == 0)
                return 0;
        pthread_mutex_lock(&q->lock);
        full_fence(); /* pairs with the fence in online(): see the top */
        for (unsigned i = 0; i < q->nreaders; i++) {
                uint64_t e = atomic_load_explicit(&q->readers[i].epoch, memory_order_acquire);

                if (e != 0 && e < min)
                        min = e;
        }
        /* Free nodes with epoch < min (all of them when nobody is online). The
         * list is sorted by decreasing epoch, so the doomed ones are a tail. */
        link = &q->retired;
        while (*link && (*link)->epoch >= min)
                link = &(*link)->next;
        doomed = *link;
        *link = NULL;
        for (n = doomed; n; n = n->next)
                count++;
        atomic_fetch_sub_explicit(&q->pending, count, memory_order_relaxed);
        pthread_mutex_unlock(&q->lock);
        /* Outside the lock: a free function may itself retire or reclaim. */
        free_list(doomed);
        return count;
}

size_t kurz_qsbr_pending(struct kurz_qsbr *q)
{
        return atomic_load_explicit(&q->pending, memory_order_relaxed);
}

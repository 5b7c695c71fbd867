/* store/writer.c - the writer thread: one queue of creates and one of jobs,
 * drained in submission order. All creates queued while the previous batch
 * was committing go into the next create_batch call (group commit). */
#include "store/writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "util/log.h"

#define DEFAULT_MAX_BATCH 1024
#define DEFAULT_MAX_QUEUE 65536

struct job {
        int (*fn)(struct kurz_store *s, void *arg);
        void (*done)(void *arg, int rc);
        void *arg;
        uint64_t after; /* creates submitted before this job */
        struct job *next;
};

struct kurz_writer {
        struct kurz_store *store;
        size_t max_batch, max_queue;
        kurz_code_fn gen;
        void *gen_arg;
        pthread_t thread;

        pthread_mutex_t mu; /* guards everything below */
        pthread_cond_t cv;  /* work arrived or stop began */
        struct kurz_writer_create *head, *tail;
        size_t queued;
        uint64_t submitted; /* creates ever queued */
        uint64_t taken;     /* creates ever taken into a batch */
        struct job *jhead, *jtail;
        bool stopping;
        bool idle; /* the thread waits on cv */

        /* Writer thread only: the batch being stored. */
        struct kurz_writer_create **batch;
        struct kurz_create *items;
};

/* Stores one batch of creates and completes them. Writer thread, no lock. */
static void run_batch(struct kurz_writer *w, size_t n)
{
        int rc;

        for (size_t i = 0; i < n; i++)
                w->items[i] = w->batch[i]->item;
        rc = w->store->ops->create_batch(w->store, w->items, n, w->gen, w->gen_arg);
        for (size_t i = 0; i < n; i++) {
                struct kurz_writer_create *c = w->batch[i];

                c->item = w->items[i];
                /* A store that failed without marking every item must not
                 * leave one looking undecided (or worse, successful). */
                if (rc < 0 && c->item.status != KURZ_CREATE_FAILED) {
                        c->item.status = KURZ_CREATE_FAILED;
                        c->item.err = rc;
                } else if (c->item.status == KURZ_CREATE_PENDING) {
                        c->item.status = KURZ_CREATE_FAILED;
                        c->item.err = -EIO;
                }
        }
        for (size_t i = 0; i < n; i++)
                w->batch[i]->done(w->batch[i]);
}

static void *writer_main(void *arg)
{
        struct kurz_writer *w = arg;
        struct job *job;
        size_t n, limit;
        int rc;

        pthread_setname_np(pthread_self(), "kurz-writer"); /* top -H, perf, make bench */
        pthread_mutex_lock(&w->mu);
        for (;;) {
                while (!w->head && !w->jhead && !w->stopping) {
                        w->idle = true;
                        pthread_cond_wait(&w->cv, &w->mu);
                        w->idle = false;
                }
                if (!w->head && !w->jhead)
                        break; /* stopping and drained */
                /* A job runs once every create submitted before it ran. */
                if (w->jhead && w->jhead->after <= w->taken) {
                        job = w->jhead;
                        w->jhead = job->next;
                        if (!w->jhead)
                                w->jtail = NULL;
                        pthread_mutex_unlock(&w->mu);
                        rc = job->fn(w->store, job->arg);
                        if (job->done)
                                job->done(job->arg, rc);
                        free(job);
                        pthread_mutex_lock(&w->mu);
                        continue;
                }
                /* Take every queued create (up to max_batch) submitted before
                 * the next job. */
                limit = w->max_batch;
                if (w->jhead && w->jhead->after - w->taken < limit)
                        limit = (size_t)(w->jhead->after - w->taken);
                for (n = 0; n < limit && w->head; n++) {
                        w->batch[n] = w->head;
                        w->head = w->head->next;
                }
                if (!w->head)
                        w->tail = NULL;
                w->queued -= n;
                w->taken += n;
                pthread_mutex_unlock(&w->mu);
                run_batch(w, n);
                pthread_mutex_lock(&w->mu);
        }
        pthread_mutex_unlock(&w->mu);
        return NULL;
}

int kurz_writer_start(struct kurz_store *s, const struct kurz_writer_config *cfg,
                      struct kurz_writer **out)
{
        struct kurz_writer *w;
        int rc;

        *out = NULL;
        if (!s || !cfg)
                return -EINVAL;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->store = s;
        w->max_batch = cfg->max_batch ? cfg->max_batch : DEFAULT_MAX_BATCH;
        w->max_queue = cfg->max_queue ? cfg->max_queue : DEFAULT_MAX_QUEUE;
        w->gen = cfg->gen;
        w->gen_arg = cfg->gen_arg;
        w->batch = calloc(w->max_batch, sizeof(*w->batch));
        w->items = calloc(w->max_batch, sizeof(*w->items));
        if (!w->batch || !w->items) {
                rc = -ENOMEM;
                goto out_free_w;
        }
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        rc = -pthread_create(&w->thread, NULL, writer_main, w);
        if (rc < 0)
                goto out_destroy;
        *out = w;
        return 0;

out_destroy:
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
out_free_w:
        free(w->items);
        free(w->batch);
        free(w);
        return rc;
}

void kurz_writer_stop(struct kurz_writer *w)
{
        if (!w)
                return;
        pthread_mutex_lock(&w->mu);
        w->stopping = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w->items);
        free(w->batch);
        free(w);
}

int kurz_writer_create(struct kurz_writer *w, struct kurz_writer_create *c)
{
        int rc = 0;

        c->next = NULL;
        c->item.status = KURZ_CREATE_PENDING;
        c->item.err = 0;
        pthread_mutex_lock(&w->mu);
        if (w->stopping) {
                rc = -ESHUTDOWN;
        } else if (w->queued >= w->max_queue) {
                rc = -EAGAIN;
        } else {
                if (w->tail)
                        w->tail->next = c;
                else
                        w->head = c;
                w->tail = c;
                w->queued++;
                w->submitted++;
                if (w->idle)
                        pthread_cond_signal(&w->cv);
        }
        pthread_mutex_unlock(&w->mu);
        return rc;
}

int kurz_writer_job(struct kurz_writer *w, int (*fn)(struct kurz_store *s, void *arg),
                    void (*done)(void *arg, int rc), void *arg)
{
        struct job *job;

        job = malloc(sizeof(*job));
        if (!job)
                return -ENOMEM;
        job->fn = fn;
        job->done = done;
        job->arg = arg;
        job->next = NULL;
        pthread_mutex_lock(&w->mu);
        if (w->stopping) {
                pthread_mutex_unlock(&w->mu);
                free(job);
                return -ESHUTDOWN;
        }
        job->after = w->submitted;
        if (w->jtail)
                w->jtail->next = job;
        else
                w->jhead = job;
        w->jtail = job;
        if (w->idle)
                pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        return 0;
}

size_t kurz_writer_queued(struct kurz_writer *w)
{
        size_t n;

        pthread_mutex_lock(&w->mu);
        n = w->queued;
        pthread_mutex_unlock(&w->mu);
        return n;
}

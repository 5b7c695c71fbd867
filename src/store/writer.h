/* store/writer.h - the single writer thread in front of a store. Creates that
 * arrive while a transaction is being committed are taken together into the
 * next one (group commit): one fsync for many links, and every completion runs
 * only after the commit that holds its link returned. Other writes (deletes,
 * click flushes, cleanup) run as jobs on the same thread, in submission order
 * relative to each other. */
#ifndef KURZ_STORE_WRITER_H
#define KURZ_STORE_WRITER_H
#include <stddef.h>

#include "store/store.h"

struct kurz_writer; /* opaque */

/* A create request. The submitter owns it and must keep it alive until done
 * runs; done runs on the writer thread with item->status/err filled. */
struct kurz_writer_create {
        struct kurz_create item;
        void (*done)(struct kurz_writer_create *c);
        struct kurz_writer_create *next; /* internal */
};

struct kurz_writer_config {
        size_t max_batch; /* creates per transaction, default 1024 */
        size_t
            max_queue; /* pending creates beyond which submit fails with -EAGAIN, default 65536 */
        kurz_code_fn gen; /* code generator handed to create_batch */
        void *gen_arg;
};

/* Starts the thread. Returns 0 or a negative errno. The store is borrowed. */
int kurz_writer_start(struct kurz_store *s, const struct kurz_writer_config *cfg,
                      struct kurz_writer **out);
/* Drains every queued create and job, then joins the thread and frees w. */
void kurz_writer_stop(struct kurz_writer *w);

/* Queues a create. Returns 0, -EAGAIN when the queue is full, or -ESHUTDOWN.
 * On error done is not called. Thread-safe. */
int kurz_writer_create(struct kurz_writer *w, struct kurz_writer_create *c);
/* Queues fn(store, arg) and then done(arg, rc) with fn's result, both on the
 * writer thread. Returns 0 or -ESHUTDOWN. Thread-safe. */
int kurz_writer_job(struct kurz_writer *w, int (*fn)(struct kurz_store *s, void *arg),
                    void (*done)(void *arg, int rc), void *arg);
/* Pending creates right now. Thread-safe. */
size_t kurz_writer_queued(struct kurz_writer *w);
#endif

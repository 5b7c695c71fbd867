/* util/qsbr.h - quiescent-state-based reclamation. Readers (the event-loop
 * threads) read shared structures with no lock; writers unlink objects and
 * retire them here; an object is freed only after every registered reader has
 * passed a quiescent state (or gone offline) since its retirement. A loop
 * thread is offline while it waits in poll, so idle threads never hold memory
 * back. */
#ifndef KURZ_UTIL_QSBR_H
#define KURZ_UTIL_QSBR_H
#include <stddef.h>
#include <stdint.h>

struct kurz_qsbr; /* opaque */

/* max_readers: how many reader slots exist. Returns NULL on ENOMEM. */
struct kurz_qsbr *kurz_qsbr_new(unsigned max_readers);
/* Frees every retired object (runs their free functions) and the domain. Only
 * when no reader is online. NULL is a no-op. */
void kurz_qsbr_free(struct kurz_qsbr *q);

/* Reader side; `reader` is the caller's slot (0..max_readers-1), used by one
 * thread only. A reader starts offline. Between online() and the next
 * offline()/quiescent() the reader may hold pointers read from shared
 * structures; afterwards it must hold none. Lock-free, no syscalls. */
void kurz_qsbr_online(struct kurz_qsbr *q, unsigned reader);
void kurz_qsbr_quiescent(struct kurz_qsbr *q, unsigned reader);
void kurz_qsbr_offline(struct kurz_qsbr *q, unsigned reader);

/* Writer side. Schedules free_fn(ptr) for after the grace period. The caller
 * must already have made ptr unreachable for new readers. Thread-safe.
 * Returns 0, or -ENOMEM (then the caller still owns ptr). */
int kurz_qsbr_retire(struct kurz_qsbr *q, void *ptr, void (*free_fn)(void *ptr));

/* Intrusive variant that cannot fail: the caller embeds a kurz_qsbr_node in
 * the object (readers must never read the node's fields), and free_fn gets the
 * node back once the grace period is over. Thread-safe. */
struct kurz_qsbr_node {
        struct kurz_qsbr_node *next;                  /* private to qsbr */
        uint64_t epoch;                               /* private to qsbr */
        void (*free_fn)(struct kurz_qsbr_node *node); /* private to qsbr */
};
void kurz_qsbr_retire_node(struct kurz_qsbr *q, struct kurz_qsbr_node *node,
                           void (*free_fn)(struct kurz_qsbr_node *node));
/* Frees what is past its grace period; returns how many were freed.
 * Thread-safe; cheap when nothing is pending. */
size_t kurz_qsbr_reclaim(struct kurz_qsbr *q);
/* Objects retired and not yet freed. Thread-safe. */
size_t kurz_qsbr_pending(struct kurz_qsbr *q);
#endif

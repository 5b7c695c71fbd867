/* ids/snowflake.c - 64-bit time-ordered ids: 41 bits of milliseconds since
 * the epoch, 10 bits of worker id, 12 bits of sequence within the
 * millisecond. One mutex serialises next(); it is held while waiting. */
#include "ids/snowflake.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#define SNOWFLAKE_DEFAULT_EPOCH_MS 1704067200000ULL /* 2024-01-01T00:00:00Z */
#define SNOWFLAKE_DEFAULT_MAX_WAIT 1000u
#define SNOWFLAKE_TIME_BITS        41
#define SNOWFLAKE_WORKER_BITS      10
#define SNOWFLAKE_SEQ_BITS         12
#define SNOWFLAKE_MAX_WORKER       ((1u << SNOWFLAKE_WORKER_BITS) - 1)
#define SNOWFLAKE_MAX_SEQ          ((1u << SNOWFLAKE_SEQ_BITS) - 1)
#define SNOWFLAKE_MAX_TS           ((UINT64_C(1) << SNOWFLAKE_TIME_BITS) - 1) /* ~69 years */
/* Waiting for the next millisecond after 4096 ids in one is normally 1 ms;
 * this much extra sleeping per call means the clock is stuck. */
#define SNOWFLAKE_STUCK_MS 1000u

struct kurz_snowflake {
        pthread_mutex_t lock;
        uint64_t epoch_ms;
        unsigned worker_id;
        unsigned max_wait_ms;
        kurz_clock_ms_fn clock;
        kurz_sleep_ms_fn sleep;
        void *clock_arg;
        /* Guarded by lock: the timestamp and sequence of the last id. */
        bool issued;
        uint64_t last_ts;
        unsigned seq;
};

static uint64_t realtime_ms(void *arg)
{
        struct timespec ts;

        (void)arg;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void nanosleep_ms(void *arg, unsigned ms)
{
        struct timespec req = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

        (void)arg;
        while (nanosleep(&req, &req) < 0 && errno == EINTR)
                ;
}

/* Zero fields of cfg (or a NULL cfg) take the defaults the header lists. */
int kurz_snowflake_new(const struct kurz_snowflake_config *cfg, struct kurz_snowflake **out)
{
        static const struct kurz_snowflake_config defaults;
        struct kurz_snowflake *s;

        *out = NULL;
        if (!cfg)
                cfg = &defaults;
        if (cfg->worker_id > SNOWFLAKE_MAX_WORKER)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        if (pthread_mutex_init(&s->lock, NULL) != 0) {
                free(s);
                return -ENOMEM;
        }
        s->epoch_ms = cfg->epoch_ms ? cfg->epoch_ms : SNOWFLAKE_DEFAULT_EPOCH_MS;
        s->worker_id = cfg->worker_id;
        s->max_wait_ms = cfg->max_wait_ms ? cfg->max_wait_ms : SNOWFLAKE_DEFAULT_MAX_WAIT;
        s->clock = cfg->clock ? cfg->clock : realtime_ms;
        s->sleep = cfg->sleep ? cfg->sleep : nanosleep_ms;
        s->clock_arg = cfg->clock_arg;
        *out = s;
        return 0;
}

void kurz_snowflake_free(struct kurz_snowflake *s)
{
        if (!s)
                return;
        pthread_mutex_destroy(&s->lock);
        free(s);
}

/* Called with s->lock held. */
static int next_locked(struct kurz_snowflake *s, uint64_t *id)
{
        uint64_t now, ts, behind;
        /* Total sleeping this call may do before giving up: the clock-back
         * tolerance plus room for sequence-overflow waits. It also bounds a
         * clock that keeps stepping back while we wait. */
        uint64_t budget = (uint64_t)s->max_wait_ms + SNOWFLAKE_STUCK_MS;
        unsigned nap;

        for (;;) {
                now = s->clock(s->clock_arg);
                if (now < s->epoch_ms)
                        return -EAGAIN;
                ts = now - s->epoch_ms;
                if (ts > SNOWFLAKE_MAX_TS)
                        return -EAGAIN; /* past the 41-bit range (~69 years) */
                if (!s->issued || ts > s->last_ts) {
                        s->seq = 0;
                        break;
                }
                if (ts == s->last_ts && s->seq < SNOWFLAKE_MAX_SEQ) {
                        s->seq++;
                        break;
                }
                /* Either the clock is behind the last id, or this
                 * millisecond's 4096 sequence numbers are used up: wait until
                 * the clock passes last_ts (or reaches it, when behind). */
                behind = s->last_ts - ts;
                if (behind > s->max_wait_ms)
                        return -EAGAIN;
                nap = behind ? (unsigned)behind : 1;
                if (nap > budget)
                        return -EAGAIN;
                budget -= nap;
                s->sleep(s->clock_arg, nap);
        }
        s->issued = true;
        s->last_ts = ts;
        *id = ts << (SNOWFLAKE_WORKER_BITS + SNOWFLAKE_SEQ_BITS) |
              (uint64_t)s->worker_id << SNOWFLAKE_SEQ_BITS | s->seq;
        return 0;
}

int kurz_snowflake_next(struct kurz_snowflake *s, uint64_t *id)
{
        int rc;

        pthread_mutex_lock(&s->lock);
        rc = next_locked(s, id);
        pthread_mutex_unlock(&s->lock);
        return rc;
}

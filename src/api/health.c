/* api/health.c - liveness (/health, answered inline), readiness of the store
 * (/health/create, /health/lookup, asked on the blocking pool) and the
 * Prometheus exposition (/metrics). */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api_int.h"
#include "api/fleet.h"

struct health_job {
        struct kurz_service *s;
        bool ok;
};

static void reply(struct kurz_service *s, struct kurz_http_exchange *x, bool ok)
{
        struct kurz_buf b = {0};

        kurz_buf_printf(&b,
                        "{\"status\":\"%s\",\"service\":\"kurz\",\"role\":\"%s\","
                        "\"store\":\"%s\"}",
                        ok ? "UP" : "DOWN", s->cfg->role, s->store->name);
        kurz_api_json(s, x, KURZ_ROUTE_HEALTH, ok ? 200 : 503, &b, NULL, 0);
        kurz_buf_free(&b);
}

static void health_work(void *arg)
{
        struct health_job *j = arg;

        j->ok = j->s->store->ops->healthy(j->s->store);
}

static void health_done(struct kurz_http_exchange *x, void *arg)
{
        struct health_job *j = arg;

        reply(j->s, x, j->ok);
        free(j);
}

void kurz_api_health(struct kurz_service *s, struct kurz_http_exchange *x, bool deep)
{
        struct health_job *j;

        if (!deep) {
                reply(s, x, true);
                return;
        }
        j = calloc(1, sizeof(*j));
        if (!j) {
                reply(s, x, false);
                return;
        }
        j->s = s;
        if (kurz_http_offload(x, health_work, health_done, j) < 0) {
                free(j);
                reply(s, x, false);
        }
}

/* /proc/self/fd, opened once and rewound for each count, so serving
 * /metrics never closes a descriptor whose number another thread may have
 * just used (ThreadSanitizer reported exactly that for closedir, as a race
 * with the other thread's earlier use of the number). Guarded by the mutex:
 * several loops may serve /metrics at once. Never closed. */
static pthread_mutex_t fd_dir_mu = PTHREAD_MUTEX_INITIALIZER;
static DIR *fd_dir;

/* Open descriptors of this process, or -1. */
static long count_fds(void)
{
        long n = -1;

        pthread_mutex_lock(&fd_dir_mu);
        if (!fd_dir)
                fd_dir = opendir("/proc/self/fd");
        if (fd_dir) {
                n = 0;
                rewinddir(fd_dir);
                while (readdir(fd_dir))
                        n++;
                n = n > 3 ? n - 3 : 0; /* ".", ".." and fd_dir's own */
        }
        pthread_mutex_unlock(&fd_dir_mu);
        return n;
}

/* The standard process_* metrics of Prometheus client libraries, from
 * /proc (Linux): CPU time, resident memory, open and allowed descriptors,
 * start time. A value that cannot be read is left out. */
static int process_metrics(struct kurz_buf *b)
{
        long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
        unsigned long long utime, stime, start;
        unsigned long vsize;
        long rss, btime = 0;
        char line[1024], *p;
        long fds;
        FILE *f;
        int rc = 0;

        f = fopen("/proc/stat", "r");
        while (f && fgets(line, sizeof(line), f))
                if (sscanf(line, "btime %ld", &btime) == 1)
                        break;
        if (f)
                fclose(f);
        f = fopen("/proc/self/stat", "r");
        p = f && fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
        if (f)
                fclose(f);
        /* After "pid (comm)": state is field 3; utime 14, stime 15,
         * starttime 22, vsize 23, rss 24. */
        if (p && tick > 0 &&
            sscanf(p + 2,
                   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
                   "%*d %*d %llu %lu %ld",
                   &utime, &stime, &start, &vsize, &rss) == 5) {
                rc |= kurz_buf_printf(b,
                                      "# HELP process_cpu_seconds_total Total user and system "
                                      "CPU time spent in seconds.\n"
                                      "# TYPE process_cpu_seconds_total counter\n"
                                      "process_cpu_seconds_total %.2f\n",
                                      (double)(utime + stime) / (double)tick);
                rc |= kurz_metrics_gauge(b, "process_resident_memory_bytes",
                                         "Resident memory size in bytes.",
                                         (double)rss * (double)page);
                rc |= kurz_metrics_gauge(b, "process_virtual_memory_bytes",
                                         "Virtual memory size in bytes.", (double)vsize);
                if (btime > 0)
                        rc |= kurz_metrics_gauge(b, "process_start_time_seconds",
                                                 "Start time of the process since unix epoch in "
                                                 "seconds.",
                                                 (double)btime + (double)start / (double)tick);
        }
        fds = count_fds();
        if (fds >= 0)
                rc |= kurz_metrics_gauge(b, "process_open_fds", "Number of open file descriptors.",
                                         (double)fds);
        rc |= kurz_metrics_gauge(b, "process_max_fds", "Maximum number of open file descriptors.",
                                 (double)sysconf(_SC_OPEN_MAX));
        return rc;
}

void kurz_api_metrics(struct kurz_service *s, struct kurz_http_exchange *x)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        unsigned thread = req->thread;
        uint64_t start = req->start_ns;
        struct kurz_buf b = {0};
        struct kurz_l1_stats l1;
        int64_t last = atomic_load(&s->last_flush_s);
        int rc;

        kurz_l1_stats(s->l1, &l1);
        rc = kurz_metrics_render(s->metrics, &b);
        rc |= kurz_metrics_gauge(&b, "kurz_http_connections", "Open client connections.",
                                 (double)kurz_http_server_connections(s->http));
        rc |= kurz_metrics_gauge(&b, "kurz_pool_inflight",
                                 "Requests admitted to the blocking pool (store reads on L1"
                                 " misses, link info), queued or running.",
                                 (double)kurz_http_server_offloads(s->http));
        rc |= kurz_metrics_gauge(&b, "kurz_l1_entries", "Entries in the in-process cache.",
                                 (double)l1.entries);
        rc |= kurz_metrics_gauge(&b, "kurz_l1_bytes", "Heap bytes held by the in-process cache.",
                                 (double)l1.bytes);
        rc |= kurz_metrics_gauge(&b, "kurz_l1_evictions", "Entries evicted from the cache so far.",
                                 (double)l1.evictions);
        rc |= kurz_metrics_gauge(&b, "kurz_writer_queue", "Creates waiting for the store writer.",
                                 (double)kurz_writer_queued(s->writer));
        rc |= kurz_metrics_gauge(&b, "kurz_click_flush_lag_seconds",
                                 "Seconds since click counts were last written.",
                                 last ? (double)(kurz_api_now_s() - last) : 0.0);
        rc |= kurz_metrics_gauge(&b, "kurz_clicks_dropped", "Clicks lost to allocation failure.",
                                 (double)kurz_clicks_dropped(s->clicks));
        if (s->store->ops->metrics)
                rc |= s->store->ops->metrics(s->store, &b);
        rc |= kurz_api_fleet_metrics(s, &b); /* single flight, L2, Redis */
        rc |= process_metrics(&b);
        if (rc) {
                kurz_buf_free(&b);
                kurz_http_respond(x, 500, NULL, 0, NULL, NULL, 0, true);
                return;
        }
        kurz_http_respond(x, 200, NULL, 0, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len,
                          false);
        kurz_metrics_request(s->metrics, thread, KURZ_ROUTE_METRICS, 200,
                             kurz_http_now_ns() - start);
        kurz_buf_free(&b);
}

/* bench/kurz_bench.c - kurz-bench, the load generator of `make bench`: `run`
 * drives a server open-loop at a fixed rate (or closed-loop at saturation) and
 * reports latency percentiles and errors, `load` fills a store with N links, and
 * `lru-sim` gives the hit rate of an ideal LRU on the same Zipf trace `run` sends. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "hdr.h"
#include "httpc.h"
#include "loadgen.h"
#include "zipf.h"

#define MAX_CODES       100000000u
#define MAX_CODE_LEN    255u
#define MAX_THREADS     64u
#define MAX_CONNECTIONS 100000u
#define MAX_DEPTH       1024u
#define MAX_HOST_LEN    255u
#define MAX_PREFIX_LEN  512u

enum workload { WL_REDIRECT, WL_CREATE, WL_MIXED, WL_LOAD };
enum { KIND_READ = 0, KIND_WRITE = 1 };

static const char *const workload_names[] = {"redirect", "create", "mixed", "load"};

/* The set of codes redirects are drawn from, in file order: line i has rank i. */
struct codes {
        char *blob;
        uint32_t *off; /* n + 1 offsets into blob */
        size_t n;
};

struct target {
        struct sockaddr_storage addr;
        socklen_t addr_len;
        char url[1024];
        char host[MAX_HOST_LEN + 8]; /* Host header: host[:port] as given */
        char prefix[MAX_PREFIX_LEN]; /* path prefix without the trailing '/' */
};

struct opts {
        const char *url;
        enum workload workload;
        const char *codes_file;
        const char *out_file;
        double rate;
        uint64_t duration_ns, warmup_ns, timeout_ns;
        unsigned connections, threads, depth, pipeline;
        double zipf;
        unsigned mix_reads, mix_writes;
        uint64_t seed;
        uint64_t requests;
        const char *json_file;
        bool json_stdout;
        const char *pct_file;
        bool allow_remote;
        struct target tgt;
};

/* One per thread; only its thread touches it while the run lasts. */
struct wctx {
        const struct opts *o;
        const struct codes *codes;
        const struct kurz_zipf *zipf;
        struct kurz_rng rng;
        unsigned thread;
        uint64_t run_id;
        uint64_t created;
        char get_head[MAX_PREFIX_LEN + 8]; /* "GET <prefix>/" */
        size_t get_head_len;
        char get_tail[MAX_HOST_LEN + 64]; /* " HTTP/1.1\r\nHost: h\r\n\r\n" */
        size_t get_tail_len;
        /* load only */
        uint64_t target, ok, inflight, failures, max_failures;
        int last_bad_status;
        bool rate_limited, gave_up, oom;
        char *out;
        size_t out_len, out_cap;
};

struct thread_arg {
        struct kurz_lg_config cfg;
        struct kurz_lg_workload wl;
        struct wctx ctx;
        struct kurz_lg_stats *stats;
        pthread_t tid;
        int rc;
};

static atomic_bool stop_flag;

static void on_signal(int sig)
{
        (void)sig;
        atomic_store(&stop_flag, true);
}

/* ---- parsing of option values ---------------------------------------------------- */

/* "10s", "500ms", "250us", "2m", "1h", "1d"; a plain number is seconds. */
static int parse_duration(const char *s, uint64_t *ns)
{
        char *end;
        double v, mul;

        errno = 0;
        v = strtod(s, &end);
        if (errno || end == s || !(v >= 0))
                return -EINVAL;
        if (*end == '\0' || strcmp(end, "s") == 0)
                mul = 1e9;
        else if (strcmp(end, "ms") == 0)
                mul = 1e6;
        else if (strcmp(end, "us") == 0)
                mul = 1e3;
        else if (strcmp(end, "m") == 0)
                mul = 60e9;
        else if (strcmp(end, "h") == 0)
                mul = 3600e9;
        else if (strcmp(end, "d") == 0)
                mul = 86400e9;
        else
                return -EINVAL;
        if (v * mul > 1e17) /* about three years: nonsense for a benchmark */
                return -EINVAL;
        *ns = (uint64_t)(v * mul);
        return 0;
}

/* "20000", "20k", "1.5M". */
static int parse_number(const char *s, double max, double *out)
{
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (errno || end == s || !(v >= 0))
                return -EINVAL;
        if (*end == 'k' || *end == 'K')
                v *= 1e3, end++;
        else if (*end == 'M')
                v *= 1e6, end++;
        if (*end != '\0' || v > max)
                return -EINVAL;
        *out = v;
        return 0;
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
        double v;

        if (parse_number(s, max, &v) < 0 || v < min || v != floor(v))
                return -EINVAL;
        *out = (unsigned)v;
        return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
        char *end;
        unsigned long long v;

        if (*s == '-')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno || end == s || *end)
                return -EINVAL;
        *out = v;
        return 0;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)ss;
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

        if (ss->ss_family == AF_INET)
                return (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
        if (ss->ss_family == AF_INET6)
                return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
                       (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127);
        return false;
}

/* http://host[:port][/prefix] -> address, Host header and path prefix. */
static int parse_url(const char *url, bool allow_remote, struct target *t)
{
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
        char host[MAX_HOST_LEN + 1], port[8] = "80";
        const char *p, *auth, *auth_end, *h, *h_end, *colon = NULL;
        size_t len;
        int rc;

        if (strlen(url) >= sizeof(t->url) || strncmp(url, "http://", 7) != 0) {
                fprintf(stderr, "kurz-bench: --url must be http://host[:port][/prefix]\n");
                return -EINVAL;
        }
        snprintf(t->url, sizeof(t->url), "%s", url);
        auth = url + 7;
        auth_end = auth + strcspn(auth, "/?#");
        if (auth_end == auth || (size_t)(auth_end - auth) > MAX_HOST_LEN ||
            memchr(auth, '@', (size_t)(auth_end - auth)))
                goto out_bad;
        if (*auth == '[') {
                h = auth + 1;
                h_end = memchr(auth, ']', (size_t)(auth_end - auth));
                if (!h_end)
                        goto out_bad;
                if (h_end + 1 < auth_end) {
                        if (h_end[1] != ':')
                                goto out_bad;
                        colon = h_end + 1;
                }
        } else {
                h = auth;
                colon = memchr(auth, ':', (size_t)(auth_end - auth));
                h_end = colon ? colon : auth_end;
        }
        if (colon) {
                len = (size_t)(auth_end - colon - 1);
                if (len == 0 || len >= sizeof(port) || strspn(colon + 1, "0123456789") < len)
                        goto out_bad;
                memcpy(port, colon + 1, len);
                port[len] = '\0';
        }
        len = (size_t)(h_end - h);
        if (len == 0)
                goto out_bad;
        memcpy(host, h, len);
        host[len] = '\0';
        memcpy(t->host, auth, (size_t)(auth_end - auth));
        t->host[auth_end - auth] = '\0';

        p = auth_end;
        len = strcspn(p, "?#");
        while (len && p[len - 1] == '/')
                len--;
        if (len >= sizeof(t->prefix))
                goto out_bad;
        memcpy(t->prefix, p, len);
        t->prefix[len] = '\0';

        rc = getaddrinfo(host, port, &hints, &res);
        if (rc != 0) {
                fprintf(stderr, "kurz-bench: cannot resolve %s: %s\n", host, gai_strerror(rc));
                return -EINVAL;
        }
        memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
        t->addr_len = res->ai_addrlen;
        freeaddrinfo(res);
        if (!allow_remote && !is_loopback(&t->addr)) {
                fprintf(stderr,
                        "kurz-bench: %s is not a loopback address; pass --allow-remote "
                        "to load another machine\n",
                        host);
                return -EINVAL;
        }
        return 0;

out_bad:
        fprintf(stderr, "kurz-bench: bad --url %s\n", url);
        return -EINVAL;
}

/* ---- codes file ---------------------------------------------------------------- */

/* Codes go into the request line as they are: printable, no space, '?', '#'
 * or '%' (kurz codes and aliases are [0-9A-Za-z_-]). */
static bool code_chars_ok(const char *s, size_t len)
{
        size_t i;

        for (i = 0; i < len; i++)
                if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f || s[i] == '?' ||
                    s[i] == '#' || s[i] == '%')
                        return false;
        return true;
}

static void codes_free(struct codes *c)
{
        free(c->blob);
        free(c->off);
        memset(c, 0, sizeof(*c));
}

/* One code per line; surrounding blanks are dropped, and of a full short URL
 * only the part after the last '/' is kept. Returns 0 or a negative errno. */
static int codes_load(const char *path, struct codes *c)
{
        size_t blob_cap = 1 << 16, off_cap = 1 << 12, blob_len = 0, len, linecap = 0;
        char *line = NULL, *s, *slash, *nb;
        uint32_t *no;
        ssize_t got;
        FILE *f;
        int rc = 0;

        memset(c, 0, sizeof(*c));
        f = fopen(path, "r");
        if (!f) {
                rc = -errno;
                fprintf(stderr, "kurz-bench: %s: %s\n", path, strerror(errno));
                return rc;
        }
        c->blob = malloc(blob_cap);
        c->off = malloc(off_cap * sizeof(*c->off));
        if (!c->blob || !c->off)
                goto out_nomem;
        c->off[0] = 0;
        while ((got = getline(&line, &linecap, f)) >= 0) {
                s = line;
                len = (size_t)got;
                while (len && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' ||
                               s[len - 1] == '\t'))
                        len--;
                while (len && (*s == ' ' || *s == '\t'))
                        s++, len--;
                s[len] = '\0';
                slash = strrchr(s, '/');
                if (slash) {
                        len -= (size_t)(slash + 1 - s);
                        s = slash + 1;
                }
                if (len == 0 || len > MAX_CODE_LEN || !code_chars_ok(s, len))
                        continue;
                if (c->n + 1 >= MAX_CODES || blob_len + len > UINT32_MAX) {
                        fprintf(stderr, "kurz-bench: %s: too many codes\n", path);
                        rc = -E2BIG;
                        goto out_close;
                }
                if (blob_len + len > blob_cap) {
                        blob_cap *= 2;
                        nb = realloc(c->blob, blob_cap);
                        if (!nb)
                                goto out_nomem;
                        c->blob = nb;
                }
                if (c->n + 2 > off_cap) {
                        off_cap *= 2;
                        no = realloc(c->off, off_cap * sizeof(*c->off));
                        if (!no)
                                goto out_nomem;
                        c->off = no;
                }
                memcpy(c->blob + blob_len, s, len);
                blob_len += len;
                c->off[++c->n] = (uint32_t)blob_len;
        }
        if (c->n == 0) {
                fprintf(stderr, "kurz-bench: %s holds no codes\n", path);
                rc = -EINVAL;
        }
        goto out_close;

out_nomem:
        fprintf(stderr, "kurz-bench: out of memory reading %s\n", path);
        rc = -ENOMEM;
out_close:
        free(line);
        fclose(f);
        if (rc < 0)
                codes_free(c);
        return rc;
}

/* ---- workloads ------------------------------------------------------------------- */

static long build_get(struct wctx *w, char *buf, size_t cap)
{
        const struct codes *c = w->codes;
        uint64_t rank = kurz_zipf_next(w->zipf, &w->rng);
        size_t clen = c->off[rank + 1] - c->off[rank];
        size_t need = w->get_head_len + clen + w->get_tail_len;

        if (need > cap)
                return 0;
        memcpy(buf, w->get_head, w->get_head_len);
        memcpy(buf + w->get_head_len, c->blob + c->off[rank], clen);
        memcpy(buf + w->get_head_len + clen, w->get_tail, w->get_tail_len);
        return (long)need;
}

static long build_create(struct wctx *w, char *buf, size_t cap)
{
        char body[160];
        int blen, n;

        blen =
            snprintf(body, sizeof(body),
                     "{\"originalUrl\":\"https://example.com/kb/%016" PRIx64 "/%u/%" PRIu64 "\"}",
                     w->run_id, w->thread, w->created);
        n = snprintf(buf, cap,
                     "POST %s/api/v1/create/shorten HTTP/1.1\r\nHost: %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                     w->o->tgt.prefix, w->o->tgt.host, blen, body);
        if (n < 0 || (size_t)n >= cap)
                return 0;
        w->created++;
        return n;
}

static long wl_build(void *ctx, uint64_t seq, char *buf, size_t cap, unsigned *kind)
{
        struct wctx *w = ctx;
        uint64_t period;
        long n;

        switch (w->o->workload) {
        case WL_REDIRECT:
                *kind = KIND_READ;
                return build_get(w, buf, cap);
        case WL_CREATE:
                *kind = KIND_WRITE;
                return build_create(w, buf, cap);
        case WL_MIXED:
                /* Writes spread evenly: request seq is a write when the running
                 * count of writes, seq * w / (r + w), steps up. */
                period = w->o->mix_reads + w->o->mix_writes;
                if ((seq + 1) * w->o->mix_writes / period > seq * w->o->mix_writes / period) {
                        *kind = KIND_WRITE;
                        return build_create(w, buf, cap);
                }
                *kind = KIND_READ;
                return build_get(w, buf, cap);
        case WL_LOAD:
                if (w->rate_limited || w->gave_up || w->oom || w->ok + w->inflight >= w->target)
                        return -1;
                *kind = KIND_WRITE;
                n = build_create(w, buf, cap);
                if (n > 0)
                        w->inflight++;
                return n;
        }
        return -1;
}

/* load: keeps the code of every 201, notices what will not get better. */
static void wl_done(void *ctx, unsigned kind, int status, const char *body, size_t len)
{
        struct wctx *w = ctx;
        const char *code;
        size_t clen;
        char *nb;

        (void)kind;
        if (w->o->workload != WL_LOAD)
                return;
        w->inflight--;
        code = status == 201 && body ? kurz_httpc_json_str(body, len, "shortCode", &clen) : NULL;
        if (!code || clen == 0 || clen > MAX_CODE_LEN) {
                if (status > 0)
                        w->last_bad_status = status;
                if (status == 429)
                        w->rate_limited = true;
                if (++w->failures > w->max_failures)
                        w->gave_up = true;
                return;
        }
        if (w->out_len + clen + 1 > w->out_cap) {
                size_t ncap = w->out_cap ? w->out_cap * 2 : 1 << 16;

                nb = realloc(w->out, ncap);
                if (!nb) {
                        w->oom = true;
                        return;
                }
                w->out = nb;
                w->out_cap = ncap;
        }
        memcpy(w->out + w->out_len, code, clen);
        w->out[w->out_len + clen] = '\n';
        w->out_len += clen + 1;
        w->ok++;
}

/* ---- running the threads ------------------------------------------------------------ */

static void *thread_main(void *p)
{
        struct thread_arg *a = p;

        a->rc = kurz_lg_run(&a->cfg, &a->wl, a->stats);
        return NULL;
}

static uint64_t make_run_id(void)
{
        struct kurz_rng r;

        kurz_rng_seed(&r, kurz_lg_now() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL));
        return kurz_rng_next(&r);
}

static void raise_nofile(unsigned need)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need + 64) {
                rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need + 64 ? need + 64
                                                                                      : rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
}

/* Splits the work over o->threads loops, runs them and merges their stats into
 * *total (caller frees the thread args with free()). */
static int run_threads(const struct opts *o, const struct codes *codes, const struct kurz_zipf *z,
                       uint64_t load_target, struct thread_arg **args_out,
                       struct kurz_lg_stats *total)
{
        struct thread_arg *args;
        struct kurz_lg_stats *stats;
        struct sigaction sa = {.sa_handler = on_signal};
        uint64_t run_id = make_run_id(), start;
        unsigned i, started = 0;
        int rc = 0;

        args = calloc(o->threads, sizeof(*args));
        stats = calloc(o->threads, sizeof(*stats));
        if (!args || !stats) {
                free(args);
                free(stats);
                return -ENOMEM;
        }
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        raise_nofile(o->connections);

        /* Connections get 100 ms to come up before the schedule starts. */
        start = kurz_lg_now() + 100 * 1000000ull;
        for (i = 0; i < o->threads; i++) {
                struct thread_arg *a = &args[i];
                struct wctx *w = &a->ctx;

                a->stats = &stats[i];
                a->cfg.addr = o->tgt.addr;
                a->cfg.addr_len = o->tgt.addr_len;
                a->cfg.connections =
                    o->connections / o->threads + (i < o->connections % o->threads);
                a->cfg.rate = o->rate / o->threads;
                a->cfg.stride = o->threads;
                a->cfg.offset = i;
                a->cfg.depth = o->rate > 0 ? o->pipeline : o->depth;
                a->cfg.start_ns = start;
                a->cfg.warmup_ns = o->warmup_ns;
                a->cfg.duration_ns = o->duration_ns;
                a->cfg.timeout_ns = o->timeout_ns;
                if (o->requests)
                        a->cfg.max_requests =
                            o->requests / o->threads + (i < o->requests % o->threads);
                a->cfg.stop = &stop_flag;

                w->o = o;
                w->codes = codes;
                w->zipf = z;
                /* Thread 0 uses the seed itself, so a one-thread run replays
                 * exactly the trace `kurz-bench lru-sim --seed` simulates. */
                kurz_rng_seed(&w->rng, o->seed + i * 0x9e3779b97f4a7c15ull);
                w->thread = i;
                w->run_id = run_id;
                w->get_head_len =
                    (size_t)snprintf(w->get_head, sizeof(w->get_head), "GET %s/", o->tgt.prefix);
                w->get_tail_len = (size_t)snprintf(w->get_tail, sizeof(w->get_tail),
                                                   " HTTP/1.1\r\nHost: %s\r\n\r\n", o->tgt.host);
                w->target = load_target / o->threads + (i < load_target % o->threads);
                w->max_failures = 1000 + w->target / 100;

                a->wl.build = wl_build;
                a->wl.done = wl_done;
                a->wl.ctx = w;
                a->wl.expect[KIND_READ] = 302;
                a->wl.expect[KIND_WRITE] = 201;
                a->wl.want_body[KIND_WRITE] = o->workload == WL_LOAD;
        }
        for (i = 0; i < o->threads; i++) {
                if (pthread_create(&args[i].tid, NULL, thread_main, &args[i]) != 0) {
                        rc = -EAGAIN;
                        atomic_store(&stop_flag, true);
                        break;
                }
                started++;
        }
        memset(total, 0, sizeof(*total));
        for (i = 0; i < started; i++) {
                pthread_join(args[i].tid, NULL);
                if (args[i].rc < 0 && rc == 0)
                        rc = args[i].rc;
                kurz_lg_stats_merge(total, &stats[i]);
        }
        free(stats);
        for (i = 0; i < o->threads; i++)
                args[i].stats = NULL;
        *args_out = args;
        return rc;
}

/* ---- reports --------------------------------------------------------------------------- */

static const char *const err_names[KURZ_LG_ERR_KINDS] = {
    [KURZ_LG_ERR_CONNECT] = "connect", [KURZ_LG_ERR_TIMEOUT] = "timeout",
    [KURZ_LG_ERR_UNSENT] = "unsent",   [KURZ_LG_ERR_READ] = "read",
    [KURZ_LG_ERR_WRITE] = "write",     [KURZ_LG_ERR_PARSE] = "parse",
    [KURZ_LG_ERR_STATUS] = "status",
};

static const double pcts[] = {50, 90, 99, 99.9, 99.99};
static const char *const pct_names[] = {"p50", "p90", "p99", "p99_9", "p99_99"};
static const char *const pct_labels[] = {"p50", "p90", "p99", "p99.9", "p99.99"};
#define NPCTS (sizeof(pcts) / sizeof(pcts[0]))

static uint64_t total_errors(const struct kurz_lg_stats *st)
{
        uint64_t n = 0;
        unsigned i;

        for (i = 0; i < KURZ_LG_ERR_KINDS; i++)
                n += st->err[i];
        return n;
}

/* Responses per second: over the window, or over the time from the first to
 * the last response when that is longer, so a server that falls behind (and
 * answers the window's requests late) shows a lower rate. */
static double per_sec(const struct kurz_lg_stats *st, uint64_t count)
{
        uint64_t span = st->window_ns;

        if (st->last_completion_ns - st->first_completion_ns > span)
                span = st->last_completion_ns - st->first_completion_ns;
        return span ? (double)count * 1e9 / (double)span : 0.0;
}

static bool expected_status(const struct opts *o, unsigned s)
{
        if (o->workload == WL_REDIRECT)
                return s == 302;
        if (o->workload == WL_CREATE || o->workload == WL_LOAD)
                return s == 201;
        return s == 302 || s == 201;
}

static void print_text(FILE *f, const struct opts *o, const struct kurz_lg_stats *st)
{
        unsigned i;
        bool any = false;

        fprintf(f, "kurz-bench %s: %s, ", workload_names[o->workload], o->tgt.url);
        if (o->rate > 0)
                fprintf(f, "open loop at %.0f req/s", o->rate);
        else
                fprintf(f, "closed loop, %u in flight per connection", o->depth);
        fprintf(f, ", %u connections, %u thread%s, %.2f s measured (+%.2f s warmup)\n",
                o->connections, o->threads, o->threads == 1 ? "" : "s", st->window_ns / 1e9,
                o->warmup_ns / 1e9);
        if (o->workload != WL_CREATE)
                fprintf(f, "  codes %s, zipf s=%.2f, seed %" PRIu64 "\n", o->codes_file, o->zipf,
                        o->seed);
        fprintf(f,
                "  requests   %" PRIu64 " due, %" PRIu64 " sent, %" PRIu64 " answered, %" PRIu64
                " ok, %" PRIu64 " errors\n",
                st->due, st->sent, st->completed, st->ok, total_errors(st));
        fprintf(f, "  rate       %.1f answered/s, %.1f ok/s", per_sec(st, st->completed),
                per_sec(st, st->ok));
        if (o->rate > 0)
                fprintf(f, " (target %.0f/s)", o->rate);
        fprintf(f, "\n  latency    (%s, ok responses only)\n",
                o->rate > 0 ? "from the time each request was due" : "from send");
        for (i = 0; i < NPCTS; i++)
                fprintf(f, "    %-8s %10.3f ms\n", pct_labels[i],
                        kurz_hdr_percentile(&st->lat, pcts[i]) / 1e6);
        fprintf(f, "    %-8s %10.3f ms\n    %-8s %10.3f ms\n", "max", st->lat.max / 1e6, "mean",
                kurz_hdr_mean(&st->lat) / 1e6);
        if (o->rate > 0)
                fprintf(f, "  send lag   p50 %.3f ms, p99 %.3f ms, max %.3f ms (generator delay)\n",
                        kurz_hdr_percentile(&st->lag, 50) / 1e6,
                        kurz_hdr_percentile(&st->lag, 99) / 1e6, st->lag.max / 1e6);
        fprintf(f, "  errors    ");
        for (i = 0; i < KURZ_LG_ERR_KINDS; i++)
                fprintf(f, " %s %" PRIu64 "%s", err_names[i], st->err[i],
                        i + 1 < KURZ_LG_ERR_KINDS ? "," : "\n");
        for (i = 0; i < KURZ_LG_MAX_STATUS; i++) {
                if (!st->status[i])
                        continue;
                fprintf(f, "%s %u: %" PRIu64 "%s", any ? "," : "  statuses  ", i, st->status[i],
                        expected_status(o, i) ? "" : " (unexpected)");
                any = true;
        }
        if (any)
                fputc('\n', f);
        fprintf(f, "  connects   %" PRIu64 "\n", st->connects);
}

static void json_hdr(FILE *f, const char *name, const struct kurz_hdr *h)
{
        unsigned i;

        fprintf(f, "  \"%s\": {\"count\": %" PRIu64, name, h->count);
        for (i = 0; i < NPCTS; i++)
                fprintf(f, ", \"%s\": %.1f", pct_names[i], kurz_hdr_percentile(h, pcts[i]) / 1e3);
        fprintf(f, ", \"min\": %.1f, \"max\": %.1f, \"mean\": %.1f}", h->count ? h->min / 1e3 : 0.0,
                h->max / 1e3, kurz_hdr_mean(h) / 1e3);
}

static void print_json(FILE *f, const struct opts *o, const struct kurz_lg_stats *st)
{
        unsigned i;
        bool any = false;

        fprintf(f, "{\n  \"workload\": \"%s\",\n  \"url\": \"", workload_names[o->workload]);
        for (i = 0; o->tgt.url[i]; i++) {
                unsigned char ch = (unsigned char)o->tgt.url[i];

                if (ch == '"' || ch == '\\')
                        fprintf(f, "\\%c", ch);
                else if (ch < 0x20)
                        fprintf(f, "\\u%04x", ch);
                else
                        fputc(ch, f);
        }
        fprintf(f, "\",\n");
        fprintf(f, "  \"mode\": \"%s\",\n  \"rate_target\": %.1f,\n",
                o->rate > 0 ? "open" : "closed", o->rate);
        fprintf(f, "  \"connections\": %u,\n  \"threads\": %u,\n  \"depth\": %u,\n", o->connections,
                o->threads, o->rate > 0 ? o->pipeline : o->depth);
        fprintf(f, "  \"duration_s\": %.3f,\n  \"warmup_s\": %.3f,\n", st->window_ns / 1e9,
                o->warmup_ns / 1e9);
        fprintf(f, "  \"zipf\": %.3f,\n  \"seed\": %" PRIu64 ",\n", o->zipf, o->seed);
        if (o->workload == WL_MIXED)
                fprintf(f, "  \"mix\": \"%u:%u\",\n", o->mix_reads, o->mix_writes);
        fprintf(f,
                "  \"requests\": {\"due\": %" PRIu64 ", \"sent\": %" PRIu64
                ", \"answered\": %" PRIu64 ", \"ok\": %" PRIu64 ", \"errors\": %" PRIu64 "},\n",
                st->due, st->sent, st->completed, st->ok, total_errors(st));
        fprintf(f, "  \"rate\": %.1f,\n  \"ok_rate\": %.1f,\n", per_sec(st, st->completed),
                per_sec(st, st->ok));
        json_hdr(f, "latency_us", &st->lat);
        fprintf(f, ",\n");
        json_hdr(f, "send_lag_us", &st->lag);
        fprintf(f, ",\n  \"errors\": {");
        for (i = 0; i < KURZ_LG_ERR_KINDS; i++)
                fprintf(f, "%s\"%s\": %" PRIu64, i ? ", " : "", err_names[i], st->err[i]);
        fprintf(f, "},\n  \"status\": {");
        for (i = 0; i < KURZ_LG_MAX_STATUS; i++) {
                if (!st->status[i])
                        continue;
                fprintf(f, "%s\"%u\": %" PRIu64, any ? ", " : "", i, st->status[i]);
                any = true;
        }
        fprintf(f, "},\n  \"connects\": %" PRIu64 "\n}\n", st->connects);
}

/* HdrHistogram-style percentile spectrum (value_us percentile count 1/(1-p)),
 * ready for gnuplot with a log x axis on the last column. */
static int write_spectrum(const char *path, const struct kurz_hdr *h)
{
        uint64_t seen = 0;
        double p;
        FILE *f;
        unsigned i;

        f = fopen(path, "w");
        if (!f)
                return -errno;
        fprintf(f, "# value_us percentile total_count one_over_one_minus_p\n");
        for (i = 0; i < KURZ_HDR_BUCKETS && seen < h->count; i++) {
                if (!h->buckets[i])
                        continue;
                seen += h->buckets[i];
                p = (double)seen / (double)h->count;
                fprintf(f, "%.3f %.9f %" PRIu64 " %.2f\n",
                        (kurz_hdr_bucket_high(i) < h->max ? kurz_hdr_bucket_high(i) : h->max) / 1e3,
                        p, seen, p < 1.0 ? 1.0 / (1.0 - p) : INFINITY);
        }
        return fclose(f) == 0 ? 0 : -EIO;
}

/* ---- subcommands ------------------------------------------------------------------------ */

static const char usage_main[] =
    "usage: kurz-bench COMMAND [options]   (kurz-bench COMMAND --help)\n"
    "  run       drive a server at a fixed rate (open loop) or at saturation\n"
    "  load N    create N links and write their codes to a file\n"
    "  lru-sim   hit rate of an ideal LRU cache on the Zipf trace `run --seed` sends\n"
    "  zipf-trace  print that trace\n";

static const char usage_run[] =
    "usage: kurz-bench run [options]\n"
    "  --url URL            http://host[:port][/prefix] (default http://127.0.0.1:8080);\n"
    "                       loopback only unless --allow-remote\n"
    "  --workload W         redirect (GET /CODE, expects 302), create (POST\n"
    "                       /api/v1/create/shorten with unique URLs, expects 201),\n"
    "                       mixed (both, see --mix)                 default redirect\n"
    "  --codes FILE         codes to redirect, one per line; line i has Zipf rank i\n"
    "  --zipf S             Zipf exponent over the codes, 0 = uniform  default 1.0\n"
    "  --seed N             seed of the code sequence (thread i uses a derived one)\n"
    "  --mix R:W            reads:writes of mixed                    default 100:1\n"
    "  --rate N             requests/s over all connections (20k = 20000); latency is\n"
    "                       measured from when each request was due. 0 = closed loop\n"
    "  --closed             closed loop: each connection keeps --depth requests in\n"
    "                       flight, as fast as the server answers\n"
    "  --depth K            closed loop: requests in flight per connection  default 1\n"
    "  --max-pipeline K     open loop: most requests queued on one connection when\n"
    "                       it falls behind                          default 32\n"
    "  --duration DUR       measured time (ms, s, m, h)              default 10s\n"
    "  --warmup DUR         sent first, not measured                 default 0\n"
    "  --requests N         stop after N requests (warmup included)\n"
    "  --connections N      keep-alive connections                   default 50\n"
    "  --threads N          event loops, each with its share of connections and rate\n"
    "  --timeout DUR        per request and per connect              default 2s\n"
    "  --json FILE          also write the results as JSON\n"
    "  --format text|json   what goes to stdout                      default text\n"
    "  --percentiles FILE   latency percentile spectrum for plotting\n";

static const char usage_load[] =
    "usage: kurz-bench load N --out FILE [options]\n"
    "  Creates N links (unique URLs, pipelined over many connections) and writes their\n"
    "  codes to FILE, one per line. Start kurz with --create-rate-limit 0 first.\n"
    "  --url URL  --connections N (16)  --depth K (16)  --threads N (1)  --timeout DUR (5s)\n"
    "  --json FILE  --format text|json\n";

static const char usage_lru[] =
    "usage: kurz-bench lru-sim --keys N --cache C --zipf S --requests R [--seed N] [--skip K]\n"
    "  Draws the same rank sequence as a one-thread `kurz-bench run --seed N` over N codes\n"
    "  and prints the hit rate of an exact LRU cache of C entries (requests after the\n"
    "  first K), next to the top-C probability mass (the best any cache can expect).\n";

static const char usage_trace[] =
    "usage: kurz-bench zipf-trace --keys N --zipf S --requests R [--seed N]\n"
    "  Prints the ranks (0 = line 1 of --codes) a one-thread `kurz-bench run --seed N`\n"
    "  draws over N codes, one per line.\n";

enum {
        OPT_URL = 256,
        OPT_WORKLOAD,
        OPT_CODES,
        OPT_ZIPF,
        OPT_SEED,
        OPT_MIX,
        OPT_RATE,
        OPT_CLOSED,
        OPT_DEPTH,
        OPT_PIPELINE,
        OPT_DURATION,
        OPT_WARMUP,
        OPT_REQUESTS,
        OPT_CONNECTIONS,
        OPT_THREADS,
        OPT_TIMEOUT,
        OPT_JSON,
        OPT_FORMAT,
        OPT_PCT,
        OPT_OUT,
        OPT_KEYS,
        OPT_CACHE,
        OPT_SKIP,
        OPT_ALLOW_REMOTE,
        OPT_HELP,
};

static const struct option long_opts[] = {
    {"url", required_argument, NULL, OPT_URL},
    {"workload", required_argument, NULL, OPT_WORKLOAD},
    {"codes", required_argument, NULL, OPT_CODES},
    {"zipf", required_argument, NULL, OPT_ZIPF},
    {"seed", required_argument, NULL, OPT_SEED},
    {"mix", required_argument, NULL, OPT_MIX},
    {"rate", required_argument, NULL, OPT_RATE},
    {"closed", no_argument, NULL, OPT_CLOSED},
    {"depth", required_argument, NULL, OPT_DEPTH},
    {"max-pipeline", required_argument, NULL, OPT_PIPELINE},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"requests", required_argument, NULL, OPT_REQUESTS},
    {"connections", required_argument, NULL, OPT_CONNECTIONS},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"json", required_argument, NULL, OPT_JSON},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"percentiles", required_argument, NULL, OPT_PCT},
    {"out", required_argument, NULL, OPT_OUT},
    {"keys", required_argument, NULL, OPT_KEYS},
    {"cache", required_argument, NULL, OPT_CACHE},
    {"skip", required_argument, NULL, OPT_SKIP},
    {"allow-remote", no_argument, NULL, OPT_ALLOW_REMOTE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

struct lru_opts {
        uint64_t keys, cache, requests, skip;
};

/* Parses every option of every subcommand; which apply is checked by the caller.
 * Returns 0, 1 for --help, or -EINVAL (after a message). */
static int parse_opts(int argc, char **argv, const char *usage, struct opts *o, struct lru_opts *lo,
                      bool *closed)
{
        double v;
        unsigned r, w;
        int c;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
                switch (c) {
                case OPT_URL:
                        o->url = optarg;
                        break;
                case OPT_WORKLOAD:
                        if (strcmp(optarg, "redirect") == 0)
                                o->workload = WL_REDIRECT;
                        else if (strcmp(optarg, "create") == 0)
                                o->workload = WL_CREATE;
                        else if (strcmp(optarg, "mixed") == 0)
                                o->workload = WL_MIXED;
                        else
                                goto out_bad;
                        break;
                case OPT_CODES:
                        o->codes_file = optarg;
                        break;
                case OPT_ZIPF:
                        if (parse_number(optarg, 10, &o->zipf) < 0)
                                goto out_bad;
                        break;
                case OPT_SEED:
                        if (parse_u64(optarg, &o->seed) < 0)
                                goto out_bad;
                        break;
                case OPT_MIX:
                        if (sscanf(optarg, "%u:%u", &r, &w) != 2 || r + w == 0 || r > 1000000 ||
                            w > 1000000)
                                goto out_bad;
                        o->mix_reads = r;
                        o->mix_writes = w;
                        break;
                case OPT_RATE:
                        if (parse_number(optarg, 1e8, &o->rate) < 0)
                                goto out_bad;
                        break;
                case OPT_CLOSED:
                        *closed = true;
                        break;
                case OPT_DEPTH:
                        if (parse_uint(optarg, 1, MAX_DEPTH, &o->depth) < 0)
                                goto out_bad;
                        break;
                case OPT_PIPELINE:
                        if (parse_uint(optarg, 1, MAX_DEPTH, &o->pipeline) < 0)
                                goto out_bad;
                        break;
                case OPT_DURATION:
                        if (parse_duration(optarg, &o->duration_ns) < 0 || o->duration_ns == 0)
                                goto out_bad;
                        break;
                case OPT_WARMUP:
                        if (parse_duration(optarg, &o->warmup_ns) < 0)
                                goto out_bad;
                        break;
                case OPT_REQUESTS:
                        if (parse_number(optarg, 1e15, &v) < 0)
                                goto out_bad;
                        o->requests = (uint64_t)v;
                        break;
                case OPT_CONNECTIONS:
                        if (parse_uint(optarg, 1, MAX_CONNECTIONS, &o->connections) < 0)
                                goto out_bad;
                        break;
                case OPT_THREADS:
                        if (parse_uint(optarg, 1, MAX_THREADS, &o->threads) < 0)
                                goto out_bad;
                        break;
                case OPT_TIMEOUT:
                        if (parse_duration(optarg, &o->timeout_ns) < 0 || o->timeout_ns < 1000000)
                                goto out_bad;
                        break;
                case OPT_JSON:
                        o->json_file = optarg;
                        break;
                case OPT_FORMAT:
                        if (strcmp(optarg, "json") == 0)
                                o->json_stdout = true;
                        else if (strcmp(optarg, "text") == 0)
                                o->json_stdout = false;
                        else
                                goto out_bad;
                        break;
                case OPT_PCT:
                        o->pct_file = optarg;
                        break;
                case OPT_OUT:
                        o->out_file = optarg;
                        break;
                case OPT_KEYS:
                        if (parse_number(optarg, MAX_CODES, &v) < 0 || v < 1)
                                goto out_bad;
                        lo->keys = (uint64_t)v;
                        break;
                case OPT_CACHE:
                        if (parse_number(optarg, MAX_CODES, &v) < 0)
                                goto out_bad;
                        lo->cache = (uint64_t)v;
                        break;
                case OPT_SKIP:
                        if (parse_number(optarg, 1e15, &v) < 0)
                                goto out_bad;
                        lo->skip = (uint64_t)v;
                        break;
                case OPT_ALLOW_REMOTE:
                        o->allow_remote = true;
                        break;
                case 'h':
                case OPT_HELP:
                        fputs(usage, stdout);
                        return 1;
                default:
                        fprintf(stderr, "kurz-bench: unknown option %s\n%s", argv[optind - 1],
                                usage);
                        return -EINVAL;
                }
        }
        return 0;

out_bad:
        fprintf(stderr, "kurz-bench: bad value for %s: %s\n", argv[optind - 1], optarg);
        return -EINVAL;
}

static void opts_defaults(struct opts *o)
{
        memset(o, 0, sizeof(*o));
        o->url = "http://127.0.0.1:8080";
        o->workload = WL_REDIRECT;
        o->rate = -1;
        o->duration_ns = 10 * 1000000000ull;
        o->timeout_ns = 2 * 1000000000ull;
        o->connections = 50;
        o->threads = 1;
        o->depth = 1;
        o->pipeline = 32;
        o->zipf = 1.0;
        o->mix_reads = 100;
        o->mix_writes = 1;
        o->seed = 1;
}

static int report(const struct opts *o, const struct kurz_lg_stats *st)
{
        FILE *f;
        int rc = 0;

        if (o->json_stdout)
                print_json(stdout, o, st);
        else
                print_text(stdout, o, st);
        if (o->json_file) {
                f = fopen(o->json_file, "w");
                if (!f || (print_json(f, o, st), fclose(f) != 0)) {
                        fprintf(stderr, "kurz-bench: cannot write %s\n", o->json_file);
                        rc = -EIO;
                }
        }
        if (o->pct_file && write_spectrum(o->pct_file, &st->lat) < 0) {
                fprintf(stderr, "kurz-bench: cannot write %s\n", o->pct_file);
                rc = -EIO;
        }
        return rc;
}

static int cmd_run(int argc, char **argv)
{
        struct kurz_lg_stats *st = NULL;
        struct thread_arg *args = NULL;
        struct codes codes = {0};
        struct kurz_zipf z = {0};
        struct lru_opts lo = {0};
        struct opts o;
        bool closed = false;
        int rc;

        opts_defaults(&o);
        rc = parse_opts(argc, argv, usage_run, &o, &lo, &closed);
        if (rc)
                return rc > 0 ? 0 : 2;
        if (optind < argc) {
                fprintf(stderr, "kurz-bench run: unexpected argument %s\n", argv[optind]);
                return 2;
        }
        if (closed)
                o.rate = 0;
        if (o.rate < 0) {
                fprintf(stderr, "kurz-bench run: give --rate N (or --closed)\n");
                return 2;
        }
        if (o.threads > o.connections) {
                fprintf(stderr, "kurz-bench run: --threads exceeds --connections\n");
                return 2;
        }
        if (parse_url(o.url, o.allow_remote, &o.tgt) < 0)
                return 2;
        if (o.workload != WL_CREATE) {
                if (!o.codes_file) {
                        fprintf(stderr, "kurz-bench run: --workload %s needs --codes FILE\n",
                                workload_names[o.workload]);
                        return 2;
                }
                if (codes_load(o.codes_file, &codes) < 0)
                        return 1;
                kurz_zipf_init(&z, codes.n, o.zipf);
        }
        st = calloc(1, sizeof(*st));
        if (!st) {
                rc = -ENOMEM;
                goto out_free_codes;
        }
        rc = run_threads(&o, &codes, &z, 0, &args, st);
        if (rc < 0) {
                fprintf(stderr, "kurz-bench run: %s\n", strerror(-rc));
                goto out_free_stats;
        }
        rc = report(&o, st);

out_free_stats:
        free(args);
        free(st);
out_free_codes:
        codes_free(&codes);
        return rc < 0 ? 1 : 0;
}

static int cmd_load(int argc, char **argv)
{
        struct kurz_lg_stats *st = NULL;
        struct thread_arg *args = NULL;
        struct lru_opts lo = {0};
        uint64_t n = 0, ok = 0, want;
        struct opts o;
        bool closed = false;
        double secs, v;
        unsigned i;
        FILE *f;
        int rc;

        opts_defaults(&o);
        o.workload = WL_LOAD;
        o.connections = 16;
        o.depth = 16;
        o.timeout_ns = 5 * 1000000000ull;
        rc = parse_opts(argc, argv, usage_load, &o, &lo, &closed);
        if (rc)
                return rc > 0 ? 0 : 2;
        if (optind + 1 != argc || parse_number(argv[optind], MAX_CODES, &v) < 0 || v < 1) {
                fprintf(stderr, "%s", usage_load);
                return 2;
        }
        want = (uint64_t)v;
        if (!o.out_file) {
                fprintf(stderr, "kurz-bench load: give --out FILE\n");
                return 2;
        }
        if (o.threads > o.connections) {
                fprintf(stderr, "kurz-bench load: --threads exceeds --connections\n");
                return 2;
        }
        if (parse_url(o.url, o.allow_remote, &o.tgt) < 0)
                return 2;
        o.rate = 0;
        o.duration_ns = UINT64_MAX;
        o.warmup_ns = 0;
        o.requests = 0;
        st = calloc(1, sizeof(*st));
        if (!st)
                return 1;
        rc = run_threads(&o, NULL, NULL, want, &args, st);
        if (rc < 0) {
                fprintf(stderr, "kurz-bench load: %s\n", strerror(-rc));
                goto out_free;
        }
        f = fopen(o.out_file, "w");
        if (!f) {
                fprintf(stderr, "kurz-bench load: %s: %s\n", o.out_file, strerror(errno));
                rc = -EIO;
                goto out_free;
        }
        for (i = 0; i < o.threads; i++) {
                struct wctx *w = &args[i].ctx;

                if (w->out_len)
                        fwrite(w->out, 1, w->out_len, f);
                ok += w->ok;
                n += w->failures;
                if (w->rate_limited)
                        rc = -EAGAIN;
                else if ((w->gave_up || w->oom) && rc == 0)
                        rc = -EIO;
        }
        if (fclose(f) != 0 && rc == 0)
                rc = -EIO;
        secs = st->window_ns / 1e9;
        if (o.json_stdout)
                print_json(stdout, &o, st);
        else
                printf("kurz-bench load: %" PRIu64 " links created in %.2f s (%.0f/s), %" PRIu64
                       " failed requests, codes in %s\n  latency p50 %.3f ms, p99 %.3f ms, max "
                       "%.3f ms\n",
                       ok, secs, secs > 0 ? ok / secs : 0.0, n, o.out_file,
                       kurz_hdr_percentile(&st->lat, 50) / 1e6,
                       kurz_hdr_percentile(&st->lat, 99) / 1e6, st->lat.max / 1e6);
        if (o.json_file) {
                f = fopen(o.json_file, "w");
                if (f) {
                        print_json(f, &o, st);
                        fclose(f);
                }
        }
        if (rc == -EAGAIN)
                fprintf(stderr, "kurz-bench load: the server answered 429: start it with "
                                "--create-rate-limit 0\n");
        else if (ok < want)
                fprintf(stderr,
                        "kurz-bench load: only %" PRIu64 " of %" PRIu64
                        " links created (last bad status %d, errors: connect %" PRIu64
                        ", timeout %" PRIu64 ", read %" PRIu64 ", parse %" PRIu64 ")\n",
                        ok, want, args[0].ctx.last_bad_status, st->err[KURZ_LG_ERR_CONNECT],
                        st->err[KURZ_LG_ERR_TIMEOUT], st->err[KURZ_LG_ERR_READ],
                        st->err[KURZ_LG_ERR_PARSE]);
        if (ok < want && rc == 0)
                rc = -EIO;

out_free:
        if (args)
                for (i = 0; i < o.threads; i++)
                        free(args[i].ctx.out);
        free(args);
        free(st);
        return rc < 0 ? 1 : 0;
}

/* Exact LRU over integer keys: an intrusive doubly linked list in two arrays. */
static int cmd_lru_sim(int argc, char **argv)
{
        struct lru_opts lo = {0};
        struct kurz_zipf z;
        struct kurz_rng rng;
        uint32_t *prev, *next, head = UINT32_MAX, tail = UINT32_MAX, k;
        uint8_t *in;
        uint64_t i, size = 0, hits = 0, counted = 0;
        double mass = 0, total = 0, p;
        struct opts o;
        bool closed = false;
        int rc;

        opts_defaults(&o);
        rc = parse_opts(argc, argv, usage_lru, &o, &lo, &closed);
        if (rc)
                return rc > 0 ? 0 : 2;
        if (!lo.keys || !o.requests || lo.keys >= UINT32_MAX) {
                fprintf(stderr, "%s", usage_lru);
                return 2;
        }
        if (kurz_zipf_init(&z, lo.keys, o.zipf) < 0)
                return 2;
        prev = malloc(lo.keys * sizeof(*prev));
        next = malloc(lo.keys * sizeof(*next));
        in = calloc(lo.keys, 1);
        if (!prev || !next || !in) {
                fprintf(stderr, "kurz-bench lru-sim: out of memory\n");
                rc = 1;
                goto out_free;
        }
        kurz_rng_seed(&rng, o.seed);
        for (i = 0; i < o.requests; i++) {
                k = (uint32_t)kurz_zipf_next(&z, &rng);
                if (in[k]) {
                        if (i >= lo.skip)
                                hits++;
                        if (head == k)
                                goto counted;
                        /* unlink */
                        next[prev[k]] = next[k];
                        if (next[k] != UINT32_MAX)
                                prev[next[k]] = prev[k];
                        else
                                tail = prev[k];
                } else {
                        if (lo.cache == 0)
                                goto counted;
                        if (size == lo.cache) {
                                uint32_t t = tail;

                                tail = prev[t];
                                if (tail != UINT32_MAX)
                                        next[tail] = UINT32_MAX;
                                else
                                        head = UINT32_MAX;
                                in[t] = 0;
                                size--;
                        }
                        in[k] = 1;
                        size++;
                }
                /* push front */
                prev[k] = UINT32_MAX;
                next[k] = head;
                if (head != UINT32_MAX)
                        prev[head] = k;
                head = k;
                if (tail == UINT32_MAX)
                        tail = k;
        counted:
                if (i >= lo.skip)
                        counted++;
        }
        for (i = 0; i < lo.keys; i++) {
                p = o.zipf == 0 ? 1.0 : pow((double)(i + 1), -o.zipf);
                total += p;
                if (i < lo.cache)
                        mass += p;
        }
        if (o.json_stdout)
                printf("{\"keys\": %" PRIu64 ", \"cache\": %" PRIu64
                       ", \"zipf\": %.3f, \"seed\": %" PRIu64 ", \"requests\": %" PRIu64
                       ", \"skip\": %" PRIu64 ", \"hits\": %" PRIu64
                       ", \"lru_hit_rate\": %.6f, \"top_mass\": %.6f}\n",
                       lo.keys, lo.cache, o.zipf, o.seed, o.requests, lo.skip, hits,
                       counted ? (double)hits / counted : 0.0, mass / total);
        else
                printf("lru-sim: %" PRIu64 " keys, cache %" PRIu64 ", zipf s=%.2f, seed %" PRIu64
                       ", %" PRIu64 " requests (first %" PRIu64 " not counted)\n"
                       "  ideal LRU hit rate  %.4f (%" PRIu64 " of %" PRIu64 ")\n"
                       "  top-%" PRIu64 " mass       %.4f (best any cache can expect)\n",
                       lo.keys, lo.cache, o.zipf, o.seed, o.requests, lo.skip,
                       counted ? (double)hits / counted : 0.0, hits, counted, lo.cache,
                       mass / total);
        rc = 0;

out_free:
        free(prev);
        free(next);
        free(in);
        return rc;
}

/* Prints the rank sequence (0 = most popular, i.e. line 1 of --codes) that a
 * one-thread redirect run with the same --seed draws, one per line. */
static int cmd_zipf_trace(int argc, char **argv)
{
        struct lru_opts lo = {0};
        struct kurz_zipf z;
        struct kurz_rng rng;
        struct opts o;
        bool closed = false;
        uint64_t i;
        int rc;

        opts_defaults(&o);
        rc = parse_opts(argc, argv, usage_trace, &o, &lo, &closed);
        if (rc)
                return rc > 0 ? 0 : 2;
        if (!lo.keys || !o.requests || kurz_zipf_init(&z, lo.keys, o.zipf) < 0) {
                fprintf(stderr, "%s", usage_trace);
                return 2;
        }
        kurz_rng_seed(&rng, o.seed);
        for (i = 0; i < o.requests; i++)
                printf("%" PRIu64 "\n", kurz_zipf_next(&z, &rng));
        return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
        if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
            strcmp(argv[1], "help") == 0) {
                fputs(usage_main, argc < 2 ? stderr : stdout);
                return argc < 2 ? 2 : 0;
        }
        if (strcmp(argv[1], "run") == 0)
                return cmd_run(argc - 1, argv + 1);
        if (strcmp(argv[1], "load") == 0)
                return cmd_load(argc - 1, argv + 1);
        if (strcmp(argv[1], "lru-sim") == 0)
                return cmd_lru_sim(argc - 1, argv + 1);
        if (strcmp(argv[1], "zipf-trace") == 0)
                return cmd_zipf_trace(argc - 1, argv + 1);
        fprintf(stderr, "kurz-bench: unknown command %s\n%s", argv[1], usage_main);
        return 2;
}

/* config/config.c - the option table of `kurz serve`: flags, environment
 * variables, defaults and help, all from one list so they cannot drift. */
#include "config/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum opt_type { OPT_STR, OPT_UINT, OPT_SIZE, OPT_DUR, OPT_LISTEN };

struct opt {
        const char *flag;
        const char *env;
        enum opt_type type;
        size_t offset;
        size_t size; /* for strings: buffer size */
        const char *help;
};

#define F(field) offsetof(struct kurz_config, field)
#define S(field) sizeof(((struct kurz_config *)0)->field)

static const struct opt opts[] = {
    {"listen", "KURZ_LISTEN", OPT_LISTEN, 0, 0,
     "HOST:PORT to listen on ([::]:PORT for IPv6) (default 0.0.0.0:8080)"},
    {"role", "KURZ_ROLE", OPT_STR, F(role), S(role),
     "routes this process serves: all (default), create, lookup or stats; the default port "
     "follows the role: 8080, 8081, 8082, 8083 (roles other than all need --database)"},
    {"data-dir", "KURZ_DATA_DIR", OPT_STR, F(data_dir), S(data_dir),
     "directory of the embedded SQLite store (default ./kurz-data)"},
    {"threads", "KURZ_THREADS", OPT_UINT, F(threads), S(threads),
     "event-loop threads (default: number of cores)"},
    {"base-url", "KURZ_BASE_URL", OPT_STR, F(base_url), S(base_url),
     "prefix of short URLs, e.g. https://kurz.example (default: http://<Host header>)"},
    {"codes", "KURZ_CODES", OPT_STR, F(codes), S(codes),
     "code generator: compact (7-char base62, default) or snowflake"},
    {"worker-id", "KURZ_WORKER_ID", OPT_UINT, F(worker_id), S(worker_id),
     "snowflake worker id, 0..1023 (default 0)"},
    {"snowflake-epoch-ms", "KURZ_SNOWFLAKE_EPOCH_MS", OPT_SIZE, F(snowflake_epoch_ms),
     S(snowflake_epoch_ms), "snowflake epoch in unix ms (default 1704067200000, 2024-01-01)"},
    {"create-rate-limit", "KURZ_CREATE_RATE_LIMIT", OPT_UINT, F(create_rate_limit),
     S(create_rate_limit), "creates per minute per client (default 100, 0 = off)"},
    {"read-rate-limit", "KURZ_READ_RATE_LIMIT", OPT_UINT, F(read_rate_limit), S(read_rate_limit),
     "redirects and lookups per minute per client (default 0 = off)"},
    {"max-404-per-minute", "KURZ_MAX_404_PER_MINUTE", OPT_UINT, F(max_404_per_minute),
     S(max_404_per_minute),
     "lookups answered 404 per minute per client before its lookups get 429 for a minute "
     "(code enumeration; default 0 = off; set --trusted-proxies first behind a proxy)"},
    {"trusted-proxies", "KURZ_TRUSTED_PROXIES", OPT_STR, F(trusted_proxies), S(trusted_proxies),
     "comma-separated addresses/CIDRs whose X-Forwarded-For is believed (default none)"},
    {"l1-size", "KURZ_L1_SIZE", OPT_SIZE, F(l1_size), S(l1_size),
     "in-process cache entries (default 100000, 0 = off)"},
    {"l1-ttl", "KURZ_L1_TTL", OPT_DUR, F(l1_ttl_ms), S(l1_ttl_ms),
     "lifetime of a cached link (default 30s)"},
    {"l1-negative-ttl", "KURZ_L1_NEGATIVE_TTL", OPT_DUR, F(l1_negative_ttl_ms),
     S(l1_negative_ttl_ms), "lifetime of a cached unknown code (default 5s, 0 = off)"},
    {"default-expiry", "KURZ_DEFAULT_EXPIRY", OPT_DUR, F(default_expiry_ms), S(default_expiry_ms),
     "expiry of links created without one (default 365d, 0 = never)"},
    {"redirect-max-age", "KURZ_REDIRECT_MAX_AGE", OPT_DUR, F(redirect_max_age_ms),
     S(redirect_max_age_ms),
     "let browsers/CDNs cache redirects this long, bounded by the link's expiry (default 0: "
     "every click reaches kurz and is counted)"},
    {"click-flush-interval", "KURZ_CLICK_FLUSH_INTERVAL", OPT_DUR, F(click_flush_ms),
     S(click_flush_ms), "how often click counts are written (default 5s)"},
    {"click-fold-interval", "KURZ_CLICK_FOLD_INTERVAL", OPT_DUR, F(click_fold_ms), S(click_fold_ms),
     "SQLite: how often the click log is folded into the daily rollup and new links into "
     "the code and URL indexes (default 60s)"},
    {"cleanup-interval", "KURZ_CLEANUP_INTERVAL", OPT_DUR, F(cleanup_interval_ms),
     S(cleanup_interval_ms), "how often expired links are deleted (default 1h, 0 = never)"},
    {"purge-unused-days", "KURZ_PURGE_UNUSED_DAYS", OPT_UINT, F(purge_unused_days),
     S(purge_unused_days), "also delete links not clicked for this many days (default 0 = keep)"},
    {"max-connections", "KURZ_MAX_CONNECTIONS", OPT_SIZE, F(max_connections), S(max_connections),
     "open connections beyond which new ones are refused (default 10000)"},
    {"max-body", "KURZ_MAX_BODY", OPT_SIZE, F(max_body), S(max_body),
     "largest request body in bytes (default 65536)"},
    {"max-header-bytes", "KURZ_MAX_HEADER_BYTES", OPT_SIZE, F(max_header_bytes),
     S(max_header_bytes), "largest total of request headers in bytes (default 8192)"},
    {"max-headers", "KURZ_MAX_HEADERS", OPT_SIZE, F(max_headers), S(max_headers),
     "most request headers (default 100)"},
    {"max-request-line", "KURZ_MAX_REQUEST_LINE", OPT_SIZE, F(max_request_line),
     S(max_request_line), "longest request target in bytes (default 8192)"},
    {"header-timeout", "KURZ_HEADER_TIMEOUT", OPT_DUR, F(header_timeout_ms), S(header_timeout_ms),
     "time for a request's headers to arrive (default 10s)"},
    {"idle-timeout", "KURZ_IDLE_TIMEOUT", OPT_DUR, F(idle_timeout_ms), S(idle_timeout_ms),
     "idle keep-alive connections close after this (default 60s)"},
    {"shutdown-grace", "KURZ_SHUTDOWN_GRACE", OPT_DUR, F(shutdown_grace_ms), S(shutdown_grace_ms),
     "time in-flight requests get on SIGTERM (default 8s)"},
    {"store-threads", "KURZ_STORE_THREADS", OPT_UINT, F(store_threads), S(store_threads),
     "threads for blocking store reads (default 4)"},
    {"max-inflight-reads", "KURZ_MAX_INFLIGHT_READS", OPT_UINT, F(max_inflight_reads),
     S(max_inflight_reads),
     "store reads waiting or running per event-loop thread; beyond it a lookup that misses "
     "the cache gets a fast 503 (default 256)"},
    {"batch-wait-us", "KURZ_BATCH_WAIT_US", OPT_UINT, F(batch_wait_us), S(batch_wait_us),
     "microseconds an event-loop thread that has just served a few requests waits before "
     "polling again, so that requests arriving meanwhile cost one wake-up together; each "
     "waits at most this long (default 50, 0 = off, at most 1000)"},
    {"log-level", "KURZ_LOG_LEVEL", OPT_STR, F(log_level), S(log_level),
     "debug, info, warn or error (default info)"},
    {"database", "KURZ_DATABASE", OPT_STR, F(database), S(database),
     "PostgreSQL primary, postgres://user:pw@host:port/db (default: embedded SQLite)"},
    {"replicas", "KURZ_REPLICAS", OPT_STR, F(replicas), S(replicas),
     "comma-separated postgres:// URLs of read replicas of --database"},
    {"shards", "KURZ_SHARDS", OPT_STR, F(shards), S(shards),
     "file listing PostgreSQL shards (primary, replicas, slots; see docs/POSTGRES.md)"},
    {"db-pool-max", "KURZ_DB_POOL_MAX", OPT_UINT, F(db_pool_max), S(db_pool_max),
     "PostgreSQL connections per node at most (default 50)"},
    {"db-pool-min-idle", "KURZ_DB_POOL_MIN_IDLE", OPT_UINT, F(db_pool_min_idle),
     S(db_pool_min_idle), "idle PostgreSQL connections kept per node (default 10)"},
    {"db-connect-timeout", "KURZ_DB_CONNECT_TIMEOUT", OPT_DUR, F(db_connect_timeout_ms),
     S(db_connect_timeout_ms),
     "longest wait for a pooled connection (default 30s; creates still fail within 2s)"},
    {"db-idle-timeout", "KURZ_DB_IDLE_TIMEOUT", OPT_DUR, F(db_idle_timeout_ms),
     S(db_idle_timeout_ms), "idle connections beyond the minimum close after this (default 10m)"},
    {"db-max-lifetime", "KURZ_DB_MAX_LIFETIME", OPT_DUR, F(db_max_lifetime_ms),
     S(db_max_lifetime_ms), "connections are replaced after this (default 30m)"},
    {"replica-check-interval", "KURZ_REPLICA_CHECK_INTERVAL", OPT_DUR, F(replica_check_interval_ms),
     S(replica_check_interval_ms), "how often replica health and lag are checked (default 1s)"},
    {"replica-max-lag-bytes", "KURZ_REPLICA_MAX_LAG_BYTES", OPT_SIZE, F(replica_max_lag_bytes),
     S(replica_max_lag_bytes),
     "replay lag beyond which a replica gets no reads (default 10485760)"},
    {"redis", "KURZ_REDIS", OPT_STR, F(redis), S(redis),
     "Redis server for the shared cache, limits and invalidation, "
     "redis://[:password@]host:port[/db] (default: none; see docs/REDIS.md)"},
    {"redis-cluster", "KURZ_REDIS_CLUSTER", OPT_STR, F(redis_cluster), S(redis_cluster),
     "Redis Cluster seed nodes host:port,host:port,... (instead of --redis)"},
    {"redis-timeout", "KURZ_REDIS_TIMEOUT", OPT_DUR, F(redis_timeout_ms), S(redis_timeout_ms),
     "longest wait for one Redis request, retries included; slower means a miss "
     "(default 50ms)"},
    {"redis-pool-size", "KURZ_REDIS_POOL_SIZE", OPT_UINT, F(redis_pool_size), S(redis_pool_size),
     "Redis connections per node (default 8)"},
    {"l2-ttl", "KURZ_L2_TTL", OPT_DUR, F(l2_ttl_ms), S(l2_ttl_ms),
     "lifetime of a link in the Redis cache (default 5m)"},
    {"l2-hot-ttls", "KURZ_L2_HOT_TTLS", OPT_STR, F(l2_hot_ttls), S(l2_hot_ttls),
     "longer Redis cache lifetimes for links with at least HITS accesses, HITS=DUR,... "
     "(default 10=10m,100=15m,1000=30m; off = none)"},
};

void kurz_config_defaults(struct kurz_config *c)
{
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        memset(c, 0, sizeof(*c));
        strcpy(c->listen_host, "0.0.0.0");
        c->listen_port = 8080;
        strcpy(c->role, "all");
        strcpy(c->data_dir, "./kurz-data");
        c->threads = n > 0 ? (unsigned)n : 1;
        strcpy(c->codes, "compact");
        c->snowflake_epoch_ms = 1704067200000ULL;
        c->create_rate_limit = 100;
        c->l1_size = 100000;
        c->l1_ttl_ms = 30000;
        c->l1_negative_ttl_ms = 5000;
        c->default_expiry_ms = 365ULL * 86400 * 1000;
        c->click_flush_ms = 5000;
        c->click_fold_ms = 60000;
        c->cleanup_interval_ms = 3600 * 1000;
        c->max_connections = 10000;
        c->max_body = 65536;
        c->max_header_bytes = 8192;
        c->max_headers = 100;
        c->max_request_line = 8192;
        c->header_timeout_ms = 10000;
        c->idle_timeout_ms = 60000;
        c->shutdown_grace_ms = 8000;
        c->store_threads = 4;
        c->batch_wait_us = 50;
        c->max_inflight_reads = 256;
        strcpy(c->log_level, "info");
        c->db_pool_max = 50;
        c->db_pool_min_idle = 10;
        c->db_connect_timeout_ms = 30000;
        c->db_idle_timeout_ms = 600000;
        c->db_max_lifetime_ms = 1800000;
        c->replica_check_interval_ms = 1000;
        c->replica_max_lag_bytes = 10485760;
        c->redis_timeout_ms = 50;
        c->redis_pool_size = 8;
        c->l2_ttl_ms = 300000;
        strcpy(c->l2_hot_ttls, "10=10m,100=15m,1000=30m");
}

int kurz_config_parse_duration(const char *s, uint64_t *ms)
{
        static const struct {
                const char *unit;
                uint64_t mult;
        } units[] = {{"ms", 1},      {"s", 1000},     {"m", 60000},
                     {"h", 3600000}, {"d", 86400000}, {"", 1000}};
        char *end;
        unsigned long long v;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno)
                return -EINVAL;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
                if (strcmp(end, units[i].unit) == 0) {
                        if (v > UINT64_MAX / units[i].mult)
                                return -EINVAL;
                        *ms = v * units[i].mult;
                        return 0;
                }
        }
        return -EINVAL;
}

static int parse_listen(struct kurz_config *c, const char *v)
{
        const char *colon;
        size_t hlen;
        char *end;
        unsigned long port;

        if (v[0] == '[') {
                const char *close = strchr(v, ']');
                if (!close || close[1] != ':')
                        return -EINVAL;
                hlen = (size_t)(close - v - 1);
                v++;
                colon = close + 1;
        } else {
                colon = strrchr(v, ':');
                if (!colon)
                        return -EINVAL;
                hlen = (size_t)(colon - v);
        }
        if (hlen == 0 || hlen >= sizeof(c->listen_host))
                return -EINVAL;
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
        if (errno || *end || colon[1] == '\0' || port > 65535)
                return -EINVAL;
        memcpy(c->listen_host, v, hlen);
        c->listen_host[hlen] = '\0';
        c->listen_port = (unsigned)port;
        c->listen_set = true;
        return 0;
}

static int set_opt(struct kurz_config *c, const struct opt *o, const char *v)
{
        char *p = (char *)c + o->offset;
        unsigned long long n;
        char *end;

        switch (o->type) {
        case OPT_LISTEN:
                return parse_listen(c, v);
        case OPT_STR:
                if (strlen(v) >= o->size)
                        return -EINVAL;
                strcpy(p, v);
                return 0;
        case OPT_DUR:
                return kurz_config_parse_duration(v, (uint64_t *)(void *)p);
        case OPT_UINT:
        case OPT_SIZE:
                if (*v < '0' || *v > '9')
                        return -EINVAL;
                errno = 0;
                n = strtoull(v, &end, 10);
                if (errno || *end)
                        return -EINVAL;
                if (o->size == sizeof(unsigned)) {
                        if (n > 0xffffffffULL)
                                return -EINVAL;
                        *(unsigned *)(void *)p = (unsigned)n;
                } else {
                        *(uint64_t *)(void *)p = n;
                }
                return 0;
        }
        return -EINVAL;
}

void kurz_config_usage(FILE *out)
{
        fprintf(out, "usage: kurz serve [options]\n\n"
                     "Every option can also be set by the environment variable shown;\n"
                     "a flag wins over the variable. DUR is a number with an optional unit\n"
                     "ms, s, m, h or d (a plain number is seconds).\n\n");
        for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
                const char *arg = opts[i].type == OPT_DUR      ? " DUR"
                                  : opts[i].type == OPT_LISTEN ? " HOST:PORT"
                                  : opts[i].type == OPT_STR    ? " VALUE"
                                                               : " N";
                fprintf(out, "  --%s%s  [%s]\n      %s\n", opts[i].flag, arg, opts[i].env,
                        opts[i].help);
        }
        fprintf(out, "  -h, --help\n      this help\n");
}

static const struct opt *find_flag(const char *name, size_t len)
{
        for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
                if (strlen(opts[i].flag) == len && memcmp(opts[i].flag, name, len) == 0)
                        return &opts[i];
        return NULL;
}

static const char *const role_names[] = {"all", "create", "lookup", "stats"};

const char *kurz_config_role_name(enum kurz_role r)
{
        return (unsigned)r < sizeof(role_names) / sizeof(role_names[0]) ? role_names[r] : "?";
}

/* Resolves --role into role_id and, without --listen, the role's port. */
static int check_role(struct kurz_config *c, FILE *err)
{
        static const unsigned ports[] = {8080, 8081, 8082, 8083};

        for (unsigned i = 0; i < sizeof(role_names) / sizeof(role_names[0]); i++) {
                if (strcmp(c->role, role_names[i]) != 0)
                        continue;
                c->role_id = (enum kurz_role)i;
                if (!c->listen_set)
                        c->listen_port = ports[i];
                return 0;
        }
        fprintf(err, "kurz: --role must be all, create, lookup or stats\n");
        return -EINVAL;
}

static int check(struct kurz_config *c, FILE *err)
{
        if (c->threads == 0 || c->threads > 256) {
                fprintf(err, "kurz: --threads must be 1..256\n");
                return -EINVAL;
        }
        if (strcmp(c->codes, "compact") != 0 && strcmp(c->codes, "snowflake") != 0) {
                fprintf(err, "kurz: --codes must be compact or snowflake\n");
                return -EINVAL;
        }
        if (c->worker_id > 1023) {
                fprintf(err, "kurz: --worker-id must be 0..1023\n");
                return -EINVAL;
        }
        if (c->max_connections == 0 || c->max_body == 0 || c->max_header_bytes < 256 ||
            c->max_headers == 0 || c->max_request_line < 16) {
                fprintf(err, "kurz: HTTP limits are too small\n");
                return -EINVAL;
        }
        if (c->click_flush_ms == 0 || c->click_fold_ms == 0 || c->header_timeout_ms == 0 ||
            c->idle_timeout_ms == 0) {
                fprintf(err, "kurz: intervals and timeouts must be positive\n");
                return -EINVAL;
        }
        if (c->db_pool_max == 0 || c->db_pool_min_idle > c->db_pool_max ||
            c->db_connect_timeout_ms == 0 || c->replica_check_interval_ms == 0) {
                fprintf(err, "kurz: --db-pool-max must be positive and at least "
                             "--db-pool-min-idle; timeouts and intervals positive\n");
                return -EINVAL;
        }
        if (c->batch_wait_us > 1000) { /* KURZ_HTTP_BATCH_WAIT_MAX_US */
                fprintf(err, "kurz: --batch-wait-us must be at most 1000\n");
                return -EINVAL;
        }
        if (c->store_threads == 0 || c->store_threads > 128) {
                fprintf(err, "kurz: --store-threads must be 1..128\n");
                return -EINVAL;
        }
        /* The HTTP layer takes these as unsigned milliseconds and sums the
         * size limits: bound them so nothing wraps (found by fuzz_config). */
        if (c->header_timeout_ms > UINT32_MAX || c->idle_timeout_ms > UINT32_MAX ||
            c->shutdown_grace_ms > UINT32_MAX) {
                fprintf(err, "kurz: --header-timeout, --idle-timeout and --shutdown-grace "
                             "must be at most 49d\n");
                return -EINVAL;
        }
        if (c->max_body > (1u << 30) || c->max_header_bytes > (1u << 24) ||
            c->max_request_line > (1u << 24) || c->max_headers > 100000) {
                fprintf(err, "kurz: HTTP limits are too large (body 1 GiB, headers and "
                             "request line 16 MiB, 100000 header fields)\n");
                return -EINVAL;
        }
        if (c->redis[0] && c->redis_cluster[0]) {
                fprintf(err, "kurz: give --redis or --redis-cluster, not both\n");
                return -EINVAL;
        }
        if (c->redis_timeout_ms == 0 || c->redis_timeout_ms > 60000 || c->redis_pool_size == 0 ||
            c->redis_pool_size > 1024 || c->l2_ttl_ms < 1000) {
                fprintf(err, "kurz: --redis-timeout must be 1ms..60s, --redis-pool-size "
                             "1..1024 and --l2-ttl at least 1s\n");
                return -EINVAL;
        }
        if (c->max_inflight_reads == 0) {
                fprintf(err, "kurz: --max-inflight-reads must be at least 1\n");
                return -EINVAL;
        }
        if (check_role(c, err) < 0)
                return -EINVAL;
        /* Each role process writes what it counts (clicks) or creates; with
         * SQLite a data dir belongs to one process, so split roles need
         * the shared PostgreSQL store. */
        if (c->role_id != KURZ_ROLE_ALL && !c->database[0] && !c->shards[0]) {
                fprintf(err,
                        "kurz: --role %s needs --database (or --shards): roles run as "
                        "separate processes on one shared PostgreSQL store; the "
                        "embedded SQLite store serves only --role all\n",
                        c->role);
                return -EINVAL;
        }
        return 0;
}

int kurz_config_parse(struct kurz_config *c, int argc, char **argv, FILE *err)
{
        for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
                const char *v = getenv(opts[i].env);
                if (v && *v && set_opt(c, &opts[i], v) < 0) {
                        fprintf(err, "kurz: invalid value for %s: %s\n", opts[i].env, v);
                        return -EINVAL;
                }
        }
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i], *name, *eq, *v;
                const struct opt *o;
                size_t len;

                if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
                        kurz_config_usage(stdout);
                        return 1;
                }
                if (strncmp(a, "--", 2) != 0) {
                        fprintf(err, "kurz: unexpected argument: %s\n", a);
                        return -EINVAL;
                }
                name = a + 2;
                eq = strchr(name, '=');
                len = eq ? (size_t)(eq - name) : strlen(name);
                o = find_flag(name, len);
                if (!o) {
                        fprintf(err, "kurz: unknown option: %s (see kurz serve --help)\n", a);
                        return -EINVAL;
                }
                if (eq) {
                        v = eq + 1;
                } else {
                        if (i + 1 >= argc) {
                                fprintf(err, "kurz: option --%s needs a value\n", o->flag);
                                return -EINVAL;
                        }
                        v = argv[++i];
                }
                if (set_opt(c, o, v) < 0) {
                        fprintf(err, "kurz: invalid value for --%s: %s\n", o->flag, v);
                        return -EINVAL;
                }
        }
        return check(c, err);
}

/* config/config.h - every option of `kurz serve`, each a command-line flag and
 * an environment variable (flag wins), described once in a table that also
 * produces --help. Immutable after parsing; safe to read from any thread. */
#ifndef KURZ_CONFIG_CONFIG_H
#define KURZ_CONFIG_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Which routes a process serves (docs/DEPLOY.md). */
enum kurz_role {
        KURZ_ROLE_ALL = 0,
        KURZ_ROLE_CREATE, /* POST /api/v1/create/..., admin (delete, list) */
        KURZ_ROLE_LOOKUP, /* GET /{code}, GET /api/v1/urls/{code} */
        KURZ_ROLE_STATS,  /* /api/v1/stats/... */
};

struct kurz_config {
        char listen_host[256];
        unsigned listen_port;
        bool listen_set; /* --listen/KURZ_LISTEN given: no per-role default port */
        char role[16];   /* "all", "create", "lookup" or "stats" */
        enum kurz_role role_id;
        char data_dir[1024];
        unsigned threads;
        char base_url[1024]; /* empty: from the Host header */
        char codes[16];      /* "compact" or "snowflake" */
        unsigned worker_id;
        uint64_t snowflake_epoch_ms;
        unsigned create_rate_limit;  /* per minute per client, 0 = off */
        unsigned read_rate_limit;    /* per minute per client, 0 = off */
        unsigned max_404_per_minute; /* lookup 404s per client before 429s, 0 = off */
        char trusted_proxies[1024];
        size_t l1_size;
        uint64_t l1_ttl_ms;
        uint64_t l1_negative_ttl_ms;
        uint64_t default_expiry_ms; /* 0 = never */
        uint64_t redirect_max_age_ms;
        uint64_t click_flush_ms;
        uint64_t click_fold_ms; /* SQLite: the click log reaches the daily rollup this often */
        uint64_t cleanup_interval_ms;
        unsigned purge_unused_days;
        size_t max_connections;
        size_t max_body;
        size_t max_header_bytes;
        size_t max_headers;
        size_t max_request_line;
        uint64_t header_timeout_ms;
        uint64_t idle_timeout_ms;
        uint64_t shutdown_grace_ms;
        unsigned store_threads;      /* blocking-work pool size */
        unsigned max_inflight_reads; /* store reads in flight per loop before 503s */
        unsigned batch_wait_us;      /* event-loop batching wait, 0 = off */
        char log_level[16];
        /* PostgreSQL backend (store/pg.h): used when database or shards is set. */
        char database[1024];  /* postgres:// URL of the primary */
        char replicas[8192];  /* comma-separated replica URLs */
        char shards[1024];    /* path of a shards file */
        unsigned db_pool_max; /* connections per node */
        unsigned db_pool_min_idle;
        uint64_t db_connect_timeout_ms;
        uint64_t db_idle_timeout_ms;
        uint64_t db_max_lifetime_ms;
        uint64_t replica_check_interval_ms;
        uint64_t replica_max_lag_bytes;
        /* Redis (redis/cluster.h, cache/l2.h): on when redis or redis_cluster is set. */
        char redis[1024];          /* redis://[:password@]host:port[/db] */
        char redis_cluster[4096];  /* seed nodes host:port,host:port,... */
        uint64_t redis_timeout_ms; /* per command, retries included */
        unsigned redis_pool_size;  /* connections per node */
        uint64_t l2_ttl_ms;        /* base L2 TTL */
        char l2_hot_ttls[256];     /* "HITS=DUR,..." longer TTLs for hot links */
};

/* Fills every field with its documented default. */
void kurz_config_defaults(struct kurz_config *c);
/* Applies KURZ_* environment variables, then argv flags (argv[0] is the
 * subcommand name). Returns 0; 1 when --help was printed; -EINVAL after
 * printing a message naming the bad option to err. */
int kurz_config_parse(struct kurz_config *c, int argc, char **argv, FILE *err);
/* Prints the serve options with their variables and defaults. */
void kurz_config_usage(FILE *out);
/* The role's name ("all", "create", ...). */
const char *kurz_config_role_name(enum kurz_role r);
/* Parses a duration "250ms", "5s", "2m", "1h", "365d" or a plain number of
 * seconds into milliseconds. Returns 0 or -EINVAL. */
int kurz_config_parse_duration(const char *s, uint64_t *ms);
#endif

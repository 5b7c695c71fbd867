/* main.c - the kurz command line: serve, migrate, admin create-key. Thin by
 * design: options live in config/, the service in api/service.c. */
#include <errno.h>
#include <stdbool.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/service.h"
#include "config/config.h"
#include "store/pg.h"
#include "store/sqlite.h"

#define KURZ_VERSION "0.1.0"

static void usage(FILE *out)
{
        fprintf(out,
                "kurz %s - a fast URL shortener\n\n"
                "usage:\n"
                "  kurz serve [options]        run the service (kurz serve --help)\n"
                "  kurz migrate [--data-dir DIR]\n"
                "                              create or upgrade the store's schema\n"
                "  kurz admin create-key [--name NAME] [--data-dir DIR]\n"
                "                              print a new admin API key (stored hashed)\n"
                "  kurz --version | --help\n\n"
                "The data directory defaults to ./kurz-data or $KURZ_DATA_DIR.\n",
                KURZ_VERSION);
}

/* PostgreSQL options of the maintenance commands (--database, --shards or
 * KURZ_DATABASE, KURZ_SHARDS); empty: the SQLite store in the data dir. */
static const char *tool_database, *tool_shards;

/* Parses the few options of the maintenance commands. */
static int tool_args(int argc, char **argv, char *data_dir, size_t cap, const char **name)
{
        const char *env = getenv("KURZ_DATA_DIR");

        snprintf(data_dir, cap, "%s", env && *env ? env : "./kurz-data");
        tool_database = getenv("KURZ_DATABASE");
        tool_shards = getenv("KURZ_SHARDS");
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--database") == 0 && i + 1 < argc) {
                        tool_database = argv[++i];
                } else if (strncmp(argv[i], "--database=", 11) == 0) {
                        tool_database = argv[i] + 11;
                } else if (strcmp(argv[i], "--shards") == 0 && i + 1 < argc) {
                        tool_shards = argv[++i];
                } else if (strncmp(argv[i], "--shards=", 9) == 0) {
                        tool_shards = argv[i] + 9;
                } else if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc) {
                        snprintf(data_dir, cap, "%s", argv[++i]);
                } else if (strncmp(argv[i], "--data-dir=", 11) == 0) {
                        snprintf(data_dir, cap, "%s", argv[i] + 11);
                } else if (name && strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
                        *name = argv[++i];
                } else {
                        fprintf(stderr, "kurz: unknown argument: %s\n", argv[i]);
                        return -EINVAL;
                }
        }
        return 0;
}

static bool tool_uses_pg(void)
{
        return (tool_database && *tool_database) || (tool_shards && *tool_shards);
}

static void tool_pg_config(struct kurz_pg_config *pc)
{
        pc->database = tool_database;
        pc->shards_file = tool_shards;
        pc->pool_max = 2;
        pc->connect_timeout_ms = 10000;
        pc->background = false;
}

static int cmd_migrate(int argc, char **argv)
{
        char dir[1024];
        int version = 0, rc;

        if (tool_args(argc, argv, dir, sizeof(dir), NULL) < 0)
                return 2;
        if (tool_uses_pg()) {
                struct kurz_pg_config pc = {0};

                tool_pg_config(&pc);
                rc = kurz_pg_migrate(&pc, &version);
                if (rc < 0) {
                        fprintf(stderr, "kurz: PostgreSQL migration failed: %d\n", rc);
                        return 1;
                }
                printf("schema version %d\n", version);
                return 0;
        }
        rc = kurz_sqlite_migrate(dir, &version);
        if (rc < 0) {
                fprintf(stderr, "kurz: migration of %s failed: %d\n", dir, rc);
                return 1;
        }
        printf("schema version %d\n", version);
        return 0;
}

static int cmd_create_key(int argc, char **argv)
{
        static const char alphabet[] =
            "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        struct kurz_sqlite_config sc = {0};
        struct kurz_store *st;
        unsigned char raw[32], md[SHA256_DIGEST_LENGTH];
        char key[64], hex[65], dir[1024];
        const char *name = "admin";
        size_t n = 0;
        int rc;

        if (tool_args(argc, argv, dir, sizeof(dir), &name) < 0)
                return 2;
        if (RAND_bytes(raw, sizeof(raw)) != 1) {
                fprintf(stderr, "kurz: no randomness available\n");
                return 1;
        }
        n = (size_t)snprintf(key, sizeof(key), "kurz_");
        for (size_t i = 0; i < sizeof(raw); i++)
                key[n++] = alphabet[raw[i] % 62]; /* 32 chars of ~5.95 bits */
        key[n] = '\0';
        SHA256((const unsigned char *)key, n, md);
        for (size_t i = 0; i < sizeof(md); i++)
                snprintf(hex + 2 * i, 3, "%02x", md[i]);
        sc.data_dir = dir;
        sc.readers = 1;
        sc.busy_timeout_ms = 5000;
        sc.shared = true;
        if (tool_uses_pg()) {
                struct kurz_pg_config pc = {0};

                tool_pg_config(&pc);
                rc = kurz_pg_open(&pc, &st);
        } else {
                rc = kurz_sqlite_open(&sc, &st);
        }
        if (rc < 0) {
                fprintf(stderr, "kurz: cannot open the store in %s: %d\n", dir, rc);
                return 1;
        }
        rc = st->ops->key_add(st, hex, name);
        st->ops->close(st);
        if (rc < 0) {
                fprintf(stderr, "kurz: cannot store the key: %d\n", rc);
                return 1;
        }
        printf("%s\n", key);
        return 0;
}

int main(int argc, char **argv)
{
        struct kurz_config cfg;
        int rc;

        if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
            strcmp(argv[1], "help") == 0) {
                usage(stdout);
                return argc < 2 ? 2 : 0;
        }
        if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
                printf("kurz %s\n", KURZ_VERSION);
                return 0;
        }
        if (strcmp(argv[1], "serve") == 0) {
                kurz_config_defaults(&cfg);
                rc = kurz_config_parse(&cfg, argc - 1, argv + 1, stderr);
                if (rc == 1)
                        return 0;
                if (rc < 0)
                        return 2;
                return kurz_service_run(&cfg);
        }
        if (strcmp(argv[1], "migrate") == 0)
                return cmd_migrate(argc - 1, argv + 1);
        if (strcmp(argv[1], "admin") == 0 && argc >= 3 && strcmp(argv[2], "create-key") == 0)
                return cmd_create_key(argc - 2, argv + 2);
        fprintf(stderr, "kurz: unknown command: %s\n\n", argv[1]);
        usage(stderr);
        return 2;
}

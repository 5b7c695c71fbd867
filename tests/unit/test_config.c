/* tests/unit/test_config.c - option parsing: flags, environment variables,
 * durations, defaults and refusals. */
#include <errno.h>
#include <stdlib.h>

#include "config/config.h"
#include "test.h"

static FILE *devnull(void)
{
        return fopen("/dev/null", "w");
}

static void test_defaults(void)
{
        struct kurz_config c;

        kurz_config_defaults(&c);
        CHECK_EQ_STR(c.listen_host, "0.0.0.0");
        CHECK_EQ_INT(c.listen_port, 8080);
        CHECK_EQ_STR(c.data_dir, "./kurz-data");
        CHECK_EQ_INT(c.create_rate_limit, 100);
        CHECK_EQ_INT(c.l1_size, 100000);
        CHECK_EQ_INT(c.l1_ttl_ms, 30000);
        CHECK_EQ_INT(c.click_flush_ms, 5000);
        CHECK_EQ_INT(c.max_body, 65536);
        CHECK_EQ_INT(c.header_timeout_ms, 10000);
        CHECK_EQ_INT(c.idle_timeout_ms, 60000);
        CHECK_EQ_INT(c.batch_wait_us, 50);
        CHECK(c.threads >= 1);
}

static void test_durations(void)
{
        uint64_t ms = 0;

        CHECK_EQ_INT(kurz_config_parse_duration("250ms", &ms), 0);
        CHECK_EQ_INT(ms, 250);
        CHECK_EQ_INT(kurz_config_parse_duration("5", &ms), 0);
        CHECK_EQ_INT(ms, 5000);
        CHECK_EQ_INT(kurz_config_parse_duration("2m", &ms), 0);
        CHECK_EQ_INT(ms, 120000);
        CHECK_EQ_INT(kurz_config_parse_duration("365d", &ms), 0);
        CHECK_EQ_INT(ms, 365ULL * 86400 * 1000);
        CHECK_EQ_INT(kurz_config_parse_duration("0", &ms), 0);
        CHECK_EQ_INT(ms, 0);
        CHECK_EQ_INT(kurz_config_parse_duration("", &ms), -EINVAL);
        CHECK_EQ_INT(kurz_config_parse_duration("-1s", &ms), -EINVAL);
        CHECK_EQ_INT(kurz_config_parse_duration("5 s", &ms), -EINVAL);
        CHECK_EQ_INT(kurz_config_parse_duration("5w", &ms), -EINVAL);
        CHECK_EQ_INT(kurz_config_parse_duration("99999999999999999999", &ms), -EINVAL);
}

static void test_flags(void)
{
        struct kurz_config c;
        char *argv[] = {"serve",    "--listen",  "127.0.0.1:9000", "--threads=3",
                        "--codes",  "snowflake", "--worker-id",    "7",
                        "--l1-ttl", "2s",        "--base-url",     "https://k.example/",
                        NULL};
        FILE *err = devnull();

        kurz_config_defaults(&c);
        CHECK_EQ_INT(kurz_config_parse(&c, 12, argv, err), 0);
        CHECK_EQ_STR(c.listen_host, "127.0.0.1");
        CHECK_EQ_INT(c.listen_port, 9000);
        CHECK_EQ_INT(c.threads, 3);
        CHECK_EQ_STR(c.codes, "snowflake");
        CHECK_EQ_INT(c.worker_id, 7);
        CHECK_EQ_INT(c.l1_ttl_ms, 2000);
        CHECK_EQ_STR(c.base_url, "https://k.example/");
        fclose(err);
}

static void test_ipv6_listen(void)
{
        struct kurz_config c;
        char *argv[] = {"serve", "--listen", "[::1]:8081", NULL};
        FILE *err = devnull();

        kurz_config_defaults(&c);
        CHECK_EQ_INT(kurz_config_parse(&c, 3, argv, err), 0);
        CHECK_EQ_STR(c.listen_host, "::1");
        CHECK_EQ_INT(c.listen_port, 8081);
        fclose(err);
}

static void test_env_and_flag_precedence(void)
{
        struct kurz_config c;
        char *argv[] = {"serve", "--create-rate-limit", "7", NULL};
        FILE *err = devnull();

        setenv("KURZ_CREATE_RATE_LIMIT", "3", 1);
        setenv("KURZ_DATA_DIR", "/tmp/kurz-env-dir", 1);
        kurz_config_defaults(&c);
        CHECK_EQ_INT(kurz_config_parse(&c, 1, argv, err), 0);
        CHECK_EQ_INT(c.create_rate_limit, 3);
        CHECK_EQ_STR(c.data_dir, "/tmp/kurz-env-dir");
        kurz_config_defaults(&c);
        CHECK_EQ_INT(kurz_config_parse(&c, 3, argv, err), 0);
        CHECK_EQ_INT(c.create_rate_limit, 7); /* the flag wins */
        unsetenv("KURZ_CREATE_RATE_LIMIT");
        unsetenv("KURZ_DATA_DIR");
        fclose(err);
}

static void test_refusals(void)
{
        static char *bad[][3] = {
            {"serve", "--nope", "1"},
            {"serve", "--threads", "0"},
            {"serve", "--threads", "x"},
            {"serve", "--listen", "nocolon"},
            {"serve", "--listen", "h:70000"},
            {"serve", "--codes", "uuid"},
            {"serve", "--worker-id", "1024"},
            {"serve", "--l1-ttl", "soon"},
            {"serve", "--max-body", "-5"},
            {"serve", "stray", "arg"},
            {"serve", "--batch-wait-us", "1001"},
        };
        FILE *err = devnull();

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct kurz_config c;
                kurz_config_defaults(&c);
                if (kurz_config_parse(&c, 3, bad[i], err) != -EINVAL) {
                        fprintf(stderr, "  accepted: %s %s\n", bad[i][1], bad[i][2]);
                        CHECK(0);
                }
        }
        {
                struct kurz_config c;
                char *argv[] = {"serve", "--listen", NULL};
                kurz_config_defaults(&c);
                CHECK_EQ_INT(kurz_config_parse(&c, 2, argv, err), -EINVAL);
        }
        fclose(err);
}

/* --role picks the routes and, without --listen, the plan's port; roles
 * other than all need PostgreSQL. */
static void test_roles(void)
{
        static const struct {
                const char *role;
                unsigned port;
                enum kurz_role id;
        } roles[] = {{"create", 8081, KURZ_ROLE_CREATE},
                     {"lookup", 8082, KURZ_ROLE_LOOKUP},
                     {"stats", 8083, KURZ_ROLE_STATS},
                     {"all", 8080, KURZ_ROLE_ALL}};
        struct kurz_config c;
        FILE *err = devnull();

        for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
                char *argv[] = {"serve", "--role", (char *)roles[i].role, "--database",
                                "postgres://u:p@127.0.0.1:1/kurz"};
                char *lst[] = {
                    "serve",          "--role",     (char *)roles[i].role,         "--listen",
                    "127.0.0.1:9999", "--database", "postgres://u:p@127.0.0.1:1/k"};

                kurz_config_defaults(&c);
                CHECK_EQ_INT(kurz_config_parse(&c, 5, argv, err), 0);
                CHECK_EQ_INT(c.listen_port, roles[i].port);
                CHECK_EQ_INT(c.role_id, roles[i].id);
                CHECK_EQ_STR(kurz_config_role_name(c.role_id), roles[i].role);
                kurz_config_defaults(&c);
                CHECK_EQ_INT(kurz_config_parse(&c, 7, lst, err), 0);
                CHECK_EQ_INT(c.listen_port, 9999);
        }
        {
                char *sq[] = {"serve", "--role", "lookup"};
                char *bad[] = {"serve", "--role", "admin"};

                kurz_config_defaults(&c);
                CHECK_EQ_INT(kurz_config_parse(&c, 3, sq, err), -EINVAL);
                kurz_config_defaults(&c);
                CHECK_EQ_INT(kurz_config_parse(&c, 3, bad, err), -EINVAL);
        }
        setenv("KURZ_ROLE", "stats", 1);
        setenv("KURZ_DATABASE", "postgres://u:p@127.0.0.1:1/kurz", 1);
        {
                char *argv[] = {"serve"};

                kurz_config_defaults(&c);
                CHECK_EQ_INT(kurz_config_parse(&c, 1, argv, err), 0);
                CHECK_EQ_INT(c.role_id, KURZ_ROLE_STATS);
                CHECK_EQ_INT(c.listen_port, 8083);
        }
        unsetenv("KURZ_ROLE");
        unsetenv("KURZ_DATABASE");
        fclose(err);
}

int main(void)
{
        RUN(test_defaults);
        RUN(test_durations);
        RUN(test_flags);
        RUN(test_ipv6_listen);
        RUN(test_env_and_flag_precedence);
        RUN(test_refusals);
        RUN(test_roles);
        TEST_END("config");
}

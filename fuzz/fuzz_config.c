/* fuzz/fuzz_config.c - the command line of `kurz serve`: the input split on
 * NUL bytes is argv (after "serve"). A parse that succeeds must leave a
 * configuration the service can run with (what check() promises, strings
 * terminated); durations must round-trip. Environment variables KURZ_* are
 * cleared first so only the input counts. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MAX_ARGS 64

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf(stderr, "fuzz_config: invariant failed: %s\n", #cond);             \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        extern char **environ;

        (void)argc;
        (void)argv;
        /* Drop every KURZ_* variable (copy the names first: unsetenv edits
         * environ). */
        for (int again = 1; again;) {
                again = 0;
                for (char **e = environ; *e; e++) {
                        if (strncmp(*e, "KURZ_", 5) == 0) {
                                char name[256];
                                size_t n = strcspn(*e, "=");
                                if (n < sizeof(name)) {
                                        memcpy(name, *e, n);
                                        name[n] = '\0';
                                        unsetenv(name);
                                        again = 1;
                                        break;
                                }
                        }
                }
        }
        devnull = fopen("/dev/null", "w");
        if (!devnull)
                abort();
        /* --help prints the usage to stdout. */
        if (!freopen("/dev/null", "w", stdout))
                abort();
        return 0;
}

static bool terminated(const char *s, size_t cap)
{
        return memchr(s, '\0', cap) != NULL;
}

static void check_duration(const char *s)
{
        uint64_t ms, back;
        char text[32];

        if (kurz_config_parse_duration(s, &ms) < 0)
                return;
        CHECK(s[0] >= '0' && s[0] <= '9');
        snprintf(text, sizeof(text), "%" PRIu64 "ms", ms);
        CHECK(kurz_config_parse_duration(text, &back) == 0 && back == ms);
        if (ms % 1000 == 0) {
                snprintf(text, sizeof(text), "%" PRIu64, ms / 1000);
                CHECK(kurz_config_parse_duration(text, &back) == 0 && back == ms);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *buf = malloc(size + 1), *argv[MAX_ARGS + 1];
        struct kurz_config c;
        int argc = 0, rc;

        if (!buf)
                abort();
        memcpy(buf, data, size);
        buf[size] = '\0';
        argv[argc++] = "serve";
        for (size_t i = 0; i <= size && argc < MAX_ARGS;) {
                argv[argc++] = buf + i;
                i += strlen(buf + i) + 1;
        }
        argv[argc] = NULL;
        for (int i = 1; i < argc; i++)
                check_duration(argv[i]);

        kurz_config_defaults(&c);
        rc = kurz_config_parse(&c, argc, argv, devnull);
        CHECK(rc == 0 || rc == 1 || rc == -EINVAL);
        if (rc == 0) {
                CHECK(c.threads >= 1 && c.threads <= 256);
                CHECK(c.store_threads >= 1 && c.store_threads <= 128);
                CHECK(c.worker_id <= 1023 && c.listen_port <= 65535);
                CHECK(strcmp(c.codes, "compact") == 0 || strcmp(c.codes, "snowflake") == 0);
                CHECK(c.max_connections && c.max_body && c.max_header_bytes >= 256 &&
                      c.max_headers && c.max_request_line >= 16);
                CHECK(c.click_flush_ms && c.header_timeout_ms && c.idle_timeout_ms);
                /* What the service narrows or sums must fit. */
                CHECK(c.header_timeout_ms <= UINT32_MAX && c.idle_timeout_ms <= UINT32_MAX &&
                      c.shutdown_grace_ms <= UINT32_MAX);
                CHECK(c.max_request_line + 2 * c.max_header_bytes + 64 > c.max_header_bytes);
                CHECK(terminated(c.listen_host, sizeof(c.listen_host)) && c.listen_host[0]);
                CHECK(terminated(c.data_dir, sizeof(c.data_dir)));
                CHECK(terminated(c.base_url, sizeof(c.base_url)));
                CHECK(terminated(c.trusted_proxies, sizeof(c.trusted_proxies)));
                CHECK(terminated(c.log_level, sizeof(c.log_level)));
        }
        free(buf);
        return 0;
}

/* util/log.c - stderr logging; one fprintf per line keeps lines whole. */
#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static _Atomic int log_level = KURZ_LOG_INFO;

void kurz_log_set_level(enum kurz_log_level level)
{
        atomic_store(&log_level, (int)level);
}

int kurz_log_parse_level(const char *s, enum kurz_log_level *out)
{
        static const char *names[] = {"debug", "info", "warn", "error"};

        for (int i = 0; i < 4; i++) {
                if (strcmp(s, names[i]) == 0) {
                        *out = (enum kurz_log_level)i;
                        return 0;
                }
        }
        return -EINVAL;
}

void kurz_log(enum kurz_log_level level, const char *fmt, ...)
{
        static const char *tags[] = {"debug", "info", "warn", "error"};
        char msg[1024];
        char ts[32];
        struct timespec now;
        struct tm tm;
        va_list ap;

        if ((int)level < atomic_load_explicit(&log_level, memory_order_relaxed))
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        clock_gettime(CLOCK_REALTIME, &now);
        gmtime_r(&now.tv_sec, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
        fprintf(stderr, "%s.%03ldZ %s %s\n", ts, now.tv_nsec / 1000000, tags[level], msg);
}

void kurz_log_escape(char *out, size_t cap, const char *p, size_t len)
{
        static const char hex[] = "0123456789abcdef";
        size_t o = 0;

        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)p[i];
                size_t need = (c < 0x20 || c > 0x7e || c == '"' || c == '\\') ? 4 : 1;

                if (o + need + 4 > cap) {
                        memcpy(out + o, "...", 3);
                        o += 3;
                        break;
                }
                if (need == 4) {
                        out[o++] = '\\';
                        out[o++] = 'x';
                        out[o++] = hex[c >> 4];
                        out[o++] = hex[c & 15];
                } else {
                        out[o++] = (char)c;
                }
        }
        out[o] = '\0';
}

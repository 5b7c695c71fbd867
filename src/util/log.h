/* util/log.h - one-line structured logging to stderr. Every byte that came
 * from a client is escaped before it reaches the log. Thread-safe. */
#ifndef KURZ_UTIL_LOG_H
#define KURZ_UTIL_LOG_H
#include <stddef.h>

enum kurz_log_level { KURZ_LOG_DEBUG, KURZ_LOG_INFO, KURZ_LOG_WARN, KURZ_LOG_ERROR };

/* Messages below level are dropped. Default KURZ_LOG_INFO. */
void kurz_log_set_level(enum kurz_log_level level);
/* Parses "debug|info|warn|error"; returns 0 or -EINVAL. */
int kurz_log_parse_level(const char *s, enum kurz_log_level *out);
void kurz_log(enum kurz_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Writes an escaped copy of untrusted bytes (\xNN for anything outside
 * printable ASCII, and for quote and backslash) into out, always
 * NUL-terminated, truncated with "..." to fit cap (cap >= 4). */
void kurz_log_escape(char *out, size_t cap, const char *p, size_t len);

#define kurz_debug(...) kurz_log(KURZ_LOG_DEBUG, __VA_ARGS__)
#define kurz_info(...)  kurz_log(KURZ_LOG_INFO, __VA_ARGS__)
#define kurz_warn(...)  kurz_log(KURZ_LOG_WARN, __VA_ARGS__)
#define kurz_error(...) kurz_log(KURZ_LOG_ERROR, __VA_ARGS__)
#endif

/* util/str.h - a borrowed string slice, the currency of every module that
 * touches request bytes. A slice never owns its bytes and is not NUL-terminated
 * unless its producer says so. */
#ifndef KURZ_UTIL_STR_H
#define KURZ_UTIL_STR_H
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

struct kurz_str {
        const char *p;
        size_t len;
};

#define KURZ_STR_LIT(s) ((struct kurz_str){(s), sizeof(s) - 1})

static inline struct kurz_str kurz_str_c(const char *s)
{
        return (struct kurz_str){s, s ? strlen(s) : 0};
}

static inline bool kurz_str_eq(struct kurz_str a, struct kurz_str b)
{
        return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static inline bool kurz_str_eq_lit(struct kurz_str a, const char *lit)
{
        return kurz_str_eq(a, kurz_str_c(lit));
}

/* ASCII case-insensitive equality. */
static inline bool kurz_str_ieq(struct kurz_str a, struct kurz_str b)
{
        return a.len == b.len && (a.len == 0 || strncasecmp(a.p, b.p, a.len) == 0);
}

static inline bool kurz_str_has_prefix(struct kurz_str s, const char *prefix)
{
        size_t n = strlen(prefix);
        return s.len >= n && memcmp(s.p, prefix, n) == 0;
}
#endif

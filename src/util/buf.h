/* util/buf.h - a growable byte buffer with a hard cap. Used for response
 * bodies and output queues; growth past the cap fails instead of letting a
 * client make the process allocate without bound. Not thread-safe. */
#ifndef KURZ_UTIL_BUF_H
#define KURZ_UTIL_BUF_H
#include <stdarg.h>
#include <stddef.h>

/* Once anything was appended, p[len] is always a NUL, so p is also a C
 * string (unless binary data with NULs was appended). */
struct kurz_buf {
        char *p;      /* owned; NULL until the first append */
        size_t len;   /* bytes used */
        size_t cap;   /* bytes allocated */
        size_t limit; /* maximum cap; 0 means 64 MiB */
};

/* Ensures room for n more bytes. Returns 0, -ENOMEM, or -E2BIG past limit. */
int kurz_buf_reserve(struct kurz_buf *b, size_t n);
/* Appends bytes. Returns 0 or the kurz_buf_reserve error. */
int kurz_buf_append(struct kurz_buf *b, const void *data, size_t n);
static inline int kurz_buf_puts(struct kurz_buf *b, const char *s);
/* printf-style append. Returns 0 or a negative error. */
int kurz_buf_printf(struct kurz_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Removes the first n bytes (n <= len). */
void kurz_buf_consume(struct kurz_buf *b, size_t n);
/* Frees the storage; the buffer is empty and reusable afterwards. */
void kurz_buf_free(struct kurz_buf *b);

#include <string.h>
static inline int kurz_buf_puts(struct kurz_buf *b, const char *s)
{
        return kurz_buf_append(b, s, strlen(s));
}
#endif

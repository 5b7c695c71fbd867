/* util/buf.c - growable byte buffer with a cap. */
#include "util/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KURZ_BUF_DEFAULT_LIMIT ((size_t)64 << 20)

int kurz_buf_reserve(struct kurz_buf *b, size_t n)
{
        size_t limit = b->limit ? b->limit : KURZ_BUF_DEFAULT_LIMIT;
        size_t need, ncap;
        char *np;

        if (n > limit || b->len > limit - n)
                return -E2BIG;
        need = b->len + n + 1; /* room for the terminating NUL */
        if (need <= b->cap)
                return 0;
        ncap = b->cap ? b->cap : 256;
        while (ncap < need)
                ncap *= 2;
        if (ncap > limit + 1)
                ncap = limit + 1;
        np = realloc(b->p, ncap);
        if (!np)
                return -ENOMEM;
        b->p = np;
        b->cap = ncap;
        return 0;
}

int kurz_buf_append(struct kurz_buf *b, const void *data, size_t n)
{
        int rc;

        if (n == 0)
                return 0;
        rc = kurz_buf_reserve(b, n);
        if (rc < 0)
                return rc;
        memcpy(b->p + b->len, data, n);
        b->len += n;
        b->p[b->len] = '\0';
        return 0;
}

int kurz_buf_printf(struct kurz_buf *b, const char *fmt, ...)
{
        va_list ap;
        int n, rc;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        rc = kurz_buf_reserve(b, (size_t)n);
        if (rc < 0)
                return rc;
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
        return 0;
}

void kurz_buf_consume(struct kurz_buf *b, size_t n)
{
        if (n >= b->len) {
                b->len = 0;
        } else {
                memmove(b->p, b->p + n, b->len - n);
                b->len -= n;
        }
        if (b->p)
                b->p[b->len] = '\0';
}

void kurz_buf_free(struct kurz_buf *b)
{
        free(b->p);
        b->p = NULL;
        b->len = 0;
        b->cap = 0;
}

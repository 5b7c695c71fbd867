/* ids/base62.c - base62 encoding of unsigned 64-bit values with the alphabet
 * 0-9a-zA-Z, where a character's index in the alphabet is its digit value
 * ("10" is 62). Note that ASCII order (A-Z before a-z) is not numeric order. */
#include "ids/base62.h"

#include <errno.h>
#include <limits.h>

static const char alphabet[62] = "0123456789abcdefghijklmnopqrstuvwxyz"
                                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/* 62^10 < 2^64 < 62^11: no uint64_t needs more than 11 digits. */
#define BASE62_MAX_DIGITS 11

static int digit_value(unsigned char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'Z')
                return c - 'A' + 36;
        return -1;
}

int kurz_base62_encode(uint64_t v, unsigned width, char *out, size_t cap)
{
        char tmp[BASE62_MAX_DIGITS];
        size_t n = 0, len, i;

        /* Digits least significant first; the shortest form of 0 is "0". */
        do {
                tmp[n++] = alphabet[v % 62];
                v /= 62;
        } while (v);
        len = n;
        if (width > 0) {
                if (n > width)
                        return -ERANGE;
                len = width;
        }
        if (!out || len > INT_MAX - 1 || cap < len + 1)
                return -ERANGE;
        for (i = 0; i < len - n; i++)
                out[i] = '0';
        for (; i < len; i++)
                out[i] = tmp[len - 1 - i];
        out[len] = '\0';
        return (int)len;
}

int kurz_base62_decode(const char *s, size_t len, uint64_t *out)
{
        uint64_t v = 0;
        size_t i;
        int d;

        if (!s || len == 0)
                return -EINVAL;
        for (i = 0; i < len; i++) {
                d = digit_value((unsigned char)s[i]);
                if (d < 0)
                        return -EINVAL;
                if (v > (UINT64_MAX - (uint64_t)d) / 62)
                        return -ERANGE;
                v = v * 62 + (uint64_t)d;
        }
        *out = v;
        return 0;
}

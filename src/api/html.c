/* api/html.c - HTML escaping, URL percent-encoding and form decoding for the
 * web pages (api/ui.c). Every value a user could have chosen passes through
 * kurz_html_escape() before it reaches a page. */
#include "api/html.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

/* Length of the well-formed UTF-8 sequence (RFC 3629) at p[0..n), or 0 when
 * it is malformed. p[0] >= 0x80. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
        unsigned char c = p[0];
        unsigned char lo = 0x80, hi = 0xbf;
        size_t len;

        if (c >= 0xc2 && c <= 0xdf)
                len = 2;
        else if (c >= 0xe0 && c <= 0xef)
                len = 3;
        else if (c >= 0xf0 && c <= 0xf4)
                len = 4;
        else
                return 0;
        if (n < len)
                return 0;
        /* The second byte's range excludes overlongs, surrogates and code
         * points above U+10FFFF. */
        if (c == 0xe0)
                lo = 0xa0;
        else if (c == 0xed)
                hi = 0x9f;
        else if (c == 0xf0)
                lo = 0x90;
        else if (c == 0xf4)
                hi = 0x8f;
        if (p[1] < lo || p[1] > hi)
                return 0;
        for (size_t i = 2; i < len; i++)
                if (p[i] < 0x80 || p[i] > 0xbf)
                        return 0;
        return len;
}

int kurz_html_escape(struct kurz_buf *b, const char *p, size_t len)
{
        const unsigned char *s = (const unsigned char *)p;
        size_t i = 0, run = 0; /* s[run..i) is copied as it is */
        int rc;

        if (len == 0) {
                rc = kurz_buf_reserve(b, 1);
                if (rc == 0)
                        b->p[b->len] = '\0';
                return rc;
        }
        while (i < len) {
                unsigned char c = s[i];
                const char *rep = NULL;
                size_t adv = 1;

                switch (c) {
                case '&':
                        rep = "&amp;";
                        break;
                case '<':
                        rep = "&lt;";
                        break;
                case '>':
                        rep = "&gt;";
                        break;
                case '"':
                        rep = "&quot;";
                        break;
                case '\'':
                        rep = "&#39;";
                        break;
                case '\t':
                        rep = "&#9;";
                        break;
                case '\n':
                        rep = "&#10;";
                        break;
                case '\r':
                        rep = "&#13;";
                        break;
                default:
                        if (c < 0x20 || c == 0x7f) {
                                rep = replacement;
                        } else if (c >= 0x80) {
                                adv = utf8_len(s + i, len - i);
                                if (adv == 0) {
                                        rep = replacement;
                                        adv = 1;
                                }
                        }
                        break;
                }
                if (!rep) {
                        i += adv;
                        continue;
                }
                rc = kurz_buf_append(b, s + run, i - run);
                if (rc == 0)
                        rc = kurz_buf_puts(b, rep);
                if (rc < 0)
                        return rc;
                i += adv;
                run = i;
        }
        return kurz_buf_append(b, s + run, i - run);
}

int kurz_html_urlencode(struct kurz_buf *b, const char *p, size_t len)
{
        static const char hex[] = "0123456789ABCDEF";
        int rc = kurz_buf_reserve(b, len * 3 + 1);

        if (rc < 0)
                return rc;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)p[i];
                bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';

                if (keep) {
                        b->p[b->len++] = (char)c;
                } else {
                        b->p[b->len++] = '%';
                        b->p[b->len++] = hex[c >> 4];
                        b->p[b->len++] = hex[c & 15];
                }
        }
        b->p[b->len] = '\0';
        return 0;
}

static int hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Decodes s[0..len) into out (appending). Returns 0, -EINVAL for a bad
 * escape, -E2BIG past max decoded bytes, or a kurz_buf error. */
static int decode(const char *s, size_t len, struct kurz_buf *out, size_t max)
{
        size_t start = out->len;
        int rc;

        /* Decoding never grows the text: reserving len bytes is enough. */
        rc = kurz_buf_reserve(out, (len < max ? len : max) + 1);
        if (rc < 0)
                return rc;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];

                if (c == '+') {
                        c = ' ';
                } else if (c == '%') {
                        int hi, lo;
                        if (len - i < 3)
                                return -EINVAL;
                        hi = hexval(s[i + 1]);
                        lo = hexval(s[i + 2]);
                        if (hi < 0 || lo < 0)
                                return -EINVAL;
                        c = (char)(hi << 4 | lo);
                        i += 2;
                }
                if (out->len - start >= max)
                        return -E2BIG;
                out->p[out->len++] = c;
        }
        out->p[out->len] = '\0';
        return 0;
}

int kurz_html_form_get(struct kurz_str form, const char *key, struct kurz_buf *out, size_t max)
{
        size_t klen = strlen(key);
        size_t i = 0;

        out->len = 0;
        while (i < form.len) {
                const char *f = form.p + i;
                const char *amp = memchr(f, '&', form.len - i);
                size_t flen = amp ? (size_t)(amp - f) : form.len - i;
                const char *eq = memchr(f, '=', flen);
                size_t nlen = eq ? (size_t)(eq - f) : flen;
                struct kurz_buf name = {0};
                int rc;

                i += flen + 1;
                if (nlen == 0)
                        continue;
                /* Names are compared decoded; a name longer than the key
                 * (plus escapes) cannot match. */
                if (nlen > 3 * klen)
                        continue;
                rc = decode(f, nlen, &name, klen + 1);
                if (rc == -ENOMEM) {
                        kurz_buf_free(&name);
                        return rc;
                }
                if (rc < 0 || name.len != klen || memcmp(name.p, key, klen) != 0) {
                        kurz_buf_free(&name);
                        continue;
                }
                kurz_buf_free(&name);
                if (!eq) {
                        if (kurz_buf_reserve(out, 1) < 0)
                                return -ENOMEM;
                        out->p[0] = '\0';
                        return 1;
                }
                rc = decode(eq + 1, flen - nlen - 1, out, max);
                if (rc < 0) {
                        out->len = 0;
                        return rc;
                }
                return 1;
        }
        return 0;
}

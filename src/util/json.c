/* util/json.c - JSON string literals safe for HTML, RFC 3339 timestamps out
 * and in. Dates are converted with the days-from-civil arithmetic of the
 * proleptic Gregorian calendar, so no locale or time zone state is touched. */
#include "util/json.h"

#include <errno.h>
#include <stdbool.h>

static const char hex[] = "0123456789abcdef";

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), or 0 when
 * the byte at p does not start one (RFC 3629, table 3-7 of Unicode). Sets
 * *cp to the code point. */
static size_t utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
        unsigned char c = p[0];
        size_t need;
        uint32_t v, min;

        if (c < 0x80) {
                *cp = c;
                return 1;
        }
        if (c >= 0xc2 && c <= 0xdf) {
                need = 2;
                v = c & 0x1f;
                min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
                need = 3;
                v = c & 0x0f;
                min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
                need = 4;
                v = c & 0x07;
                min = 0x10000;
        } else {
                return 0; /* continuation byte, C0/C1 overlong lead, F5-FF */
        }
        if (n < need)
                return 0;
        for (size_t i = 1; i < need; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                v = v << 6 | (p[i] & 0x3f);
        }
        if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
                return 0; /* overlong, too large, or a UTF-16 surrogate */
        *cp = v;
        return need;
}

static int put_u(struct kurz_buf *b, uint32_t cp)
{
        char e[6] = {
            '\\',        'u', hex[(cp >> 12) & 15], hex[(cp >> 8) & 15], hex[(cp >> 4) & 15],
            hex[cp & 15]};

        return kurz_buf_append(b, e, sizeof(e));
}

int kurz_json_escape(struct kurz_buf *b, const char *p, size_t len)
{
        const unsigned char *s = (const unsigned char *)p;
        size_t i = 0, run = 0, n;
        uint32_t cp = 0; /* set by every branch; gcc -fsanitize=thread cannot tell */
        int rc;

        /* The common case (nothing to escape) needs exactly len + 2. */
        rc = kurz_buf_reserve(b, len + 2);
        if (rc < 0)
                return rc;
        rc = kurz_buf_append(b, "\"", 1);
        /* [run, i) is a stretch of bytes copied as they are. */
        while (rc == 0 && i < len) {
                unsigned char c = s[i];
                const char *esc = NULL;

                if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>' &&
                    c != '&') {
                        i++;
                        continue;
                }
                n = utf8_seq(s + i, len - i, &cp);
                if (n > 1 && cp != 0x2028 && cp != 0x2029) {
                        i += n; /* well-formed non-ASCII: copied as is */
                        continue;
                }
                if (i > run)
                        rc = kurz_buf_append(b, s + run, i - run);
                if (rc < 0)
                        break;
                switch (c) {
                case '"':
                        esc = "\\\"";
                        break;
                case '\\':
                        esc = "\\\\";
                        break;
                case '\b':
                        esc = "\\b";
                        break;
                case '\f':
                        esc = "\\f";
                        break;
                case '\n':
                        esc = "\\n";
                        break;
                case '\r':
                        esc = "\\r";
                        break;
                case '\t':
                        esc = "\\t";
                        break;
                }
                if (esc) {
                        rc = kurz_buf_append(b, esc, 2);
                        i++;
                } else if (n == 0) {
                        rc = put_u(b, 0xfffd); /* one per ill-formed byte */
                        i++;
                } else {
                        /* other controls, DEL, < > &, U+2028, U+2029 */
                        rc = put_u(b, cp);
                        i += n;
                }
                run = i;
        }
        if (rc == 0 && i > run)
                rc = kurz_buf_append(b, s + run, i - run);
        if (rc == 0)
                rc = kurz_buf_append(b, "\"", 1);
        return rc;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
        int64_t era;
        unsigned yoe, doy, doe;

        y -= m <= 2;
        era = (y >= 0 ? y : y - 399) / 400;
        yoe = (unsigned)(y - era * 400);
        doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
        doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t)doe - 719468;
}

/* The inverse: the date of a day number. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
        int64_t era;
        unsigned doe, yoe, doy, mp;

        z += 719468;
        era = (z >= 0 ? z : z - 146096) / 146097;
        doe = (unsigned)(z - era * 146097);
        yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        mp = (5 * doy + 2) / 153;
        *d = doy - (153 * mp + 2) / 5 + 1;
        *m = mp < 10 ? mp + 3 : mp - 9;
        *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

int kurz_json_time(struct kurz_buf *b, int64_t unix_s)
{
        int64_t days, secs, y;
        unsigned m, d;

        if (unix_s == 0)
                return kurz_buf_append(b, "null", 4);
        /* Years 0000-9999 only: -62167219200 is 0000-01-01T00:00:00Z and
         * 253402300799 is 9999-12-31T23:59:59Z (this also keeps the
         * arithmetic below far from overflow). */
        if (unix_s < -62167219200LL || unix_s > 253402300799LL)
                return -ERANGE;
        days = unix_s / 86400;
        secs = unix_s % 86400;
        if (secs < 0) {
                secs += 86400;
                days--;
        }
        civil_from_days(days, &y, &m, &d);
        return kurz_buf_printf(b, "\"%04d-%02u-%02uT%02d:%02d:%02dZ\"", (int)y, m, d,
                               (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
}

/* Reads exactly n decimal digits at *pos. */
static bool digits(const char *s, size_t len, size_t *pos, size_t n, unsigned *out)
{
        unsigned v = 0;

        if (len - *pos < n)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[*pos + i];
                if (c < '0' || c > '9')
                        return false;
                v = v * 10 + (unsigned)(c - '0');
        }
        *pos += n;
        *out = v;
        return true;
}

static bool expect(const char *s, size_t len, size_t *pos, char c)
{
        if (*pos >= len || s[*pos] != c)
                return false;
        (*pos)++;
        return true;
}

static bool is_leap(unsigned y)
{
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
        static const unsigned dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

        return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

int kurz_time_parse_rfc3339(const char *s, size_t len, int64_t *out)
{
        unsigned year, mon, day, hh, mm, ss, oh = 0, om = 0;
        size_t pos = 0;
        int sign = 0;

        if (!s)
                return -EINVAL;
        if (!digits(s, len, &pos, 4, &year) || !expect(s, len, &pos, '-') ||
            !digits(s, len, &pos, 2, &mon) || !expect(s, len, &pos, '-') ||
            !digits(s, len, &pos, 2, &day))
                return -EINVAL;
        if (pos >= len || (s[pos] != 'T' && s[pos] != 't'))
                return -EINVAL;
        pos++;
        if (!digits(s, len, &pos, 2, &hh) || !expect(s, len, &pos, ':') ||
            !digits(s, len, &pos, 2, &mm) || !expect(s, len, &pos, ':') ||
            !digits(s, len, &pos, 2, &ss))
                return -EINVAL;
        if (pos < len && s[pos] == '.') {
                size_t start = ++pos;
                while (pos < len && s[pos] >= '0' && s[pos] <= '9')
                        pos++;
                if (pos == start)
                        return -EINVAL; /* "." without digits */
        }
        if (pos >= len)
                return -EINVAL; /* the offset is required */
        if (s[pos] == 'Z' || s[pos] == 'z') {
                pos++;
        } else if (s[pos] == '+' || s[pos] == '-') {
                sign = s[pos] == '+' ? 1 : -1;
                pos++;
                if (!digits(s, len, &pos, 2, &oh) || !expect(s, len, &pos, ':') ||
                    !digits(s, len, &pos, 2, &om))
                        return -EINVAL;
        } else {
                return -EINVAL;
        }
        if (pos != len)
                return -EINVAL;
        if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) || hh > 23 ||
            mm > 59 || ss > 60 || oh > 23 || om > 59)
                return -EINVAL;
        *out = days_from_civil(year, mon, day) * 86400 + (int64_t)hh * 3600 + (int64_t)mm * 60 +
               ss - (int64_t)sign * ((int64_t)oh * 3600 + (int64_t)om * 60);
        return 0;
}

/* util/json.h - helpers for writing JSON by hand into a kurz_buf: string
 * literals that are safe to embed in HTML, timestamps as RFC 3339 strings,
 * and the matching RFC 3339 parser for timestamps clients send.
 * Pure functions of their arguments, thread-safe (the buffer is the caller's). */
#ifndef KURZ_UTIL_JSON_H
#define KURZ_UTIL_JSON_H
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Appends the bytes p[0..len) as a JSON string literal, quotes included.
 * Escaped: '"' and '\\'; control characters (U+0000-U+001F, U+007F) as \b \f
 * \n \r \t or \u00XX; '<', '>' and '&' as \u003c \u003e \u0026, so the output
 * is also safe inside HTML <script> and attributes; U+2028 and U+2029 (line
 * separators to JavaScript). Every byte that is not part of well-formed UTF-8
 * (stray continuation bytes, truncated or overlong sequences, surrogates, code
 * points above U+10FFFF) becomes \ufffd. p may be NULL when len is 0.
 * Returns 0 or the kurz_buf_reserve error (-ENOMEM, -E2BIG); on error the
 * buffer may hold part of the literal. */
int kurz_json_escape(struct kurz_buf *b, const char *p, size_t len);

/* Appends unix_s (seconds since 1970, UTC) as a JSON string
 * "2026-11-28T23:08:02Z", or the JSON literal null when unix_s is 0 (the
 * store's "never"). Returns 0, -ERANGE for a year outside 0000-9999, or the
 * kurz_buf_reserve error. */
int kurz_json_time(struct kurz_buf *b, int64_t unix_s);

/* Parses an RFC 3339 date-time, all of s[0..len): YYYY-MM-DD, 'T' or 't',
 * hh:mm:ss, optional fraction ".d..." (ignored: the result is truncated to the
 * second), then 'Z', 'z' or a +hh:mm / -hh:mm offset. Dates are checked
 * (2026-02-30 is refused; leap years count); second 60 (a leap second) is
 * accepted and lands on the next second. Writes seconds since 1970 UTC to
 * *out. Returns 0 or -EINVAL. */
int kurz_time_parse_rfc3339(const char *s, size_t len, int64_t *out);
#endif

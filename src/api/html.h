/* api/html.h - writing HTML safely into a kurz_buf (escaping of every value
 * that came from a user), percent-encoding for URLs in attributes, and the
 * decoding of application/x-www-form-urlencoded bodies and query strings.
 * Pure functions of their arguments, thread-safe (the buffers are the
 * caller's). */
#ifndef KURZ_API_HTML_H
#define KURZ_API_HTML_H
#include <stddef.h>
#include <string.h>

#include "util/buf.h"
#include "util/str.h"

/* Appends p[0..len) escaped for HTML text and for quoted attribute values
 * (single or double quotes): & < > " ' become entities; tab, LF and CR become
 * numeric references; every other control character (U+0000-U+001F, U+007F)
 * and every byte that is not part of well-formed UTF-8 becomes U+FFFD. The
 * output can never open a tag, close an attribute or start a comment. p may be
 * NULL when len is 0. Returns 0 or the kurz_buf_reserve error. */
int kurz_html_escape(struct kurz_buf *b, const char *p, size_t len);

static inline int kurz_html_escape_c(struct kurz_buf *b, const char *s)
{
        return kurz_html_escape(b, s, s ? strlen(s) : 0);
}

/* Appends p[0..len) percent-encoded as one URL query component: only the
 * RFC 3986 unreserved characters A-Z a-z 0-9 - . _ ~ stay as they are. The
 * result is also safe inside an HTML attribute. Returns 0 or the
 * kurz_buf_reserve error. */
int kurz_html_urlencode(struct kurz_buf *b, const char *p, size_t len);

/* Looks key up in form, an application/x-www-form-urlencoded body or a query
 * string ("a=1&b=x+y"), comparing against the decoded names, and decodes the
 * value of its first occurrence ('+' is a space, %XX a byte) into out, which
 * is reset first and NUL-terminated on success (the value itself may contain
 * NUL bytes: check out->len). A name without '=' has the empty value.
 * Returns 1 when found, 0 when absent, -E2BIG when the decoded value is longer
 * than max bytes, -EINVAL for a malformed %-escape, or -ENOMEM. */
int kurz_html_form_get(struct kurz_str form, const char *key, struct kurz_buf *out, size_t max);
#endif

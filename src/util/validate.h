/* util/validate.h - validation of the untrusted strings a create carries:
 * target URLs and custom aliases. Pure functions, thread-safe. */
#ifndef KURZ_UTIL_VALIDATE_H
#define KURZ_UTIL_VALIDATE_H
#include <stdbool.h>
#include <stddef.h>

#include "util/str.h"

/* A parsed URL's parts, borrowed from the input. */
struct kurz_url_parts {
        struct kurz_str scheme; /* "http" or "https", as written (any case) */
        struct kurz_str host;   /* without brackets for IPv6 literals */
        unsigned port;          /* explicit port, or 80/443 by scheme */
};

/* Checks a target URL: scheme http or https in any letter case, "://", a
 * non-empty host of valid characters, an optional port 1-65535; no control
 * characters, spaces, CR/LF or bytes >= 0x7f anywhere; at most max_len bytes.
 * Returns NULL when valid (and fills parts if non-NULL), else a message for the
 * client, e.g. "originalUrl must start with http:// or https://". */
const char *kurz_url_check(struct kurz_str url, size_t max_len, struct kurz_url_parts *parts);

/* True when the two hosts are the same site (ASCII case-insensitive, a
 * trailing dot ignored) and the ports are equal. Used to refuse links to kurz
 * itself. */
bool kurz_url_same_origin(const struct kurz_url_parts *a, const struct kurz_url_parts *b);

/* Checks a custom alias: 3-64 characters of [0-9A-Za-z_-], not a reserved word
 * (api, health, metrics, admin, static, stats, ... in any case). Returns NULL
 * when valid, else a message for the client. */
const char *kurz_alias_check(struct kurz_str alias);

/* True when s may be a code in a request path: 1-64 chars of [0-9A-Za-z_-]. */
bool kurz_code_syntax_ok(struct kurz_str s);
#endif

/* util/validate.c - checks of the untrusted strings a create carries: the
 * target URL (an absolute http/https URL of printable ASCII, no userinfo) and
 * custom aliases. Everything is decided on the bytes alone; no DNS. */
#include "util/validate.h"

#include <arpa/inet.h>
#include <stdint.h>

#define HOST_MAX      253 /* a DNS name, without the optional trailing dot */
#define LABEL_MAX     63  /* one DNS label */
#define IPV6_TEXT_MAX 45

/* Messages for the client; the create API puts them in the 400 answer. */
#define MSG_EMPTY    "originalUrl must not be empty"
#define MSG_TOO_LONG "originalUrl is too long"
#define MSG_SCHEME   "originalUrl must start with http:// or https://"
#define MSG_CONTROL  "originalUrl must not contain control characters (such as CR, LF, tab or NUL)"
#define MSG_SPACE    "originalUrl must not contain spaces (percent-encode them as %20)"
#define MSG_NON_ASCII                                                                              \
        "originalUrl must contain only ASCII characters (percent-encode others, and use punycode " \
        "for international domain names)"
#define MSG_USERINFO                                                                               \
        "originalUrl must not contain a user name or password (user:pass@ before the host)"
#define MSG_NO_HOST "originalUrl must have a host name"
#define MSG_HOST    "originalUrl has an invalid host name"
#define MSG_IP      "originalUrl has an invalid IP address"
#define MSG_PORT    "originalUrl has an invalid port (it must be a number from 1 to 65535)"

static bool is_alpha(unsigned char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
        return c >= '0' && c <= '9';
}

static bool is_hex(unsigned char c)
{
        return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The characters of a code or alias: [0-9A-Za-z_-]. */
static bool is_code_char(unsigned char c)
{
        return is_alpha(c) || is_digit(c) || c == '-' || c == '_';
}

/* Parses the port after ':' (all of s). Returns 1-65535, or 0 when invalid. */
static unsigned parse_port(struct kurz_str s)
{
        unsigned v = 0;

        if (s.len == 0 || s.len > 5)
                return 0;
        for (size_t i = 0; i < s.len; i++) {
                if (!is_digit((unsigned char)s.p[i]))
                        return 0;
                v = v * 10 + (unsigned)(s.p[i] - '0');
        }
        return v <= 65535 ? v : 0;
}

/* True when the last label of the host is numeric (decimal, or 0x hex as
 * browsers read it): the host is then an IPv4 address to browsers, never a
 * domain name (no top-level domain is numeric). */
static bool ends_in_number(struct kurz_str h)
{
        size_t start = h.len;

        while (start > 0 && h.p[start - 1] != '.')
                start--;
        struct kurz_str last = {h.p + start, h.len - start};
        if (last.len == 0)
                return false;
        if (last.len >= 2 && last.p[0] == '0' && (last.p[1] == 'x' || last.p[1] == 'X')) {
                for (size_t i = 2; i < last.len; i++)
                        if (!is_hex((unsigned char)last.p[i]))
                                return false;
                return true;
        }
        for (size_t i = 0; i < last.len; i++)
                if (!is_digit((unsigned char)last.p[i]))
                        return false;
        return true;
}

/* Checks a registered name or IPv4 address (without a trailing dot). */
static const char *check_reg_name(struct kurz_str h)
{
        size_t label = 0;
        char tmp[16];
        struct in_addr a4;

        if (h.len == 0)
                return MSG_NO_HOST;
        if (h.len > HOST_MAX)
                return MSG_HOST;
        if (h.p[0] == '-' || h.p[0] == '.' || h.p[h.len - 1] == '-' || h.p[h.len - 1] == '.')
                return MSG_HOST;
        for (size_t i = 0; i < h.len; i++) {
                unsigned char c = (unsigned char)h.p[i];
                if (c == '.') {
                        if (label == 0)
                                return MSG_HOST; /* empty label: ".." */
                        label = 0;
                        continue;
                }
                if (c == '%') {
                        if (i + 2 >= h.len || !is_hex((unsigned char)h.p[i + 1]) ||
                            !is_hex((unsigned char)h.p[i + 2]))
                                return MSG_HOST;
                } else if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_' && c != '~') {
                        return MSG_HOST;
                }
                if (++label > LABEL_MAX)
                        return MSG_HOST;
        }
        /* Browsers read 127.1, 0x7f.0.0.1 or 2130706433 as IPv4 addresses;
         * only the plain dotted quad is accepted, so what is checked (and
         * compared by same_origin) is what a browser would visit. */
        if (ends_in_number(h)) {
                if (h.len >= sizeof(tmp))
                        return MSG_IP;
                memcpy(tmp, h.p, h.len);
                tmp[h.len] = '\0';
                /* glibc's inet_pton takes exactly a.b.c.d, 0-255, and no
                 * leading zeros (which browsers would read as octal). */
                if (inet_pton(AF_INET, tmp, &a4) != 1)
                        return MSG_IP;
        }
        return NULL;
}

/* Checks an IPv6 literal (the text between the brackets). */
static const char *check_ipv6(struct kurz_str h)
{
        char tmp[IPV6_TEXT_MAX + 1];
        struct in6_addr a6;

        if (h.len == 0 || h.len > IPV6_TEXT_MAX)
                return MSG_IP;
        /* Zone ids ("%25eth0") mean nothing outside the sender's machine. */
        for (size_t i = 0; i < h.len; i++)
                if (!is_hex((unsigned char)h.p[i]) && h.p[i] != ':' && h.p[i] != '.')
                        return MSG_IP;
        memcpy(tmp, h.p, h.len);
        tmp[h.len] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
                return MSG_IP;
        return NULL;
}

const char *kurz_url_check(struct kurz_str url, size_t max_len, struct kurz_url_parts *parts)
{
        struct kurz_url_parts out = {{NULL, 0}, {NULL, 0}, 0};
        struct kurz_str auth, hostport, port = {NULL, 0};
        const char *p = url.p, *end, *colon, *err;
        size_t i, scheme_len;
        bool has_port = false;

        if (!p || url.len == 0)
                return MSG_EMPTY;
        if (url.len > max_len)
                return MSG_TOO_LONG;

        /* scheme "://" */
        if (url.len > 7 && strncasecmp(p, "https://", 8) == 0)
                scheme_len = 5;
        else if (url.len > 6 && strncasecmp(p, "http://", 7) == 0)
                scheme_len = 4;
        else
                return MSG_SCHEME;
        out.scheme = (struct kurz_str){p, scheme_len};

        /* Every byte: printable ASCII only. Checked before the host so that
         * "http://exa mple.com" is told about the space, not the host. */
        for (i = 0; i < url.len; i++) {
                unsigned char c = (unsigned char)p[i];
                if (c < 0x20 || c == 0x7f)
                        return MSG_CONTROL;
                if (c == ' ')
                        return MSG_SPACE;
                if (c >= 0x80)
                        return MSG_NON_ASCII;
        }

        /* The authority runs to the first '/', '?' or '#'. */
        auth.p = p + scheme_len + 3;
        end = p + url.len;
        for (i = 0; auth.p + i < end; i++)
                if (auth.p[i] == '/' || auth.p[i] == '?' || auth.p[i] == '#')
                        break;
        auth.len = i;
        /* "http://good.example@evil.example/" visits evil.example: refuse
         * userinfo outright rather than let it disguise the target. */
        if (memchr(auth.p, '@', auth.len))
                return MSG_USERINFO;
        if (auth.len == 0)
                return MSG_NO_HOST;

        hostport = auth;
        if (auth.p[0] == '[') {
                const char *rb = memchr(auth.p, ']', auth.len);
                if (!rb)
                        return MSG_IP;
                out.host = (struct kurz_str){auth.p + 1, (size_t)(rb - auth.p - 1)};
                err = check_ipv6(out.host);
                if (err)
                        return err;
                hostport.p = rb + 1;
                hostport.len = auth.len - (size_t)(rb + 1 - auth.p);
                if (hostport.len > 0) {
                        if (hostport.p[0] != ':')
                                return MSG_HOST;
                        port = (struct kurz_str){hostport.p + 1, hostport.len - 1};
                        has_port = true;
                }
        } else {
                colon = memchr(auth.p, ':', auth.len);
                out.host = auth;
                if (colon) {
                        out.host.len = (size_t)(colon - auth.p);
                        port = (struct kurz_str){colon + 1, auth.len - out.host.len - 1};
                        has_port = true;
                }
                /* One trailing dot is the fully qualified form of the same
                 * name; it stays in parts.host as written. */
                struct kurz_str name = out.host;
                if (name.len > 1 && name.p[name.len - 1] == '.')
                        name.len--;
                err = check_reg_name(name);
                if (err)
                        return err;
        }
        if (has_port) {
                out.port = parse_port(port);
                if (!out.port)
                        return MSG_PORT;
        } else {
                out.port = scheme_len == 5 ? 443 : 80;
        }
        if (parts)
                *parts = out;
        return NULL;
}

/* h without one trailing dot. */
static struct kurz_str strip_dot(struct kurz_str h)
{
        if (h.len > 0 && h.p[h.len - 1] == '.')
                h.len--;
        return h;
}

bool kurz_url_same_origin(const struct kurz_url_parts *a, const struct kurz_url_parts *b)
{
        return a->port == b->port && kurz_str_ieq(strip_dot(a->host), strip_dot(b->host));
}

/* Words an alias may not take, in any letter case: the service's own paths
 * and names that would confuse readers of a short link. */
static const char *const reserved[] = {
    "api",    "health", "metrics", "admin", "static", "stats", "assets", "www",    "app",  "login",
    "logout", "about",  "help",    "docs",  "ui",     "qr",    "create", "lookup", "urls", "new",
};

const char *kurz_alias_check(struct kurz_str alias)
{
        size_t i;

        if (!alias.p || alias.len < 3 || alias.len > 64)
                return "alias must be 3 to 64 characters long";
        for (i = 0; i < alias.len; i++)
                if (!is_code_char((unsigned char)alias.p[i]))
                        return "alias may contain only letters, digits, '-' and '_'";
        for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
                if (kurz_str_ieq(alias, kurz_str_c(reserved[i])))
                        return "alias is a reserved word; choose another";
        return NULL;
}

bool kurz_code_syntax_ok(struct kurz_str s)
{
        if (!s.p || s.len == 0 || s.len > 64)
                return false;
        for (size_t i = 0; i < s.len; i++)
                if (!is_code_char((unsigned char)s.p[i]))
                        return false;
        return true;
}

/* store/shards.c - parser of the shards file and slot routing. The format is
 * line-oriented, one shard per line:
 *     shard NAME primary=URL [replicas=URL,URL...] slots=A-B[,C,D-E...]
 * with '#' comments and blank lines; see docs/POSTGRES.md. */
#include "store/shards.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/hash.h"

#define LINE_MAX_LEN 16384
#define UNOWNED      0xff

static void set_err(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t cap, const char *fmt, ...)
{
        va_list ap;

        if (!err || cap == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
}

void kurz_shards_free(struct kurz_shards *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->n; i++) {
                free(s->shards[i].primary);
                for (size_t j = 0; j < s->shards[i].n_replicas; j++)
                        free(s->shards[i].replicas[j]);
                free(s->shards[i].replicas);
        }
        free(s->shards);
        free(s);
}

static bool url_ok(const char *u, size_t len)
{
        if (len == 0 || len > 2048)
                return false;
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)u[i] <= ' ' || (unsigned char)u[i] >= 0x7f)
                        return false;
        return (len > 11 && strncmp(u, "postgres://", 11) == 0) ||
               (len > 13 && strncmp(u, "postgresql://", 13) == 0);
}

/* Splits a comma-separated list of URLs into d's replicas. */
static int add_replicas(struct kurz_shard_def *d, const char *v, size_t len, unsigned line,
                        char *err, size_t errcap)
{
        size_t i = 0;

        while (i < len) {
                size_t j = i;
                char **p;

                while (j < len && v[j] != ',')
                        j++;
                if (!url_ok(v + i, j - i)) {
                        set_err(err, errcap,
                                "line %u: replica URL must be postgres://... or postgresql://...",
                                line);
                        return -EINVAL;
                }
                if (d->n_replicas >= KURZ_SHARD_REPLICAS_MAX) {
                        set_err(err, errcap, "line %u: more than %d replicas", line,
                                KURZ_SHARD_REPLICAS_MAX);
                        return -EINVAL;
                }
                p = realloc(d->replicas, (d->n_replicas + 1) * sizeof(*p));
                if (!p)
                        return -ENOMEM;
                d->replicas = p;
                d->replicas[d->n_replicas] = strndup(v + i, j - i);
                if (!d->replicas[d->n_replicas])
                        return -ENOMEM;
                d->n_replicas++;
                i = j + 1;
        }
        return 0;
}

/* Parses a decimal slot number of v[*i..len) that ends at '-', ',' or len. */
static int parse_slot(const char *v, size_t len, size_t *i, unsigned *out)
{
        unsigned n = 0;
        size_t start = *i;

        while (*i < len && v[*i] >= '0' && v[*i] <= '9') {
                n = n * 10 + (unsigned)(v[*i] - '0');
                if (n >= KURZ_SLOTS)
                        return -ERANGE;
                (*i)++;
        }
        if (*i == start || *i - start > 4)
                return -EINVAL;
        *out = n;
        return 0;
}

/* Assigns the slot ranges "A-B,C,..." to shard idx. */
static int add_slots(struct kurz_shards *s, unsigned idx, const char *v, size_t len, unsigned line,
                     char *err, size_t errcap)
{
        size_t i = 0;

        if (len == 0) {
                set_err(err, errcap, "line %u: slots= is empty", line);
                return -EINVAL;
        }
        while (i < len) {
                unsigned a, b;
                int rc = parse_slot(v, len, &i, &a);

                b = a;
                if (rc == 0 && i < len && v[i] == '-') {
                        i++;
                        rc = parse_slot(v, len, &i, &b);
                }
                if (rc == 0 && i < len && v[i] != ',')
                        rc = -EINVAL;
                if (rc == -ERANGE) {
                        set_err(err, errcap, "line %u: slot out of range 0-%d", line,
                                KURZ_SLOTS - 1);
                        return -EINVAL;
                }
                if (rc < 0 || b < a) {
                        set_err(err, errcap,
                                "line %u: bad slot range (expected A-B or N, comma-separated, "
                                "A <= B)",
                                line);
                        return -EINVAL;
                }
                for (unsigned k = a; k <= b; k++) {
                        if (s->slot_shard[k] != UNOWNED) {
                                set_err(err, errcap,
                                        "line %u: slot %u is already owned by shard %s", line, k,
                                        s->shards[s->slot_shard[k]].name);
                                return -EINVAL;
                        }
                        s->slot_shard[k] = (uint8_t)idx;
                }
                if (i < len)
                        i++; /* the comma */
                if (i == len && v[len - 1] == ',') {
                        set_err(err, errcap, "line %u: trailing comma in slots=", line);
                        return -EINVAL;
                }
        }
        return 0;
}

static bool is_space(char c)
{
        return c == ' ' || c == '\t' || c == '\r';
}

/* Parses one "shard ..." line (already stripped of its comment). */
static int parse_line(struct kurz_shards *s, const char *l, size_t len, unsigned line, char *err,
                      size_t errcap)
{
        struct kurz_shard_def *d, *p;
        bool have_slots = false;
        size_t i = 0, tok = 0;
        unsigned idx;
        int rc;

        if (s->n >= KURZ_SHARDS_MAX) {
                set_err(err, errcap, "line %u: more than %d shards", line, KURZ_SHARDS_MAX);
                return -EINVAL;
        }
        p = realloc(s->shards, (s->n + 1) * sizeof(*p));
        if (!p)
                return -ENOMEM;
        s->shards = p;
        idx = (unsigned)s->n;
        d = &s->shards[s->n++];
        memset(d, 0, sizeof(*d));
        while (i < len) {
                size_t start, wlen;
                const char *w, *eq;

                while (i < len && is_space(l[i]))
                        i++;
                if (i == len)
                        break;
                start = i;
                while (i < len && !is_space(l[i]))
                        i++;
                w = l + start;
                wlen = i - start;
                if (tok == 0) {
                        if (wlen != 5 || memcmp(w, "shard", 5) != 0) {
                                set_err(err, errcap,
                                        "line %u: expected \"shard NAME primary=URL "
                                        "[replicas=URL,...] slots=A-B,...\"",
                                        line);
                                return -EINVAL;
                        }
                } else if (tok == 1) {
                        bool ok = wlen < sizeof(d->name);

                        /* Names appear in logs and metric labels. */
                        for (size_t k = 0; ok && k < wlen; k++)
                                ok = (w[k] >= '0' && w[k] <= '9') || (w[k] >= 'a' && w[k] <= 'z') ||
                                     (w[k] >= 'A' && w[k] <= 'Z') || w[k] == '_' || w[k] == '-' ||
                                     w[k] == '.';
                        if (!ok) {
                                set_err(err, errcap,
                                        "line %u: bad shard name (1-63 of [A-Za-z0-9_.-])", line);
                                return -EINVAL;
                        }
                        memcpy(d->name, w, wlen);
                        d->name[wlen] = '\0';
                        for (size_t k = 0; k < idx; k++) {
                                if (strcmp(s->shards[k].name, d->name) == 0) {
                                        set_err(err, errcap, "line %u: duplicate shard name %s",
                                                line, d->name);
                                        return -EINVAL;
                                }
                        }
                } else {
                        eq = memchr(w, '=', wlen);
                        if (!eq) {
                                set_err(err, errcap, "line %u: expected key=value, got %.*s", line,
                                        (int)(wlen > 40 ? 40 : wlen), w);
                                return -EINVAL;
                        }
                        size_t klen = (size_t)(eq - w), vlen = wlen - klen - 1;
                        if (klen == 7 && memcmp(w, "primary", 7) == 0) {
                                if (d->primary || !url_ok(eq + 1, vlen)) {
                                        set_err(err, errcap,
                                                "line %u: one primary=postgres://... expected",
                                                line);
                                        return -EINVAL;
                                }
                                d->primary = strndup(eq + 1, vlen);
                                if (!d->primary)
                                        return -ENOMEM;
                        } else if (klen == 8 && memcmp(w, "replicas", 8) == 0) {
                                rc = add_replicas(d, eq + 1, vlen, line, err, errcap);
                                if (rc < 0)
                                        return rc;
                        } else if (klen == 5 && memcmp(w, "slots", 5) == 0) {
                                rc = add_slots(s, idx, eq + 1, vlen, line, err, errcap);
                                if (rc < 0)
                                        return rc;
                                have_slots = true;
                        } else {
                                set_err(err, errcap,
                                        "line %u: unknown key %.*s (primary, replicas, slots)",
                                        line, (int)(klen > 40 ? 40 : klen), w);
                                return -EINVAL;
                        }
                }
                tok++;
        }
        if (tok < 2) {
                set_err(err, errcap, "line %u: a shard needs a name", line);
                return -EINVAL;
        }
        if (!d->primary) {
                set_err(err, errcap, "line %u: shard %s has no primary=", line, d->name);
                return -EINVAL;
        }
        if (!have_slots) {
                set_err(err, errcap, "line %u: shard %s has no slots=", line, d->name);
                return -EINVAL;
        }
        return 0;
}

int kurz_shards_parse(const char *text, size_t len, struct kurz_shards **out, char *err,
                      size_t errcap)
{
        struct kurz_shards *s;
        unsigned line = 0;
        size_t i = 0;
        int rc;

        *out = NULL;
        set_err(err, errcap, "%s", "");
        if (!text)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        memset(s->slot_shard, UNOWNED, sizeof(s->slot_shard));
        while (i < len) {
                size_t start = i, end, llen;
                const char *hash;

                while (i < len && text[i] != '\n')
                        i++;
                end = i;
                if (i < len)
                        i++;
                line++;
                llen = end - start;
                if (memchr(text + start, '\0', llen)) {
                        set_err(err, errcap, "line %u: NUL byte", line);
                        rc = -EINVAL;
                        goto out_free;
                }
                if (llen > LINE_MAX_LEN) {
                        set_err(err, errcap, "line %u: longer than %d bytes", line, LINE_MAX_LEN);
                        rc = -EINVAL;
                        goto out_free;
                }
                hash = memchr(text + start, '#', llen);
                if (hash)
                        llen = (size_t)(hash - (text + start));
                while (llen && is_space(text[start + llen - 1]))
                        llen--;
                while (llen && is_space(text[start])) {
                        start++;
                        llen--;
                }
                if (llen == 0)
                        continue;
                rc = parse_line(s, text + start, llen, line, err, errcap);
                if (rc < 0)
                        goto out_free;
        }
        if (s->n == 0) {
                set_err(err, errcap,
                        "no shard lines (expected \"shard NAME primary=URL "
                        "slots=A-B\")");
                rc = -EINVAL;
                goto out_free;
        }
        for (unsigned k = 0; k < KURZ_SLOTS; k++) {
                if (s->slot_shard[k] == UNOWNED) {
                        unsigned b = k;

                        while (b + 1 < KURZ_SLOTS && s->slot_shard[b + 1] == UNOWNED)
                                b++;
                        set_err(err, errcap, "slots %u-%u are owned by no shard", k, b);
                        rc = -EINVAL;
                        goto out_free;
                }
        }
        *out = s;
        return 0;

out_free:
        kurz_shards_free(s);
        return rc;
}

int kurz_shards_load(const char *path, struct kurz_shards **out, char *err, size_t errcap)
{
        FILE *f;
        char *buf;
        size_t n;
        int rc;

        *out = NULL;
        f = fopen(path, "re");
        if (!f) {
                rc = -errno;
                set_err(err, errcap, "cannot open %s: %s", path, strerror(errno));
                return rc;
        }
        buf = malloc(KURZ_SHARDS_FILE_MAX + 1);
        if (!buf) {
                fclose(f);
                return -ENOMEM;
        }
        n = fread(buf, 1, KURZ_SHARDS_FILE_MAX + 1, f);
        if (ferror(f)) {
                set_err(err, errcap, "cannot read %s", path);
                rc = -EIO;
        } else if (n > KURZ_SHARDS_FILE_MAX) {
                set_err(err, errcap, "%s is larger than %u bytes", path, KURZ_SHARDS_FILE_MAX);
                rc = -EFBIG;
        } else {
                rc = kurz_shards_parse(buf, n, out, err, errcap);
        }
        free(buf);
        fclose(f);
        return rc;
}

int kurz_shards_single(const char *primary, const char *replicas_csv, struct kurz_shards **out,
                       char *err, size_t errcap)
{
        struct kurz_shards *s;
        int rc;

        *out = NULL;
        set_err(err, errcap, "%s", "");
        if (!primary || !url_ok(primary, strlen(primary))) {
                set_err(err, errcap, "--database must be a postgres://... URL");
                return -EINVAL;
        }
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->shards = calloc(1, sizeof(*s->shards));
        if (!s->shards) {
                free(s);
                return -ENOMEM;
        }
        s->n = 1;
        snprintf(s->shards[0].name, sizeof(s->shards[0].name), "main");
        memset(s->slot_shard, 0, sizeof(s->slot_shard));
        s->shards[0].primary = strdup(primary);
        if (!s->shards[0].primary) {
                rc = -ENOMEM;
                goto out_free;
        }
        if (replicas_csv && *replicas_csv) {
                rc =
                    add_replicas(&s->shards[0], replicas_csv, strlen(replicas_csv), 0, err, errcap);
                if (rc < 0) {
                        if (rc == -EINVAL)
                                set_err(err, errcap,
                                        "--replicas must be a comma-separated "
                                        "list of postgres://... URLs");
                        goto out_free;
                }
        }
        *out = s;
        return 0;

out_free:
        kurz_shards_free(s);
        return rc;
}

unsigned kurz_shards_slot(const void *key, size_t len)
{
        return (unsigned)(kurz_hash(key, len) % KURZ_SLOTS);
}

unsigned kurz_shards_route(const struct kurz_shards *s, const void *code, size_t len)
{
        return s->slot_shard[kurz_shards_slot(code, len)];
}

unsigned kurz_shards_route_hash(const struct kurz_shards *s, uint64_t url_hash)
{
        return s->slot_shard[url_hash % KURZ_SLOTS];
}

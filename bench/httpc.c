/* bench/httpc.c - minimal, allocation-free HTTP/1.1 response-head parsing for
 * the load generator; strict enough to flag a broken response as an error
 * rather than desynchronise a pipelined connection. */
#include "httpc.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

static bool header_is(const char *line, size_t len, const char *name, size_t nlen)
{
        return len > nlen && line[nlen] == ':' && strncasecmp(line, name, nlen) == 0;
}

/* Does the comma-separated header value contain token tok (any case)? */
static bool value_has_token(const char *v, size_t len, const char *tok)
{
        size_t tlen = strlen(tok), i = 0, start, end;

        while (i < len) {
                while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
                        i++;
                start = i;
                while (i < len && v[i] != ',')
                        i++;
                end = i;
                while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
                        end--;
                if (end - start == tlen && strncasecmp(v + start, tok, tlen) == 0)
                        return true;
        }
        return false;
}

int kurz_httpc_parse(const char *buf, size_t len, bool head_request, struct kurz_httpc_resp *out)
{
        const char *end, *line, *next, *v;
        bool have_cl = false, http10, keep_alive = false;
        uint64_t cl = 0;
        size_t llen, vlen, i;
        int status;

        end = memmem(buf, len, "\r\n\r\n", 4);
        if (!end) {
                /* Fail early on garbage instead of waiting for a full buffer. */
                if (len >= 5 && memcmp(buf, "HTTP/", 5) != 0)
                        return -EPROTO;
                return 0;
        }
        /* Status line: HTTP/1.x SSS[ reason] */
        if (end - buf < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') ||
            buf[8] != ' ')
                return -EPROTO;
        http10 = buf[7] == '0';
        status = 0;
        for (i = 9; i < 12; i++) {
                if (buf[i] < '0' || buf[i] > '9')
                        return -EPROTO;
                status = status * 10 + (buf[i] - '0');
        }
        if (status < 100 || (buf[12] != ' ' && buf[12] != '\r'))
                return -EPROTO;
        out->close = false;

        line = (const char *)memchr(buf, '\n', (size_t)(end - buf) + 2) + 1;
        if (line[-2] != '\r')
                return -EPROTO; /* bare LF */
        while (line < end + 2) {
                next = memchr(line, '\n', (size_t)(end + 4 - line));
                llen = (size_t)(next - line);
                if (llen == 0 || line[llen - 1] != '\r')
                        return -EPROTO; /* bare LF */
                llen--;
                if (llen == 0)
                        break;
                if (header_is(line, llen, "content-length", 14)) {
                        v = line + 15;
                        vlen = llen - 15;
                        while (vlen && (*v == ' ' || *v == '\t'))
                                v++, vlen--;
                        while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                                vlen--;
                        if (vlen == 0 || have_cl)
                                return -EPROTO;
                        for (i = 0; i < vlen; i++) {
                                if (v[i] < '0' || v[i] > '9')
                                        return -EPROTO;
                                cl = cl * 10 + (uint64_t)(v[i] - '0');
                                if (cl > KURZ_HTTPC_MAX_BODY)
                                        return -EPROTO;
                        }
                        have_cl = true;
                } else if (header_is(line, llen, "transfer-encoding", 17)) {
                        return -ENOTSUP;
                } else if (header_is(line, llen, "connection", 10)) {
                        if (value_has_token(line + 11, llen - 11, "close"))
                                out->close = true;
                        if (value_has_token(line + 11, llen - 11, "keep-alive"))
                                keep_alive = true;
                }
                line = next + 1;
        }
        if (http10 && !keep_alive)
                out->close = true;
        out->status = status;
        out->head_len = (size_t)(end - buf) + 4;
        if (head_request || status < 200 || status == 204 || status == 304)
                out->body_len = 0;
        else if (have_cl)
                out->body_len = cl;
        else
                return -EPROTO; /* reading until close is not supported */
        return 1;
}

const char *kurz_httpc_json_str(const char *body, size_t len, const char *name, size_t *vlen)
{
        size_t nlen = strlen(name), i, j;

        for (i = 0; i + nlen + 2 < len; i++) {
                if (body[i] != '"' || memcmp(body + i + 1, name, nlen) != 0 ||
                    body[i + 1 + nlen] != '"')
                        continue;
                j = i + nlen + 2;
                while (j < len &&
                       (body[j] == ' ' || body[j] == '\t' || body[j] == '\n' || body[j] == '\r'))
                        j++;
                if (j >= len || body[j] != ':')
                        continue;
                j++;
                while (j < len &&
                       (body[j] == ' ' || body[j] == '\t' || body[j] == '\n' || body[j] == '\r'))
                        j++;
                if (j >= len || body[j] != '"')
                        return NULL;
                i = ++j;
                while (j < len && body[j] != '"') {
                        if (body[j] == '\\')
                                j++;
                        j++;
                }
                if (j >= len)
                        return NULL;
                *vlen = j - i;
                return body + i;
        }
        return NULL;
}

/* bench/httpc.h - the HTTP/1.1 response-head parser of kurz-bench: finds the
 * status, the body length and whether the server will close, in a buffer that
 * may hold a partial response or several pipelined ones. */
#ifndef KURZ_BENCH_HTTPC_H
#define KURZ_BENCH_HTTPC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bodies longer than this are refused as malformed (kurz and nginx never send
 * them to the bench, and it bounds what a broken peer can make us skip). */
#define KURZ_HTTPC_MAX_BODY ((uint64_t)1 << 30)

struct kurz_httpc_resp {
        int status;        /* 100..999 */
        size_t head_len;   /* bytes of status line + headers + blank line */
        uint64_t body_len; /* from Content-Length (0 for 1xx/204/304/HEAD) */
        bool close;        /* Connection: close, or HTTP/1.0 without keep-alive */
};

/* Parses the response head at the start of buf[0..len). head_request says the
 * request was HEAD (no body follows whatever Content-Length says).
 * Return values: 1 with *out filled when the head is complete; 0 when more bytes
 * are needed; -EPROTO for a malformed head, a missing Content-Length on a
 * response that has a body, or a body above KURZ_HTTPC_MAX_BODY; -ENOTSUP for
 * Transfer-Encoding (kurz always sends Content-Length). Never reads past len. */
int kurz_httpc_parse(const char *buf, size_t len, bool head_request, struct kurz_httpc_resp *out);

/* Finds the JSON string member "name" in a (flat) body and returns a pointer to
 * its value (not unescaped) and its length in *vlen, or NULL when absent or not
 * a string. Good enough for {"shortCode":"abc1234"}; not a JSON parser. */
const char *kurz_httpc_json_str(const char *body, size_t len, const char *name, size_t *vlen);
#endif

/* fuzz/fuzz_create_json.c - the create body: the input is the JSON body of
 * one POST /api/v1/create/shorten, sent through the real service (parser ->
 * router -> validation -> writer -> in-memory store -> 201/4xx/409/503), so
 * the validation in api/create.c is fuzzed exactly as clients reach it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define HEAD_FMT                                                                                   \
        "POST /api/v1/create/shorten HTTP/1.1\r\nHost: sho.rt\r\n"                                 \
        "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct kurz_fuzz_opts o = {.peer = KURZ_FUZZ_PEER_PUBLIC4};
        char head[256];
        uint8_t *req;
        int n;

        n = snprintf(head, sizeof(head), HEAD_FMT, size);
        if (n < 0 || (size_t)n >= sizeof(head))
                return 0;
        req = malloc((size_t)n + size);
        if (!req)
                return 0;
        memcpy(req, head, (size_t)n);
        if (size)
                memcpy(req + n, data, size);
        if (kurz_fuzz_exchange(req, (size_t)n + size, &o) != 1)
                abort(); /* one complete request must get exactly one response */
        free(req);
        return 0;
}

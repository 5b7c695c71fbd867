/* fuzz/fuzz_request.c - the whole request path: raw bytes on a connection ->
 * HTTP parser -> router -> handlers -> writer -> in-memory store, and the
 * responses parsed back. Input: two option bytes (peer address, store
 * failure, periodic jobs, the point where the bytes are split into two
 * reads; see harness.c), then the bytes the client sends. */
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct kurz_fuzz_opts o;
        size_t off = kurz_fuzz_opts_decode(data, size, &o);

        if (off == 0)
                return 0;
        kurz_fuzz_exchange(data + off, size - off, &o);
        return 0;
}

/* fuzz/harness.h - the in-process kurz service the request-level fuzz
 * targets drive: the real HTTP server, router and handlers around the
 * in-memory store, fed over one end of a socketpair per input. Also the
 * response checks every exchange must pass. Single-threaded use (the
 * libFuzzer loop); the service runs on its own threads. */
#ifndef KURZ_FUZZ_HARNESS_H
#define KURZ_FUZZ_HARNESS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Who the connection claims to come from. */
enum kurz_fuzz_peer {
        KURZ_FUZZ_PEER_PROXY4, /* 127.0.0.1: a trusted proxy (X-Forwarded-For honoured) */
        KURZ_FUZZ_PEER_PUBLIC4,
        KURZ_FUZZ_PEER_PROXY6, /* ::1: a trusted proxy */
        KURZ_FUZZ_PEER_PUBLIC6,
};

/* The admin key the store accepts ("Authorization: Bearer fuzz-admin-key"). */
#define KURZ_FUZZ_ADMIN_KEY "fuzz-admin-key"

struct kurz_fuzz_opts {
        enum kurz_fuzz_peer peer;
        size_t split;       /* 0: one write; else the server reads [0,split) first */
        bool store_failing; /* every store call fails for this exchange */
        bool tick;          /* run the periodic jobs (flush, cleanup) first */
};

/* Starts the service on first use (and stops it at exit). Aborts when it
 * cannot start: a fuzz target without its service is useless. */
void kurz_fuzz_service(void);

/* Writes req over a fresh connection, half-closes it, reads every response
 * until the server closes, and waits until the server has let go of the
 * connection. Aborts (a crash for libFuzzer) when the server hangs, or when
 * the response stream breaks an invariant: every response parses as
 * HTTP/1.1 with exact framing, a JSON body is valid JSON, no 500. Returns
 * the number of responses read. */
size_t kurz_fuzz_exchange(const uint8_t *req, size_t len, const struct kurz_fuzz_opts *o);

/* Decodes the two option bytes request-level inputs start with (flags and
 * split point); returns how many bytes it consumed (0 when len < 2). */
size_t kurz_fuzz_opts_decode(const uint8_t *data, size_t len, struct kurz_fuzz_opts *o);
#endif

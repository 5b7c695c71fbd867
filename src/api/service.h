/* api/service.h - the kurz service: the handlers of the plan's API and what
 * they stand on (store, writer, code generator, L1 cache, limits, clicks,
 * metrics), wired together and run until SIGTERM/SIGINT. */
#ifndef KURZ_API_SERVICE_H
#define KURZ_API_SERVICE_H
#include "config/config.h"

/* Opens the store, starts the loops and periodic jobs, prints the listening
 * address, and blocks until a signal asks it to stop; then stops gracefully
 * (in-flight requests finish, clicks are flushed, the store is closed).
 * Returns the process exit status: 0 after a clean stop. */
int kurz_service_run(const struct kurz_config *cfg);

/* --- for tests and fuzzing (fuzz/fuzz_request.c) --- */

struct kurz_service;     /* opaque */
struct kurz_store;       /* store/store.h */
struct kurz_http_server; /* http/server.h */

/* Builds the service of kurz_service_run() around a store the caller opened
 * (e.g. an in-memory one) and starts its HTTP loops as cfg says; no signal
 * handling, no periodic timers (see kurz_service_test_tick), log level and
 * UV_THREADPOOL_SIZE left as they are. cfg is borrowed until the stop.
 * Ownership of store passes to the service, also on error. Returns 0 or a
 * negative errno; *out is stopped and freed with kurz_service_test_stop(). */
int kurz_service_test_start(const struct kurz_config *cfg, struct kurz_store *store,
                            struct kurz_service **out);
/* The service's HTTP server (borrowed), e.g. for kurz_http_server_adopt(). */
struct kurz_http_server *kurz_service_test_http(struct kurz_service *s);
/* Runs the periodic jobs once, asynchronously: click flush, expiry cleanup
 * (both through the writer) and memory reclamation. Thread-safe. */
void kurz_service_test_tick(struct kurz_service *s);
/* Graceful stop (in-flight requests finish, clicks are flushed), then frees
 * everything, the store included. NULL is a no-op. */
void kurz_service_test_stop(struct kurz_service *s);
#endif

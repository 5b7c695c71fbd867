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
#endif

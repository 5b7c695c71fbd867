/* ids/codegen.h - the code generator used by creates: `compact` (7-char
 * base62 of a keyed permutation of a counter leased from the store in blocks)
 * or `snowflake` (base62 of a snowflake id). Its next() has the kurz_code_fn
 * shape so the store's writer thread can call it inside a batch. Thread-safe
 * (internal mutex). */
#ifndef KURZ_IDS_CODEGEN_H
#define KURZ_IDS_CODEGEN_H
#include <stddef.h>
#include <stdint.h>

#include "ids/snowflake.h"
#include "store/store.h"

enum kurz_codes_kind { KURZ_CODES_COMPACT, KURZ_CODES_SNOWFLAKE };

struct kurz_codegen; /* opaque */

struct kurz_codegen_config {
        enum kurz_codes_kind kind;
        struct kurz_store *store; /* borrowed: lease_counter and permutation_key */
        uint64_t block;           /* counters leased at a time, default 1000 */
        struct kurz_snowflake_config snowflake;
};

/* Reads the permutation key from the store (compact). Returns 0 or an error. */
int kurz_codegen_new(const struct kurz_codegen_config *cfg, struct kurz_codegen **out);
void kurz_codegen_free(struct kurz_codegen *g);
/* kurz_code_fn: arg is the struct kurz_codegen. Leases a new block through the
 * store when the current one is used up (so call it where store writes are
 * allowed: the writer thread). Returns 0, -EAGAIN (snowflake clock) or a store
 * error. */
int kurz_codegen_next(void *g, char *out, size_t cap);
#endif

/* ids/base62.h - base62 with the alphabet 0-9a-zA-Z, as the plan's codes use.
 * Pure functions, thread-safe. */
#ifndef KURZ_IDS_BASE62_H
#define KURZ_IDS_BASE62_H
#include <stddef.h>
#include <stdint.h>

/* Encodes v into exactly width digits (left-padded with '0') when width > 0,
 * or the shortest form when width == 0. Writes a NUL. Returns the length, or
 * -ERANGE when v needs more than width digits or cap is too small. */
int kurz_base62_encode(uint64_t v, unsigned width, char *out, size_t cap);
/* Decodes; returns 0 or -EINVAL (bad digit, empty) / -ERANGE (overflow). */
int kurz_base62_decode(const char *s, size_t len, uint64_t *out);
#endif

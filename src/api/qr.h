/* api/qr.h - QR codes of short URLs (libqrencode, error correction H) as PNG
 * (libpng, 1-bit grayscale, written into memory) or SVG. The image has a quiet
 * zone of 4 modules and every module the same whole number of pixels; the
 * spare pixels widen the quiet zone. Pure functions, thread-safe. */
#ifndef KURZ_API_QR_H
#define KURZ_API_QR_H
#include <stddef.h>

#include "util/buf.h"

#define KURZ_QR_SIZE_MIN     64
#define KURZ_QR_SIZE_MAX     1024
#define KURZ_QR_SIZE_DEFAULT 300
#define KURZ_QR_TEXT_MAX     1200 /* bytes; fits version 40 at level H (1273) */

/* Encodes text[0..len) (1..KURZ_QR_TEXT_MAX bytes) as a size x size PNG
 * (KURZ_QR_SIZE_MIN..KURZ_QR_SIZE_MAX) appended to out; when the code has
 * more modules than size pixels, the image is one pixel per module instead.
 * Returns 0, -EINVAL (bad arguments), -ENOMEM or -E2BIG; on error out may
 * hold part of an image. */
int kurz_qr_png(const char *text, size_t len, unsigned size, struct kurz_buf *out);

/* The same as an SVG document of width and height size. */
int kurz_qr_svg(const char *text, size_t len, unsigned size, struct kurz_buf *out);
#endif

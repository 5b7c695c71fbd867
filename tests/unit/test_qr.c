/* tests/unit/test_qr.c - QR images of short URLs (api/qr.c): PNG geometry
 * (size, 1-bit gray, quiet zone, whole-pixel modules), SVG structure, bounds.
 * Decoding to the exact text is checked with zbarimg in
 * tests/integration/test_qr.py. */
#include <errno.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "api/qr.h"
#include "test.h"

static const char url[] = "http://127.0.0.1:8080/AbC1234";

struct reader {
        const unsigned char *p;
        size_t len, off;
};

static void read_fn(png_structp png, png_bytep out, size_t n)
{
        struct reader *r = png_get_io_ptr(png);

        if (r->len - r->off < n)
                png_error(png, "short");
        memcpy(out, r->p + r->off, n);
        r->off += n;
}

/* Decodes a 1-bit gray PNG into one byte per pixel (0 dark, 1 light).
 * Returns the pixels (caller frees) and the width, or NULL. */
static unsigned char *decode(const struct kurz_buf *b, unsigned *w, int *depth)
{
        struct reader r = {(const unsigned char *)b->p, b->len, 0};
        png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
        png_infop info = png_create_info_struct(png);
        unsigned char *px;

        if (setjmp(png_jmpbuf(png))) {
                png_destroy_read_struct(&png, &info, NULL);
                return NULL;
        }
        png_set_read_fn(png, &r, read_fn);
        png_read_info(png, info);
        *w = png_get_image_width(png, info);
        *depth = png_get_bit_depth(png, info);
        if (png_get_image_height(png, info) != *w || *w > 4096) {
                png_destroy_read_struct(&png, &info, NULL);
                return NULL;
        }
        png_set_packing(png); /* one byte per pixel */
        png_read_update_info(png, info);
        px = malloc((size_t)*w * *w);
        for (unsigned y = 0; y < *w; y++)
                png_read_row(png, px + (size_t)y * *w, NULL);
        png_destroy_read_struct(&png, &info, NULL);
        return px;
}

static void test_png_default(void)
{
        struct kurz_buf b = {0};
        unsigned w = 0, first_dark = 0;
        int depth = 0;
        unsigned char *px;

        CHECK_EQ_INT(kurz_qr_png(url, strlen(url), 300, &b), 0);
        CHECK(b.len > 8 && memcmp(b.p, "\x89PNG\r\n\x1a\n", 8) == 0);
        px = decode(&b, &w, &depth);
        CHECK(px != NULL);
        if (px) {
                CHECK_EQ_INT(w, 300);
                CHECK_EQ_INT(depth, 1);
                /* Corners are white (quiet zone); the top-left finder
                 * pattern starts on the diagonal after at least 4 modules. */
                CHECK_EQ_INT(px[0], 1);
                CHECK_EQ_INT(px[299 * 300 + 299], 1);
                for (unsigned i = 0; i < 300; i++)
                        if (px[i * 300 + i] == 0) {
                                first_dark = i;
                                break;
                        }
                {
                        unsigned run = 0, k;
                        while (px[first_dark * 300 + first_dark + run] == 0)
                                run++;
                        /* The finder's top row is 7 dark modules of k
                         * whole pixels each, after a quiet zone of at
                         * least 4 modules. */
                        k = run / 7;
                        CHECK(run % 7 == 0 && k >= 1);
                        CHECK(first_dark >= 4 * k);
                }
                free(px);
        }
        kurz_buf_free(&b);
}

static void test_png_sizes(void)
{
        struct kurz_buf b = {0};
        unsigned w = 0;
        int depth = 0;
        unsigned char *px;

        CHECK_EQ_INT(kurz_qr_png(url, strlen(url), 64, &b), 0);
        px = decode(&b, &w, &depth);
        CHECK(px && w == 64);
        free(px);
        b.len = 0;
        CHECK_EQ_INT(kurz_qr_png(url, strlen(url), 1024, &b), 0);
        px = decode(&b, &w, &depth);
        CHECK(px && w == 1024);
        free(px);
        kurz_buf_free(&b);
        CHECK_EQ_INT(kurz_qr_png(url, strlen(url), 63, &b), -EINVAL);
        CHECK_EQ_INT(kurz_qr_png(url, strlen(url), 1025, &b), -EINVAL);
        CHECK_EQ_INT(kurz_qr_png("", 0, 300, &b), -EINVAL);
        CHECK_EQ_INT(kurz_qr_png("a\0b", 3, 300, &b), -EINVAL);
        kurz_buf_free(&b);
}

static void test_too_long(void)
{
        struct kurz_buf b = {0};
        char *big = malloc(KURZ_QR_TEXT_MAX + 1);

        memset(big, 'a', KURZ_QR_TEXT_MAX + 1);
        CHECK_EQ_INT(kurz_qr_png(big, KURZ_QR_TEXT_MAX + 1, 300, &b), -EINVAL);
        /* The byte limit fits version 40 at level H. */
        CHECK_EQ_INT(kurz_qr_png(big, KURZ_QR_TEXT_MAX, 300, &b), 0);
        free(big);
        kurz_buf_free(&b);
}

static void test_svg(void)
{
        struct kurz_buf b = {0};

        CHECK_EQ_INT(kurz_qr_svg(url, strlen(url), 200, &b), 0);
        CHECK(strstr(b.p, "<svg xmlns=\"http://www.w3.org/2000/svg\"") != NULL);
        CHECK(strstr(b.p, "width=\"200\" height=\"200\"") != NULL);
        /* Version 3 at level H for this URL: 29 modules + 2 x 4 quiet. */
        CHECK(strstr(b.p, "viewBox=\"0 0 37 37\"") != NULL ||
              strstr(b.p, "viewBox=\"0 0 41 41\"") != NULL);
        /* The top-left finder's first row: 7 dark modules at (4,4). */
        CHECK(strstr(b.p, "d=\"M4 4h7v1h-7z") != NULL);
        CHECK(strstr(b.p, "<script") == NULL);
        CHECK(b.len > 10 && strcmp(b.p + b.len - 7, "</svg>\n") == 0);
        kurz_buf_free(&b);
}

int main(void)
{
        RUN(test_png_default);
        RUN(test_png_sizes);
        RUN(test_too_long);
        RUN(test_svg);
        TEST_END("qr");
}

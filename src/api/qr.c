/* api/qr.c - GET /api/v1/create/qr?shortUrl=...[&format=png|svg][&size=N]:
 * the QR code of a short URL of this kurz (never of arbitrary text), as in
 * the plan's Java service: a 300x300 PNG at error correction H by default.
 * Rendering is bounded (at most 1024x1024 pixels, 1 bit each) and runs inline
 * on the loop thread: it takes well under a millisecond at the default size. */
#include "api/qr.h"

#include <errno.h>
#include <png.h>
#include <qrencode.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "api/html.h"

#define QUIET 4 /* modules of white around the code (ISO/IEC 18004) */

/* The geometry of a rendered code: n modules a side (quiet zone included),
 * k pixels per module, off pixels of extra margin, size pixels a side. */
struct layout {
        unsigned n, k, off, size;
};

static QRcode *encode(const char *text, size_t len)
{
        char buf[KURZ_QR_TEXT_MAX + 1];
        QRcode *qr;

        if (len == 0 || len > KURZ_QR_TEXT_MAX || memchr(text, '\0', len)) {
                errno = EINVAL;
                return NULL;
        }
        memcpy(buf, text, len);
        buf[len] = '\0';
        qr = QRcode_encodeString(buf, 0, QR_ECLEVEL_H, QR_MODE_8, 1);
        if (!qr && errno != ENOMEM)
                errno = E2BIG; /* ERANGE: does not fit version 40 */
        return qr;
}

static struct layout layout_of(const QRcode *qr, unsigned size)
{
        struct layout l;

        l.n = (unsigned)qr->width + 2 * QUIET;
        l.size = size < l.n ? l.n : size;
        l.k = l.size / l.n;
        l.off = (l.size - l.k * l.n) / 2;
        return l;
}

/* True when the module under image pixel (x, y) is dark. */
static bool dark(const QRcode *qr, const struct layout *l, unsigned x, unsigned y)
{
        unsigned w = (unsigned)qr->width, mx, my;

        if (x < l->off || y < l->off)
                return false;
        mx = (x - l->off) / l->k;
        my = (y - l->off) / l->k;
        if (mx < QUIET || my < QUIET || mx >= QUIET + w || my >= QUIET + w)
                return false;
        return qr->data[(my - QUIET) * w + (mx - QUIET)] & 1;
}

static void png_to_buf(png_structp png, png_bytep data, size_t len)
{
        struct kurz_buf *out = png_get_io_ptr(png);

        if (kurz_buf_append(out, data, len) < 0)
                png_error(png, "out of memory");
}

static void png_flush_none(png_structp png)
{
        (void)png;
}

static void png_fail(png_structp png, png_const_charp msg)
{
        (void)msg; /* reported through the return value, not on stderr */
        png_longjmp(png, 1);
}

static void png_quiet(png_structp png, png_const_charp msg)
{
        (void)png;
        (void)msg;
}

/* The libpng part, alone so that no local it keeps changes after setjmp.
 * Returns 0 or -ENOMEM. */
static int write_png(png_structp png, png_infop info, const QRcode *qr, const struct layout *l,
                     png_bytep row, struct kurz_buf *out)
{
        size_t stride = (l->size + 7) / 8;

        if (setjmp(png_jmpbuf(png)))
                return -ENOMEM;
        png_set_write_fn(png, out, png_to_buf, png_flush_none);
        png_set_IHDR(png, info, l->size, l->size, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_set_compression_level(png, 6);
        png_write_info(png, info);
        for (unsigned y = 0; y < l->size; y++) {
                memset(row, 0xff, stride); /* 1 = white */
                for (unsigned x = 0; x < l->size; x++)
                        if (dark(qr, l, x, y))
                                row[x >> 3] &= (png_byte) ~(0x80u >> (x & 7));
                png_write_row(png, row);
        }
        png_write_end(png, info);
        return 0;
}

int kurz_qr_png(const char *text, size_t len, unsigned size, struct kurz_buf *out)
{
        QRcode *qr;
        struct layout l;
        png_structp png;
        png_infop info = NULL;
        png_bytep row;
        int rc = -ENOMEM;

        if (size < KURZ_QR_SIZE_MIN || size > KURZ_QR_SIZE_MAX)
                return -EINVAL;
        qr = encode(text, len);
        if (!qr)
                return -errno;
        l = layout_of(qr, size);
        row = malloc((l.size + 7) / 8);
        if (!row)
                goto out_free_qr;
        png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_fail, png_quiet);
        if (!png)
                goto out_free_row;
        info = png_create_info_struct(png);
        if (info)
                rc = write_png(png, info, qr, &l, row, out);
        png_destroy_write_struct(&png, info ? &info : NULL);
out_free_row:
        free(row);
out_free_qr:
        QRcode_free(qr);
        return rc;
}

int kurz_qr_svg(const char *text, size_t len, unsigned size, struct kurz_buf *out)
{
        QRcode *qr;
        struct layout l;
        unsigned w;
        int rc = 0;

        if (size < KURZ_QR_SIZE_MIN || size > KURZ_QR_SIZE_MAX)
                return -EINVAL;
        qr = encode(text, len);
        if (!qr)
                return -errno;
        l = layout_of(qr, size);
        w = (unsigned)qr->width;
        /* Module units in the viewBox; the extra margin of the PNG is not
         * needed: the viewBox scales. */
        rc |= kurz_buf_printf(out,
                              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                              "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" "
                              "width=\"%u\" height=\"%u\" viewBox=\"0 0 %u %u\" "
                              "shape-rendering=\"crispEdges\">"
                              "<rect width=\"%u\" height=\"%u\" fill=\"#ffffff\"/>"
                              "<path fill=\"#000000\" d=\"",
                              l.size, l.size, l.n, l.n, l.n, l.n);
        /* One subpath per horizontal run of dark modules. */
        for (unsigned y = 0; y < w && rc == 0; y++) {
                unsigned x = 0;
                while (x < w) {
                        unsigned start;
                        if (!(qr->data[y * w + x] & 1)) {
                                x++;
                                continue;
                        }
                        start = x;
                        while (x < w && (qr->data[y * w + x] & 1))
                                x++;
                        rc |= kurz_buf_printf(out, "M%u %uh%uv1h-%uz", start + QUIET, y + QUIET,
                                              x - start, x - start);
                }
        }
        rc |= kurz_buf_puts(out, "\"/></svg>\n");
        QRcode_free(qr);
        return rc < 0 ? -ENOMEM : 0;
}

/* --- the endpoint --- */

static void bad(struct kurz_service *s, struct kurz_http_exchange *x, const char *msg)
{
        kurz_api_error(s, x, KURZ_ROUTE_OTHER, 400, "INVALID_INPUT", msg, NULL, NULL, 0);
}

/* Parses a decimal size; false unless it is all digits within the bounds. */
static bool parse_size(const struct kurz_buf *v, unsigned *out)
{
        unsigned n = 0;

        if (v->len == 0 || v->len > 5)
                return false;
        for (size_t i = 0; i < v->len; i++) {
                if (v->p[i] < '0' || v->p[i] > '9')
                        return false;
                n = n * 10 + (unsigned)(v->p[i] - '0');
        }
        if (n < KURZ_QR_SIZE_MIN || n > KURZ_QR_SIZE_MAX)
                return false;
        *out = n;
        return true;
}

/* True when u is this kurz's base URL, '/', and a well-formed code. */
static bool own_short_url(struct kurz_service *s, const struct kurz_http_request *req,
                          const struct kurz_buf *u)
{
        struct kurz_buf base = {0};
        bool ok = false;

        kurz_api_base_url(s, req, &base);
        if (base.p && u->len > base.len + 1 && memcmp(u->p, base.p, base.len) == 0 &&
            u->p[base.len] == '/')
                ok = kurz_code_syntax_ok(
                    (struct kurz_str){u->p + base.len + 1, u->len - base.len - 1});
        kurz_buf_free(&base);
        return ok;
}

static const struct kurz_http_header img_headers[] = {
    /* A short URL's code never changes, so neither does its image. */
    {KURZ_STR_LIT("Cache-Control"), KURZ_STR_LIT("public, max-age=86400")},
    {KURZ_STR_LIT("X-Content-Type-Options"), KURZ_STR_LIT("nosniff")},
    {KURZ_STR_LIT("Content-Security-Policy"),
     KURZ_STR_LIT("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'")},
};

void kurz_api_qr(struct kurz_service *s, struct kurz_http_exchange *x)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        struct kurz_buf url = {0}, v = {0}, img = {0};
        unsigned size = KURZ_QR_SIZE_DEFAULT, thread = req->thread;
        uint64_t start = req->start_ns;
        bool svg = false;
        int rc;

        rc = kurz_html_form_get(req->query, "shortUrl", &url, 2048);
        if (rc == -ENOMEM)
                goto out_unavailable;
        if (rc <= 0 || !own_short_url(s, req, &url)) {
                bad(s, x,
                    rc == 0 ? "shortUrl is required"
                            : "shortUrl must be a short URL of this service");
                goto out;
        }
        rc = kurz_html_form_get(req->query, "size", &v, 16);
        if (rc == -ENOMEM)
                goto out_unavailable;
        if (rc != 0 && (rc < 0 || !parse_size(&v, &size))) {
                bad(s, x, "size must be a whole number of pixels from 64 to 1024");
                goto out;
        }
        rc = kurz_html_form_get(req->query, "format", &v, 16);
        if (rc == -ENOMEM)
                goto out_unavailable;
        if (rc != 0) {
                if (rc > 0 && strcmp(v.p, "svg") == 0) {
                        svg = true;
                } else if (rc < 0 || strcmp(v.p, "png") != 0) {
                        bad(s, x, "format must be png or svg");
                        goto out;
                }
        }
        rc =
            svg ? kurz_qr_svg(url.p, url.len, size, &img) : kurz_qr_png(url.p, url.len, size, &img);
        if (rc == -ENOMEM)
                goto out_unavailable;
        if (rc < 0) {
                bad(s, x, "shortUrl is too long for a QR code");
                goto out;
        }
        kurz_http_respond(x, 200, img_headers, sizeof(img_headers) / sizeof(img_headers[0]),
                          svg ? "image/svg+xml" : "image/png", img.p, img.len, false);
        kurz_metrics_request(s->metrics, thread, KURZ_ROUTE_OTHER, 200, kurz_http_now_ns() - start);
        goto out;

out_unavailable:
        kurz_api_error(s, x, KURZ_ROUTE_OTHER, 503, "SERVICE_UNAVAILABLE", "out of memory", NULL,
                       NULL, 0);
out:
        kurz_buf_free(&url);
        kurz_buf_free(&v);
        kurz_buf_free(&img);
}

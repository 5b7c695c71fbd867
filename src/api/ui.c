/* api/ui.c - the web pages: the form on / (POST / creates through the same
 * path as the JSON API), the result page, the preview of /{code}+, and the
 * statistics pages /stats and /stats/{code}. Server-rendered HTML that works
 * without JavaScript; every user-supplied value passes kurz_html_escape(); a
 * strict Content-Security-Policy forbids inline script. No cookies are set,
 * so a cross-site form POST gains an attacker nothing it could not do itself
 * (form-action 'self' keeps our own forms on our origin). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_int.h"
#include "api/fleet.h"
#include "api/html.h"

#define FORM_ALIAS_MAX 256 /* decoded bytes kept of an alias field */
#define CHART_DAYS     30

static const struct kurz_http_header page_headers[] = {
    {KURZ_STR_LIT("Content-Security-Policy"),
     KURZ_STR_LIT("default-src 'self'; script-src 'self'; style-src 'self'; "
                  "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                  "form-action 'self'; frame-ancestors 'none'")},
    {KURZ_STR_LIT("X-Content-Type-Options"), KURZ_STR_LIT("nosniff")},
    {KURZ_STR_LIT("Referrer-Policy"), KURZ_STR_LIT("no-referrer")},
    {KURZ_STR_LIT("X-Frame-Options"), KURZ_STR_LIT("DENY")},
    /* Pages show live data (clicks) and may echo what a user typed. */
    {KURZ_STR_LIT("Cache-Control"), KURZ_STR_LIT("no-store")},
};
#define NPAGE_HEADERS (sizeof(page_headers) / sizeof(page_headers[0]))

/* A page being written; rc collects the first error of any append. */
struct page {
        struct kurz_buf b;
        int rc;
};

static void put(struct page *pg, const char *lit)
{
        if (!pg->rc)
                pg->rc = kurz_buf_puts(&pg->b, lit);
}

static void esc(struct page *pg, const char *p, size_t len)
{
        if (!pg->rc)
                pg->rc = kurz_html_escape(&pg->b, p, len);
}

static void esc_str(struct page *pg, struct kurz_str s)
{
        esc(pg, s.p, s.len);
}

static void put_i64(struct page *pg, int64_t v)
{
        if (!pg->rc)
                pg->rc = kurz_buf_printf(&pg->b, "%" PRId64, v);
}

/* A date as "2026-11-28 23:08 UTC" in a <time> element; 0 as never_text. */
static void put_time(struct page *pg, int64_t t, const char *never_text)
{
        struct tm tm;
        time_t tt = (time_t)t;

        if (t == 0 || !gmtime_r(&tt, &tm)) {
                put(pg, never_text);
                return;
        }
        if (!pg->rc)
                pg->rc = kurz_buf_printf(
                    &pg->b,
                    "<time datetime=\"%04d-%02d-%02dT%02d:%02d:%02dZ\">%04d-%02d-%02d "
                    "%02d:%02d UTC</time>",
                    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min);
}

static void page_open(struct page *pg, const char *title)
{
        put(pg, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                "<meta name=\"referrer\" content=\"no-referrer\">"
                "<link rel=\"icon\" href=\"data:,\"><title>");
        esc(pg, title, strlen(title));
        put(pg, " \xe2\x80\x93 kurz</title>");
        if (!pg->rc)
                pg->rc = kurz_api_ui_asset_links(&pg->b);
        put(pg, "</head>\n<body><header><a class=\"brand\" href=\"/\">kurz</a>"
                "<nav><a href=\"/\">Shorten a link</a><a href=\"/stats\">Statistics</a></nav>"
                "</header>\n<main>");
}

static void page_close(struct page *pg)
{
        put(pg, "</main>\n<footer>kurz, a URL shortener. No cookies, no tracking beyond a "
                "click count per link and day.</footer></body></html>\n");
}

/* Sends the page with the security headers (and up to two extra), records
 * metrics and frees the page. */
static void send_page(struct kurz_service *s, struct kurz_http_exchange *x, enum kurz_route route,
                      int status, struct page *pg, const struct kurz_http_header *extra,
                      size_t nextra)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        struct kurz_http_header h[NPAGE_HEADERS + 2];
        unsigned thread = req->thread;
        uint64_t start = req->start_ns;
        size_t n = 0;

        if (pg->rc) {
                static const char oom[] = "<!DOCTYPE html><title>Error</title>"
                                          "<p>The server is out of memory. Please retry.</p>\n";
                status = 503;
                kurz_buf_free(&pg->b);
                pg->b = (struct kurz_buf){(char *)oom, sizeof(oom) - 1, 0, 0};
                nextra = 0;
        }
        for (size_t i = 0; i < NPAGE_HEADERS; i++)
                h[n++] = page_headers[i];
        for (size_t i = 0; i < nextra && i < 2; i++)
                h[n++] = extra[i];
        kurz_http_respond(x, status, h, n, "text/html; charset=utf-8", pg->b.p, pg->b.len, false);
        kurz_metrics_request(s->metrics, thread, route, status, kurz_http_now_ns() - start);
        if (!pg->rc)
                kurz_buf_free(&pg->b);
        pg->b = (struct kurz_buf){0};
}

/* A short message page (not found, expired, unavailable). */
static void message_page(struct kurz_service *s, struct kurz_http_exchange *x, int status,
                         const char *title, const char *text)
{
        struct page pg = {0};

        page_open(&pg, title);
        put(&pg, "<h1>");
        esc(&pg, title, strlen(title));
        put(&pg, "</h1><p>");
        esc(&pg, text, strlen(text));
        put(&pg, "</p><p><a class=\"button\" href=\"/\">Shorten a link</a></p>");
        page_close(&pg);
        send_page(s, x, KURZ_ROUTE_OTHER, status, &pg, NULL, 0);
}

/* The short URL of code for this request, into u (reset first). */
static int short_url(struct kurz_service *s, const struct kurz_http_request *req,
                     struct kurz_str code, struct kurz_buf *u)
{
        u->len = 0;
        kurz_api_base_url(s, req, u);
        if (kurz_buf_puts(u, "/") < 0 || kurz_buf_append(u, code.p, code.len) < 0)
                return -ENOMEM;
        return 0;
}

/* <img> of the QR code of short URL u. */
static void put_qr(struct page *pg, struct kurz_str u)
{
        struct kurz_buf src = {0};

        if (pg->rc)
                return;
        pg->rc = kurz_buf_puts(&src, "/api/v1/create/qr?size=480&shortUrl=");
        if (!pg->rc)
                pg->rc = kurz_html_urlencode(&src, u.p, u.len);
        put(pg, "<img class=\"qr\" width=\"240\" height=\"240\" src=\"");
        esc(pg, src.p, src.len);
        put(pg, "\" alt=\"QR code of ");
        esc_str(pg, u);
        put(pg, "\">");
        kurz_buf_free(&src);
}

/* --- the form --- */

struct expiry_choice {
        const char *value, *label;
        int64_t seconds;
};

static const struct expiry_choice expiries[] = {
    {"1d", "after 1 day", 86400},
    {"7d", "after 1 week", 7 * 86400},
    {"30d", "after 30 days", 30 * 86400},
    {"365d", "after 1 year", 365 * 86400},
};
#define NEXPIRIES (sizeof(expiries) / sizeof(expiries[0]))

/* The form as the user filled it in, and what to say about it. */
struct form {
        struct kurz_str url, alias, expiry; /* as submitted (escaped on output) */
        enum kurz_api_field field;          /* the input an error is about */
        const char *error;                  /* for a person; NULL: none */
        char error_buf[256];
};

static void field_error(struct page *pg, const struct form *f, enum kurz_api_field field,
                        const char *id)
{
        if (!f->error || f->field != field)
                return;
        put(pg, "<p class=\"error\" role=\"alert\" id=\"");
        put(pg, id);
        put(pg, "-error\">");
        esc(pg, f->error, strlen(f->error));
        put(pg, "</p>");
}

static void invalid_attrs(struct page *pg, const struct form *f, enum kurz_api_field field,
                          const char *id)
{
        if (f->error && f->field == field) {
                put(pg, " aria-invalid=\"true\" aria-describedby=\"");
                put(pg, id);
                put(pg, "-error\"");
        }
}

static void default_expiry_label(struct kurz_service *s, char *out, size_t cap)
{
        uint64_t ms = s->cfg->default_expiry_ms;

        if (ms == 0)
                snprintf(out, cap, "never (the default)");
        else if (ms % 86400000 == 0)
                snprintf(out, cap, "after %" PRIu64 " day%s (the default)", ms / 86400000,
                         ms == 86400000 ? "" : "s");
        else if (ms % 3600000 == 0)
                snprintf(out, cap, "after %" PRIu64 " hour%s (the default)", ms / 3600000,
                         ms == 3600000 ? "" : "s");
        else
                snprintf(out, cap, "after %" PRIu64 " seconds (the default)", ms / 1000);
}

static void render_form(struct kurz_service *s, struct page *pg, const struct form *f)
{
        char label[64];

        put(pg, "<h1>Make a long link short</h1>");
        put(pg, "<form class=\"card\" method=\"post\" action=\"/\" novalidate>");
        if (f->error && f->field == KURZ_API_FIELD_NONE) {
                put(pg, "<p class=\"alert\" role=\"alert\">");
                esc(pg, f->error, strlen(f->error));
                put(pg, "</p>");
        }
        put(pg, "<label for=\"url\">Long link</label>"
                "<input id=\"url\" name=\"url\" type=\"url\" inputmode=\"url\" required "
                "autocomplete=\"url\" autocapitalize=\"off\" spellcheck=\"false\" "
                "placeholder=\"https://example.com/a/very/long/address\" value=\"");
        esc_str(pg, f->url);
        put(pg, "\"");
        invalid_attrs(pg, f, KURZ_API_FIELD_URL, "url");
        put(pg, ">");
        field_error(pg, f, KURZ_API_FIELD_URL, "url");

        put(pg, "<label for=\"alias\">Custom alias <span class=\"opt\">(optional)</span></label>"
                "<input id=\"alias\" name=\"alias\" type=\"text\" maxlength=\"64\" "
                "autocomplete=\"off\" autocapitalize=\"off\" spellcheck=\"false\" value=\"");
        esc_str(pg, f->alias);
        put(pg, "\"");
        if (f->error && f->field == KURZ_API_FIELD_ALIAS)
                invalid_attrs(pg, f, KURZ_API_FIELD_ALIAS, "alias");
        else
                put(pg, " aria-describedby=\"alias-hint\"");
        put(pg, ">");
        field_error(pg, f, KURZ_API_FIELD_ALIAS, "alias");
        put(pg, "<p class=\"hint\" id=\"alias-hint\">3 to 64 letters, digits, - or _. "
                "Leave empty for a random short code.</p>");

        put(pg, "<label for=\"expiry\">Link expires</label><select id=\"expiry\" name=\"expiry\"");
        invalid_attrs(pg, f, KURZ_API_FIELD_EXPIRY, "expiry");
        put(pg, "><option value=\"\">");
        default_expiry_label(s, label, sizeof(label));
        esc(pg, label, strlen(label));
        put(pg, "</option>");
        for (size_t i = 0; i < NEXPIRIES; i++) {
                put(pg, "<option value=\"");
                put(pg, expiries[i].value);
                put(pg, kurz_str_eq_lit(f->expiry, expiries[i].value) ? "\" selected>" : "\">");
                put(pg, expiries[i].label);
                put(pg, "</option>");
        }
        put(pg, "</select>");
        field_error(pg, f, KURZ_API_FIELD_EXPIRY, "expiry");
        put(pg, "<button type=\"submit\">Shorten</button></form>"
                "<p class=\"hint\">Anyone can check where a short link goes before opening it: "
                "add a <strong>+</strong> to its end.</p>");
}

static void form_page(struct kurz_service *s, struct kurz_http_exchange *x, int status,
                      const struct form *f, const struct kurz_http_header *extra, size_t nextra)
{
        struct page pg = {0};

        page_open(&pg, f->error ? "Please check the form" : "Shorten a link");
        render_form(s, &pg, f);
        page_close(&pg);
        send_page(s, x, KURZ_ROUTE_CREATE, status, &pg, extra, nextra);
}

void kurz_api_ui_home(struct kurz_service *s, struct kurz_http_exchange *x)
{
        struct form f = {0};
        struct page pg = {0};

        page_open(&pg, "Shorten a link");
        render_form(s, &pg, &f);
        page_close(&pg);
        send_page(s, x, KURZ_ROUTE_OTHER, 200, &pg, NULL, 0);
}

static struct kurz_str trim(struct kurz_str v)
{
        while (v.len && (v.p[0] == ' ' || v.p[0] == '\t' || v.p[0] == '\r' || v.p[0] == '\n'))
                v.p++, v.len--;
        while (v.len && (v.p[v.len - 1] == ' ' || v.p[v.len - 1] == '\t' ||
                         v.p[v.len - 1] == '\r' || v.p[v.len - 1] == '\n'))
                v.len--;
        return v;
}

/* The submitted form's fields, decoded into bufs (owned by the caller, freed
 * with form_free). Returns 0, or -ENOMEM; a field that cannot be decoded
 * sets f->error. */
struct form_bufs {
        struct kurz_buf url, alias, expiry;
};

static void form_free(struct form_bufs *fb)
{
        kurz_buf_free(&fb->url);
        kurz_buf_free(&fb->alias);
        kurz_buf_free(&fb->expiry);
}

static int form_read(const struct kurz_http_request *req, struct form *f, struct form_bufs *fb)
{
        int rc;

        rc = kurz_html_form_get(req->body, "url", &fb->url, KURZ_URL_MAX + 16);
        if (rc == -ENOMEM)
                return rc;
        if (rc > 0)
                f->url = trim((struct kurz_str){fb->url.p, fb->url.len});
        else if (rc < 0 && !f->error) {
                f->field = KURZ_API_FIELD_URL;
                f->error = rc == -E2BIG ? "This link is too long: at most 5000 characters."
                                        : "This link is not written correctly.";
        }
        rc = kurz_html_form_get(req->body, "alias", &fb->alias, FORM_ALIAS_MAX);
        if (rc == -ENOMEM)
                return rc;
        if (rc > 0)
                f->alias = trim((struct kurz_str){fb->alias.p, fb->alias.len});
        else if (rc < 0 && !f->error) {
                f->field = KURZ_API_FIELD_ALIAS;
                f->error = "An alias is 3 to 64 letters, digits, - or _.";
        }
        rc = kurz_html_form_get(req->body, "expiry", &fb->expiry, 16);
        if (rc == -ENOMEM)
                return rc;
        if (rc > 0)
                f->expiry = (struct kurz_str){fb->expiry.p, fb->expiry.len};
        else if (rc < 0 && !f->error) {
                f->field = KURZ_API_FIELD_EXPIRY;
                f->error = "Please choose one of the offered expiry times.";
        }
        return 0;
}

/* Turns the API's message about a field into a sentence for a person:
 * "originalUrl must ..." becomes "The link must ...". */
static void humanize(struct form *f, const struct kurz_api_create_out *o)
{
        const char *m = o->message ? o->message : "";
        const char *subject = NULL, *rest = m;

        if (strcmp(m, "originalUrl is required") == 0 ||
            strcmp(m, "originalUrl must not be empty") == 0) {
                f->error = "Please enter the long link you want to shorten.";
                return;
        }
        if (strcmp(m, "originalUrl is too long") == 0) {
                f->error = "This link is too long: at most 5000 characters.";
                return;
        }
        if (strncmp(m, "originalUrl ", 12) == 0) {
                subject = "The link ";
                rest = m + 12;
        } else if (strncmp(m, "alias ", 6) == 0) {
                subject = "The alias ";
                rest = m + 6;
        }
        snprintf(f->error_buf, sizeof(f->error_buf), "%s%s.", subject ? subject : "", rest);
        if (!subject && f->error_buf[0] >= 'a' && f->error_buf[0] <= 'z')
                f->error_buf[0] = (char)(f->error_buf[0] - 'a' + 'A');
        f->error = f->error_buf;
}

static void result_page(struct kurz_service *s, struct kurz_http_exchange *x,
                        const struct kurz_api_create_out *o)
{
        struct page pg = {0};
        struct kurz_http_header loc = {KURZ_STR_LIT("Location"), o->short_url};

        page_open(&pg, "Your short link");
        put(&pg, "<h1>Your short link is ready</h1><section class=\"card\">"
                 "<p class=\"short\"><a id=\"short-url\" class=\"url\" href=\"");
        esc_str(&pg, o->short_url);
        put(&pg, "\">");
        esc_str(&pg, o->short_url);
        put(&pg, "</a></p><button type=\"button\" data-copy=\"");
        esc_str(&pg, o->short_url);
        put(&pg, "\" aria-controls=\"short-url\" hidden>Copy</button>");
        put_qr(&pg, o->short_url);
        put(&pg, "<dl><dt>Goes to</dt><dd class=\"url\" id=\"target\">");
        esc_str(&pg, o->url);
        put(&pg, "</dd><dt>Created</dt><dd>");
        put_time(&pg, o->created_at, "now");
        put(&pg, "</dd><dt>Expires</dt><dd>");
        put_time(&pg, o->expires_at, "never");
        put(&pg, "</dd></dl>");
        if (o->existing)
                put(&pg, "<p class=\"hint\">This link had been shortened before: you get the "
                         "same short link.</p>");
        put(&pg, "<p><a href=\"/");
        esc_str(&pg, o->code);
        put(&pg, "+\">Preview</a> \xc2\xb7 <a href=\"/stats/");
        esc_str(&pg, o->code);
        put(&pg, "\">Statistics</a> \xc2\xb7 <a href=\"/\">Shorten another link</a></p>"
                 "</section>");
        page_close(&pg);
        send_page(s, x, KURZ_ROUTE_CREATE, 201, &pg, &loc, 1);
}

/* The outcome of a create from the form. The request (and its body) is
 * still valid: the exchange is answered here. */
static void form_fin(struct kurz_service *s, struct kurz_http_exchange *x,
                     const struct kurz_api_create_out *o, void *arg)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        struct form f = {0};
        struct form_bufs fb = {0};
        struct kurz_http_header h = {KURZ_STR_LIT("Retry-After"), KURZ_STR_LIT("1")};

        (void)arg;
        if (!o->error_code) {
                result_page(s, x, o);
                return;
        }
        if (form_read(req, &f, &fb) < 0) {
                form_free(&fb);
                message_page(s, x, 503, "Please try again", "The server is out of memory.");
                return;
        }
        f.field = o->field;
        if (o->status == 409) {
                f.field = KURZ_API_FIELD_ALIAS;
                f.error = "This alias is already taken. Please choose another one.";
        } else if (o->status == 400) {
                humanize(&f, o);
        } else if (o->status == 503) {
                f.field = KURZ_API_FIELD_NONE;
                f.error = "The service cannot save new links right now. Please try again in a "
                          "moment.";
        } else {
                f.field = KURZ_API_FIELD_NONE;
                f.error = "Something went wrong on our side while creating the link. Please "
                          "try again.";
        }
        form_page(s, x, o->status, &f, &h, o->retry_after ? 1 : 0);
        form_free(&fb);
}

static void form_denied(struct kurz_service *s, struct kurz_http_exchange *x, unsigned retry)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        struct form f = {0};
        struct form_bufs fb = {0};
        char ra[16];
        struct kurz_http_header h = {KURZ_STR_LIT("Retry-After"), {ra, 0}};

        retry = retry ? retry : 1;
        h.value.len = (size_t)snprintf(ra, sizeof(ra), "%u", retry);
        (void)form_read(req, &f, &fb); /* best effort: refill what we can */
        f.field = KURZ_API_FIELD_NONE;
        snprintf(f.error_buf, sizeof(f.error_buf),
                 "You have created many links in a short time. Please wait %u second%s and "
                 "try again.",
                 retry, retry == 1 ? "" : "s");
        f.error = f.error_buf;
        form_page(s, x, 429, &f, &h, 1);
        form_free(&fb);
}

static void form_checked(struct kurz_service *s, struct kurz_http_exchange *x)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        struct form f = {0};
        struct form_bufs fb = {0};
        struct kurz_api_create_in in = {0};
        struct kurz_str ct = req->content_type;

        if (ct.len < 33 || strncasecmp(ct.p, "application/x-www-form-urlencoded", 33) != 0 ||
            (ct.len > 33 && ct.p[33] != ';' && ct.p[33] != ' ')) {
                f.error = "Please send the form from this page.";
                form_page(s, x, 415, &f, NULL, 0);
                return;
        }
        if (form_read(req, &f, &fb) < 0) {
                form_free(&fb);
                message_page(s, x, 503, "Please try again", "The server is out of memory.");
                return;
        }
        if (!f.error && f.expiry.len) {
                size_t i;
                for (i = 0; i < NEXPIRIES; i++)
                        if (kurz_str_eq_lit(f.expiry, expiries[i].value))
                                break;
                if (i == NEXPIRIES) {
                        f.field = KURZ_API_FIELD_EXPIRY;
                        f.error = "Please choose one of the offered expiry times.";
                } else {
                        in.has_expires_in = true;
                        in.expires_in = expiries[i].seconds;
                }
        }
        if (f.error) {
                form_page(s, x, 400, &f, NULL, 0);
                form_free(&fb);
                return;
        }
        in.url = f.url.p ? f.url : (struct kurz_str){"", 0};
        in.alias = f.alias.len ? f.alias : (struct kurz_str){NULL, 0};
        kurz_api_create_run(s, x, &in, form_fin, NULL); /* copies what it keeps */
        form_free(&fb);
}

void kurz_api_ui_create(struct kurz_service *s, struct kurz_http_exchange *x)
{
        kurz_api_create_limited_ex(s, x, form_checked, form_denied);
}

/* --- preview and statistics: a store read on the blocking pool --- */

enum ui_kind { UI_PREVIEW, UI_STATS, UI_PLATFORM };

struct ui_job {
        struct kurz_service *s;
        enum ui_kind kind;
        size_t code_len;
        char code[KURZ_CODE_MAX + 1];
        int64_t now;
        int32_t today;
        int rc, stats_rc;
        struct kurz_link link;
        struct kurz_link_stats st;
        struct kurz_platform_stats ps;
};

static void ui_work(void *arg)
{
        struct ui_job *j = arg;
        struct kurz_store *st = j->s->store;

        if (j->kind == UI_PLATFORM) {
                j->rc = st->ops->stats_platform(st, j->now, j->today, &j->ps);
                return;
        }
        j->rc = st->ops->lookup(st, j->code, j->code_len, &j->link);
        if (j->rc == 0 && j->kind == UI_STATS)
                j->stats_rc = st->ops->stats_link(st, j->code, j->code_len, j->today, &j->st);
}

static void job_free(struct ui_job *j)
{
        free(j->link.url);
        free(j->st.timeline);
        free(j);
}

static void unavailable_page(struct kurz_service *s, struct kurz_http_exchange *x)
{
        struct page pg = {0};
        struct kurz_http_header h = {KURZ_STR_LIT("Retry-After"), KURZ_STR_LIT("1")};

        kurz_metrics_add(s->metrics, KURZ_METRICS_SHARED, KURZ_C_STORE_ERROR, 1);
        page_open(&pg, "Please try again");
        put(&pg, "<h1>Please try again in a moment</h1><p>The link store is not answering "
                 "right now.</p>");
        page_close(&pg);
        send_page(s, x, KURZ_ROUTE_OTHER, 503, &pg, &h, 1);
}

/* Unknown or expired code: a 404 page (counted against code enumeration). */
static void gone_page(struct kurz_service *s, struct kurz_http_exchange *x, bool expired)
{
        if (!kurz_api_count_404(s, x, KURZ_ROUTE_LINK))
                return; /* answered 429 */
        if (expired)
                message_page(s, x, 404, "This short link has expired",
                             "The link it stood for is no longer available through kurz.");
        else
                message_page(s, x, 404, "This short link does not exist",
                             "Please check that it was copied completely.");
}

static void preview_done(struct kurz_http_exchange *x, void *arg)
{
        struct ui_job *j = arg;
        struct kurz_service *s = j->s;
        const struct kurz_http_request *req = kurz_http_request(x);
        struct kurz_str code = {j->code, j->code_len};
        struct kurz_str url = {j->link.url, j->link.url_len};
        struct kurz_buf u = {0};
        struct page pg = {0};

        if (j->rc == KURZ_E_NOTFOUND ||
            (j->rc == 0 && j->link.expires_at && j->link.expires_at <= kurz_api_now_s())) {
                gone_page(s, x, j->rc == 0);
                goto out;
        }
        if (j->rc < 0) {
                unavailable_page(s, x);
                goto out;
        }
        pg.rc = short_url(s, req, code, &u);
        page_open(&pg, "Where does this short link go?");
        put(&pg, "<h1>Where does this short link go?</h1><section class=\"card\">"
                 "<p class=\"short url\" id=\"short-url\">");
        esc(&pg, u.p, u.len);
        put(&pg, "</p><dl><dt>Goes to</dt><dd class=\"url\" id=\"target\">");
        esc_str(&pg, url);
        put(&pg, "</dd><dt>Created</dt><dd>");
        put_time(&pg, j->link.created_at, "unknown");
        put(&pg, "</dd><dt>Expires</dt><dd>");
        put_time(&pg, j->link.expires_at, "never");
        put(&pg, "</dd><dt>Clicks</dt><dd id=\"clicks\">");
        put_i64(&pg, j->link.clicks);
        put(&pg, "</dd></dl><p><a class=\"button\" id=\"continue\" rel=\"noopener noreferrer "
                 "nofollow\" href=\"");
        esc_str(&pg, url);
        put(&pg, "\">Continue to the link</a></p>");
        put_qr(&pg, (struct kurz_str){u.p, u.len});
        put(&pg, "<p><a href=\"/stats/");
        esc_str(&pg, code);
        put(&pg, "\">Statistics of this link</a></p></section>");
        page_close(&pg);
        send_page(s, x, KURZ_ROUTE_LINK, 200, &pg, NULL, 0);
out:
        kurz_buf_free(&u);
        job_free(j);
}

/* The bar chart of clicks per day over the last CHART_DAYS days, as inline
 * SVG (no script, styled by kurz.css). */
static void put_chart(struct page *pg, const struct ui_job *j)
{
        int64_t counts[CHART_DAYS] = {0}, max = 0;
        int32_t first = j->today - (CHART_DAYS - 1);
        const int w = 600, h = 180, top = 16, bottom = 22, left = 4;
        const int slot = (w - left) / CHART_DAYS;
        char date[16];

        for (size_t i = 0; i < j->st.ndays; i++) {
                int32_t d = j->st.timeline[i].day;
                if (d >= first && d <= j->today)
                        counts[d - first] += j->st.timeline[i].clicks;
        }
        for (int i = 0; i < CHART_DAYS; i++)
                if (counts[i] > max)
                        max = counts[i];
        if (pg->rc)
                return;
        pg->rc = kurz_buf_printf(&pg->b,
                                 "<svg class=\"chart\" viewBox=\"0 0 %d %d\" role=\"img\" "
                                 "aria-labelledby=\"chart-title\"><title id=\"chart-title\">Clicks "
                                 "per day, last %d days (most in one day: %" PRId64 ")</title>"
                                 "<line class=\"axis\" x1=\"0\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>",
                                 w, h, CHART_DAYS, max, h - bottom, w, h - bottom);
        for (int i = 0; i < CHART_DAYS && !pg->rc; i++) {
                time_t t = (time_t)(first + i) * 86400;
                struct tm tm;
                int bh = max ? (int)(counts[i] * (h - top - bottom) / max) : 0;

                gmtime_r(&t, &tm);
                strftime(date, sizeof(date), "%Y-%m-%d", &tm);
                if (counts[i] && bh < 2)
                        bh = 2;
                pg->rc = kurz_buf_printf(
                    &pg->b,
                    "<rect class=\"bar\" x=\"%d\" y=\"%d\" width=\"%d\" "
                    "height=\"%d\"><title>%s: %" PRId64 " clicks</title></rect>",
                    left + i * slot + 2, h - bottom - bh, slot - 4, bh, date, counts[i]);
                if (!pg->rc && (i == 0 || i == CHART_DAYS - 1))
                        pg->rc = kurz_buf_printf(&pg->b,
                                                 "<text x=\"%d\" y=\"%d\" text-anchor=\"%s\">%s"
                                                 "</text>",
                                                 i == 0 ? left : w - 2, h - 6,
                                                 i == 0 ? "start" : "end", date);
        }
        if (!pg->rc)
                pg->rc = kurz_buf_printf(&pg->b, "<text x=\"%d\" y=\"12\">%" PRId64 "</text></svg>",
                                         left, max);
        /* The same numbers as text, for screen readers and copying. */
        put(pg, "<details><summary>Clicks per day as a table</summary><table><thead><tr>"
                "<th scope=\"col\">Day</th><th scope=\"col\">Clicks</th></tr></thead><tbody>");
        for (int i = CHART_DAYS - 1; i >= 0 && !pg->rc; i--) {
                time_t t = (time_t)(first + i) * 86400;
                struct tm tm;

                if (!counts[i])
                        continue;
                gmtime_r(&t, &tm);
                strftime(date, sizeof(date), "%Y-%m-%d", &tm);
                pg->rc = kurz_buf_printf(&pg->b, "<tr><td>%s</td><td>%" PRId64 "</td></tr>", date,
                                         counts[i]);
        }
        put(pg, "</tbody></table></details>");
}

static void stats_done(struct kurz_http_exchange *x, void *arg)
{
        struct ui_job *j = arg;
        struct kurz_service *s = j->s;
        const struct kurz_http_request *req = kurz_http_request(x);
        struct kurz_str code = {j->code, j->code_len};
        struct kurz_buf u = {0};
        struct page pg = {0};

        if (j->rc == KURZ_E_NOTFOUND || (j->rc == 0 && j->stats_rc == KURZ_E_NOTFOUND)) {
                gone_page(s, x, false);
                goto out;
        }
        if (j->rc < 0 || j->stats_rc < 0) {
                unavailable_page(s, x);
                goto out;
        }
        pg.rc = short_url(s, req, code, &u);
        page_open(&pg, "Statistics of a short link");
        put(&pg, "<h1>Statistics of <span class=\"url\" id=\"short-url\">");
        esc(&pg, u.p, u.len);
        put(&pg, "</span></h1><section class=\"card\"><dl><dt>Goes to</dt>"
                 "<dd class=\"url\" id=\"target\">");
        esc(&pg, j->link.url, j->link.url_len);
        put(&pg, "</dd><dt>Created</dt><dd>");
        put_time(&pg, j->link.created_at, "unknown");
        put(&pg, "</dd><dt>Expires</dt><dd>");
        put_time(&pg, j->link.expires_at, "never");
        if (j->link.expires_at && j->link.expires_at <= j->now)
                put(&pg, " (expired)");
        put(&pg, "</dd><dt>Total clicks</dt><dd id=\"total-clicks\">");
        put_i64(&pg, j->st.total_clicks);
        put(&pg, "</dd><dt>Today</dt><dd>");
        put_i64(&pg, j->st.clicks_today);
        put(&pg, "</dd><dt>Last 7 days</dt><dd>");
        put_i64(&pg, j->st.clicks_week);
        put(&pg, "</dd><dt>Last 30 days</dt><dd>");
        put_i64(&pg, j->st.clicks_month);
        put(&pg, "</dd><dt>First click</dt><dd>");
        put_time(&pg, j->st.first_click, "none yet");
        put(&pg, "</dd><dt>Last click</dt><dd>");
        put_time(&pg, j->st.last_click, "none yet");
        put(&pg, "</dd></dl></section><h2>Clicks per day</h2><section class=\"card\">");
        put_chart(&pg, j);
        put(&pg, "</section><p class=\"hint\">Clicks are counted in batches: the newest may "
                 "take a few seconds to appear. Days are UTC.</p><p><a href=\"/");
        esc_str(&pg, code);
        put(&pg, "+\">Preview of this link</a></p>");
        page_close(&pg);
        send_page(s, x, KURZ_ROUTE_OTHER, 200, &pg, NULL, 0);
out:
        kurz_buf_free(&u);
        job_free(j);
}

static void platform_page(struct kurz_service *s, struct kurz_http_exchange *x,
                          const struct ui_job *j, int status, const char *error,
                          struct kurz_str code)
{
        struct page pg = {0};

        page_open(&pg, "Statistics");
        put(&pg, "<h1>Statistics</h1>");
        if (j) {
                put(&pg, "<section class=\"card\"><dl><dt>Short links</dt><dd id=\"total-urls\">");
                put_i64(&pg, j->ps.total_urls);
                put(&pg, "</dd><dt>Active (not expired)</dt><dd id=\"active-urls\">");
                put_i64(&pg, j->ps.active_urls);
                put(&pg, "</dd><dt>Clicks</dt><dd id=\"platform-clicks\">");
                put_i64(&pg, j->ps.total_clicks);
                put(&pg, "</dd><dt>Clicks today</dt><dd>");
                put_i64(&pg, j->ps.clicks_today);
                put(&pg, "</dd></dl></section>");
        }
        put(&pg, "<form class=\"card\" method=\"get\" action=\"/stats\">"
                 "<label for=\"code\">Statistics of one short link</label>"
                 "<input id=\"code\" name=\"code\" type=\"text\" autocapitalize=\"off\" "
                 "spellcheck=\"false\" placeholder=\"a short link or its code\" value=\"");
        esc_str(&pg, code);
        put(&pg, "\"");
        if (error)
                put(&pg, " aria-invalid=\"true\" aria-describedby=\"code-error\"");
        put(&pg, ">");
        if (error) {
                put(&pg, "<p class=\"error\" role=\"alert\" id=\"code-error\">");
                esc(&pg, error, strlen(error));
                put(&pg, "</p>");
        }
        put(&pg, "<button type=\"submit\">Show statistics</button></form>");
        page_close(&pg);
        send_page(s, x, KURZ_ROUTE_OTHER, status, &pg, NULL, 0);
}

static void platform_done(struct kurz_http_exchange *x, void *arg)
{
        struct ui_job *j = arg;

        if (j->rc < 0)
                unavailable_page(j->s, x);
        else
                platform_page(j->s, x, j, 200, NULL, (struct kurz_str){"", 0});
        job_free(j);
}

/* Queues j's store read; answers 503 when it cannot be. */
static void ui_offload(struct kurz_service *s, struct kurz_http_exchange *x, struct ui_job *j,
                       void (*done)(struct kurz_http_exchange *x, void *arg))
{
        int rc;

        j->s = s;
        j->now = kurz_api_now_s();
        j->today = (int32_t)(j->now / 86400);
        rc = kurz_http_offload(x, ui_work, done, j);
        if (rc == 0)
                return;
        job_free(j);
        unavailable_page(s, x);
}

static bool stats_available(struct kurz_service *s, struct kurz_http_exchange *x, bool platform)
{
        const struct kurz_store_ops *ops = s->store->ops;

        if (platform ? ops->stats_platform != NULL : ops->stats_link != NULL)
                return true;
        message_page(s, x, 501, "Statistics are unavailable",
                     "This kurz keeps its links in a store that cannot report statistics.");
        return false;
}

static void lookup_page(struct kurz_service *s, struct kurz_http_exchange *x, struct kurz_str code,
                        enum ui_kind kind)
{
        struct ui_job *j;

        if (kind == UI_STATS && !stats_available(s, x, false))
                return;
        if (!kurz_api_lookup_allowed(s, x, KURZ_ROUTE_LINK))
                return;
        j = calloc(1, sizeof(*j));
        if (!j) {
                message_page(s, x, 503, "Please try again", "The server is out of memory.");
                return;
        }
        j->kind = kind;
        j->code_len = code.len; /* <= KURZ_CODE_MAX: checked by the router */
        memcpy(j->code, code.p, code.len);
        ui_offload(s, x, j, kind == UI_STATS ? stats_done : preview_done);
}

void kurz_api_ui_preview(struct kurz_service *s, struct kurz_http_exchange *x, struct kurz_str code)
{
        lookup_page(s, x, code, UI_PREVIEW);
}

void kurz_api_ui_stats(struct kurz_service *s, struct kurz_http_exchange *x, struct kurz_str code)
{
        lookup_page(s, x, code, UI_STATS);
}

/* GET /stats?code=C: C may be a code, a short URL or a preview URL. */
static void platform_lookup(struct kurz_service *s, struct kurz_http_exchange *x, struct kurz_str v)
{
        struct kurz_str code = trim(v);
        const char *slash;
        char loc[8 + KURZ_CODE_MAX];
        struct kurz_http_header h = {KURZ_STR_LIT("Location"), {loc, 0}};

        while (code.len && code.p[code.len - 1] == '/')
                code.len--;
        if (code.len && code.p[code.len - 1] == '+')
                code.len--;
        slash = code.len ? memrchr(code.p, '/', code.len) : NULL;
        if (slash) {
                code.len -= (size_t)(slash + 1 - code.p);
                code.p = slash + 1;
        }
        if (!kurz_code_syntax_ok(code)) {
                platform_page(s, x, NULL, 400,
                              "Please enter a short link, or its code: letters, digits, - or _.",
                              v);
                return;
        }
        h.value.len = (size_t)snprintf(loc, sizeof(loc), "/stats/%.*s", (int)code.len, code.p);
        {
                struct page pg = {0};
                put(&pg, "<!DOCTYPE html><title>Statistics</title><p><a href=\"");
                esc(&pg, loc, h.value.len);
                put(&pg, "\">Statistics</a></p>\n");
                send_page(s, x, KURZ_ROUTE_OTHER, 303, &pg, &h, 1);
        }
}

void kurz_api_ui_platform(struct kurz_service *s, struct kurz_http_exchange *x)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        struct kurz_buf v = {0};
        struct ui_job *j;
        int rc;

        rc = kurz_html_form_get(req->query, "code", &v, 1024);
        if (rc != 0) {
                if (rc == -ENOMEM)
                        message_page(s, x, 503, "Please try again", "The server is out of memory.");
                else
                        platform_lookup(s, x,
                                        rc > 0 ? (struct kurz_str){v.p, v.len}
                                               : (struct kurz_str){"", 0});
                kurz_buf_free(&v);
                return;
        }
        if (!stats_available(s, x, true))
                return;
        j = calloc(1, sizeof(*j));
        if (!j) {
                message_page(s, x, 503, "Please try again", "The server is out of memory.");
                return;
        }
        j->kind = UI_PLATFORM;
        ui_offload(s, x, j, platform_done);
}

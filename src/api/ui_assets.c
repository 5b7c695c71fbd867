/* api/ui_assets.c - the stylesheet and the script of the web pages, compiled
 * into the binary (no build step, no runtime files) and served at
 * /static/kurz.css and /static/kurz.js. Pages link them with ?v=<hash of the
 * content>, so they can be cached for a year and change with every build. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "api/api_int.h"
#include "util/hash.h"

static const char css[] =
    ":root{color-scheme:light dark;--fg:#1b1b1f;--bg:#f7f7f9;--card:#fff;--muted:#4a4a55;"
    "--line:#b9b9c3;--accent:#0a4fc4;--on-accent:#fff;--err:#a4161a;--ok:#1b6b2f}\n"
    "@media (prefers-color-scheme:dark){:root{--fg:#ececf1;--bg:#15151a;--card:#1f1f26;"
    "--muted:#c0c0cc;--line:#5b5b66;--accent:#9cc0ff;--on-accent:#0c1b33;--err:#ffb4ab;"
    "--ok:#8fd19e}}\n"
    "*,*::before,*::after{box-sizing:border-box}\n"
    "html{-webkit-text-size-adjust:100%;text-size-adjust:100%}\n"
    "body{margin:0;font:1rem/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;"
    "color:var(--fg);background:var(--bg)}\n"
    "header,main,footer{width:100%;max-width:44rem;margin:0 auto;padding:1rem}\n"
    "header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:baseline;"
    "justify-content:space-between}\n"
    ".brand{font-size:1.4rem;font-weight:700;color:var(--fg);text-decoration:none}\n"
    "nav a{margin-left:1rem}\n"
    "a{color:var(--accent)}\n"
    "h1{font-size:1.6rem;line-height:1.25;margin:.5rem 0 1rem}\n"
    "h2{font-size:1.2rem;margin:1.5rem 0 .5rem}\n"
    ".card{background:var(--card);border:1px solid var(--line);border-radius:.6rem;"
    "padding:1rem 1.25rem;margin:0 0 1rem}\n"
    "label{display:block;font-weight:600;margin:1rem 0 .3rem}\n"
    "label:first-child{margin-top:0}\n"
    ".opt{font-weight:400;color:var(--muted)}\n"
    "input,select,button{font:inherit}\n"
    "input[type=url],input[type=text],select{display:block;width:100%;min-width:0;"
    "padding:.6rem .7rem;border:1px solid var(--line);border-radius:.4rem;"
    "background:var(--bg);color:var(--fg)}\n"
    "input:focus,select:focus,button:focus,a:focus{outline:3px solid var(--accent);"
    "outline-offset:2px}\n"
    "[aria-invalid=true]{border:2px solid var(--err)}\n"
    ".hint{margin:.3rem 0 0;color:var(--muted);font-size:.9rem}\n"
    ".error{margin:.3rem 0 0;color:var(--err);font-weight:600}\n"
    ".alert{border:2px solid var(--err);color:var(--err);border-radius:.4rem;padding:.6rem .8rem;"
    "font-weight:600;margin:0 0 1rem}\n"
    "button,.button{display:inline-block;margin:1rem .5rem 0 0;padding:.6rem 1.2rem;border:0;"
    "border-radius:.4rem;background:var(--accent);color:var(--on-accent);font-weight:600;"
    "text-decoration:none;cursor:pointer}\n"
    "button.secondary{background:transparent;color:var(--accent);border:2px solid "
    "var(--accent)}\n"
    "[hidden]{display:none!important}\n"
    ".url{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;"
    "overflow-wrap:anywhere;word-break:break-all}\n"
    ".short{font-size:1.3rem;font-weight:600;margin:.25rem 0}\n"
    ".ok{color:var(--ok);font-weight:600}\n"
    ".qr{display:block;width:100%;max-width:15rem;height:auto;margin:1rem 0;"
    "background:#fff;border:1px solid var(--line)}\n"
    "dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.35rem 1rem;"
    "margin:0}\n"
    "dt{font-weight:600}\n"
    "dd{margin:0;min-width:0}\n"
    "@media (max-width:30rem){dl{grid-template-columns:minmax(0,1fr)}dd{margin-bottom:.4rem}"
    "nav a{margin:0 1rem 0 0}}\n"
    ".chart{display:block;width:100%;height:auto}\n"
    ".chart .bar{fill:var(--accent)}\n"
    ".chart .axis{stroke:var(--line)}\n"
    ".chart text{fill:var(--muted);font-size:11px}\n"
    "table{border-collapse:collapse}\n"
    "td,th{padding:.2rem .8rem .2rem 0;text-align:left}\n"
    "footer{color:var(--muted);font-size:.85rem}\n";

static const char js[] =
    "/* kurz.js - an enhancement only: every page works without it. */\n"
    "\"use strict\";\n"
    "(function () {\n"
    "  function selectText(el) {\n"
    "    if (!el) return;\n"
    "    var r = document.createRange();\n"
    "    r.selectNodeContents(el);\n"
    "    var sel = window.getSelection();\n"
    "    sel.removeAllRanges();\n"
    "    sel.addRange(r);\n"
    "  }\n"
    "  function setup() {\n"
    "    var buttons = document.querySelectorAll(\"button[data-copy]\");\n"
    "    Array.prototype.forEach.call(buttons, function (b) {\n"
    "      var label = b.textContent;\n"
    "      var target = document.getElementById(b.getAttribute(\"aria-controls\"));\n"
    "      b.hidden = false;\n"
    "      b.addEventListener(\"click\", function () {\n"
    "        var text = b.getAttribute(\"data-copy\");\n"
    "        function said(msg) {\n"
    "          b.textContent = msg;\n"
    "          window.setTimeout(function () { b.textContent = label; }, 2500);\n"
    "        }\n"
    "        function fallback() {\n"
    "          selectText(target);\n"
    "          said(\"Press Ctrl+C to copy\");\n"
    "        }\n"
    "        if (navigator.clipboard && navigator.clipboard.writeText) {\n"
    "          navigator.clipboard.writeText(text).then(function () { said(\"Copied\"); },\n"
    "                                                   fallback);\n"
    "        } else {\n"
    "          fallback();\n"
    "        }\n"
    "      });\n"
    "    });\n"
    "    var first = document.querySelector(\"[aria-invalid=true]\");\n"
    "    if (first) first.focus();\n"
    "  }\n"
    "  if (document.readyState === \"loading\")\n"
    "    document.addEventListener(\"DOMContentLoaded\", setup);\n"
    "  else\n"
    "    setup();\n"
    "})();\n";

static pthread_once_t version_once = PTHREAD_ONCE_INIT;
static char css_version[17], js_version[17];

static void compute_versions(void)
{
        snprintf(css_version, sizeof(css_version), "%016" PRIx64, kurz_hash(css, sizeof(css) - 1));
        snprintf(js_version, sizeof(js_version), "%016" PRIx64, kurz_hash(js, sizeof(js) - 1));
}

int kurz_api_ui_asset_links(struct kurz_buf *b)
{
        pthread_once(&version_once, compute_versions);
        return kurz_buf_printf(b,
                               "<link rel=\"stylesheet\" href=\"/static/kurz.css?v=%s\">"
                               "<script src=\"/static/kurz.js?v=%s\" defer></script>",
                               css_version, js_version);
}

bool kurz_api_ui_asset(struct kurz_service *s, struct kurz_http_exchange *x, struct kurz_str name)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        unsigned thread = req->thread;
        uint64_t start = req->start_ns;
        const char *body, *type, *version;
        size_t len;
        char etag[20];
        struct kurz_http_header h[4] = {
            {KURZ_STR_LIT("Cache-Control"), KURZ_STR_LIT("public, max-age=31536000, immutable")},
            {KURZ_STR_LIT("ETag"), {etag, 0}},
            {KURZ_STR_LIT("X-Content-Type-Options"), KURZ_STR_LIT("nosniff")},
            {KURZ_STR_LIT("Cross-Origin-Resource-Policy"), KURZ_STR_LIT("same-origin")},
        };

        pthread_once(&version_once, compute_versions);
        if (kurz_str_eq_lit(name, "kurz.css")) {
                body = css;
                len = sizeof(css) - 1;
                type = "text/css; charset=utf-8";
                version = css_version;
        } else if (kurz_str_eq_lit(name, "kurz.js")) {
                body = js;
                len = sizeof(js) - 1;
                type = "text/javascript; charset=utf-8";
                version = js_version;
        } else {
                return false;
        }
        h[1].value.len = (size_t)snprintf(etag, sizeof(etag), "\"%s\"", version);
        /* Only the current versioned URL is immutable: an old page asking
         * for another version gets today's asset, revalidated next time. */
        if (req->query.len != 18 || memcmp(req->query.p, "v=", 2) != 0 ||
            memcmp(req->query.p + 2, version, 16) != 0)
                h[0].value = KURZ_STR_LIT("public, max-age=300");
        kurz_http_respond(x, 200, h, 4, type, body, len, false);
        kurz_metrics_request(s->metrics, thread, KURZ_ROUTE_OTHER, 200, kurz_http_now_ns() - start);
        return true;
}

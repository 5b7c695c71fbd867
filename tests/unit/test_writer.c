/* tests/unit/test_writer.c - the writer thread: concurrent creates are
 * group-committed into a real SQLite store, jobs keep their place relative to
 * creates, stop drains, a full queue refuses, and a failing store fails every
 * item. Uses a fake store (optionally forwarding to SQLite) to count calls. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/sqlite.h"
#include "store/writer.h"
#include "test.h"
#include "util/hash.h"

#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

/* A store whose create_batch records its calls and can be held at a gate,
 * fail, or forward to a real store. */
struct fake {
        struct kurz_store base;
        struct kurz_store *inner; /* forward creates here when set */
        int fail_rc;              /* returned without touching items when set */
        pthread_mutex_t mu;
        pthread_cond_t cv;
        bool gate_closed;
        int entered; /* create_batch calls that reached the gate */
        int calls;
        size_t items;
        char log[256];
        int next_code;
};

static void fake_log(struct fake *f, const char *s)
{
        size_t len = strlen(f->log);

        snprintf(f->log + len, sizeof(f->log) - len, "%s%s", len ? " " : "", s);
}

static int fake_create_batch(struct kurz_store *s, struct kurz_create *items, size_t n,
                             kurz_code_fn gen, void *gen_arg)
{
        struct fake *f = (struct fake *)s;
        char entry[32];

        pthread_mutex_lock(&f->mu);
        f->calls++;
        f->items += n;
        snprintf(entry, sizeof(entry), "C%zu", n);
        fake_log(f, entry);
        f->entered++;
        pthread_cond_broadcast(&f->cv);
        while (f->gate_closed)
                pthread_cond_wait(&f->cv, &f->mu);
        pthread_mutex_unlock(&f->mu);
        if (f->inner)
                return f->inner->ops->create_batch(f->inner, items, n, gen, gen_arg);
        if (f->fail_rc)
                return f->fail_rc;
        for (size_t i = 0; i < n; i++) {
                items[i].status = KURZ_CREATE_NEW;
                snprintf(items[i].code, sizeof(items[i].code), "f%d", f->next_code++);
        }
        return 0;
}

static const struct kurz_store_ops fake_ops = {.create_batch = fake_create_batch};

static void fake_init(struct fake *f)
{
        memset(f, 0, sizeof(*f));
        f->base.ops = &fake_ops;
        f->base.name = "fake";
        pthread_mutex_init(&f->mu, NULL);
        pthread_cond_init(&f->cv, NULL);
}

static void fake_destroy(struct fake *f)
{
        pthread_cond_destroy(&f->cv);
        pthread_mutex_destroy(&f->mu);
}

static void fake_set_gate(struct fake *f, bool closed)
{
        pthread_mutex_lock(&f->mu);
        f->gate_closed = closed;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
}

/* Waits until create_batch has been entered n times. */
static void fake_wait_entered(struct fake *f, int n)
{
        pthread_mutex_lock(&f->mu);
        while (f->entered < n)
                pthread_cond_wait(&f->cv, &f->mu);
        pthread_mutex_unlock(&f->mu);
}

/* A create with a completion counter, for the fake-store tests. */
struct req {
        struct kurz_writer_create wc;
        atomic_int *done_count;
};

static void req_done(struct kurz_writer_create *c)
{
        struct req *r = container_of(c, struct req, wc);

        atomic_fetch_add(r->done_count, 1);
}

static void req_init(struct req *r, atomic_int *done_count)
{
        memset(r, 0, sizeof(*r));
        r->wc.item.url = "https://fake.example/";
        r->wc.item.url_len = strlen(r->wc.item.url);
        r->wc.done = req_done;
        r->done_count = done_count;
}

/* --- many submitters against SQLite --- */

enum { THREADS = 8, PER_THREAD = 2000 };

struct submitter {
        struct kurz_writer *w;
        int id;
        struct sub_req *reqs;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        int done;
        int submit_errors;
};

struct sub_req {
        struct kurz_writer_create wc;
        struct submitter *t;
        char url[64];
};

static void sub_done(struct kurz_writer_create *c)
{
        struct sub_req *r = container_of(c, struct sub_req, wc);
        struct submitter *t = r->t;

        pthread_mutex_lock(&t->mu);
        if (++t->done == PER_THREAD)
                pthread_cond_signal(&t->cv);
        pthread_mutex_unlock(&t->mu);
}

static void *submit_main(void *arg)
{
        struct submitter *t = arg;

        for (int i = 0; i < PER_THREAD; i++) {
                struct sub_req *r = &t->reqs[i];
                struct kurz_create *it = &r->wc.item;
                int len = snprintf(r->url, sizeof(r->url), "https://w.example/%d/%d", t->id, i);

                r->t = t;
                r->wc.done = sub_done;
                it->url = r->url;
                it->url_len = (size_t)len;
                it->url_hash = kurz_hash(r->url, (size_t)len);
                it->created_at = 1000;
                it->dedupe = true;
                if (kurz_writer_create(t->w, &r->wc) < 0) {
                        t->submit_errors++;
                        sub_done(&r->wc);
                }
        }
        pthread_mutex_lock(&t->mu);
        while (t->done < PER_THREAD)
                pthread_cond_wait(&t->cv, &t->mu);
        pthread_mutex_unlock(&t->mu);
        return NULL;
}

static int counter_gen(void *arg, char *out, size_t cap)
{
        int *next = arg;

        snprintf(out, cap, "w%d", (*next)++); /* writer thread only */
        return 0;
}

static int cmp_code(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static char root[] = "/tmp/kurz-test-writer-XXXXXX";

static void test_concurrent_creates(void)
{
        static struct submitter subs[THREADS];
        static struct sub_req reqs[THREADS][PER_THREAD];
        static const char *codes[THREADS * PER_THREAD];
        struct kurz_sqlite_config scfg = {.data_dir = root};
        struct kurz_writer_config wcfg = {0};
        pthread_t th[THREADS];
        struct kurz_store *db = NULL;
        struct kurz_writer *w = NULL;
        struct fake f;
        int next = 0, fresh = 0, n = 0;
        int64_t total = 0, active = 0;

        CHECK_EQ_INT(kurz_sqlite_open(&scfg, &db), 0);
        if (!db)
                return;
        fake_init(&f);
        f.inner = db;
        wcfg.gen = counter_gen;
        wcfg.gen_arg = &next;
        CHECK_EQ_INT(kurz_writer_start(&f.base, &wcfg, &w), 0);
        if (!w)
                goto out_close;
        for (int i = 0; i < THREADS; i++) {
                subs[i] = (struct submitter){.w = w, .id = i, .reqs = reqs[i]};
                pthread_mutex_init(&subs[i].mu, NULL);
                pthread_cond_init(&subs[i].cv, NULL);
                pthread_create(&th[i], NULL, submit_main, &subs[i]);
        }
        for (int i = 0; i < THREADS; i++) {
                pthread_join(th[i], NULL);
                CHECK_EQ_INT(subs[i].submit_errors, 0);
                pthread_cond_destroy(&subs[i].cv);
                pthread_mutex_destroy(&subs[i].mu);
        }
        kurz_writer_stop(w);

        for (int i = 0; i < THREADS; i++) {
                for (int j = 0; j < PER_THREAD; j++) {
                        struct kurz_create *it = &reqs[i][j].wc.item;

                        fresh += it->status == KURZ_CREATE_NEW;
                        codes[n++] = it->code;
                }
        }
        CHECK_EQ_INT(fresh, THREADS * PER_THREAD);
        qsort(codes, (size_t)n, sizeof(codes[0]), cmp_code);
        for (int i = 1; i < n; i++) {
                if (strcmp(codes[i - 1], codes[i]) == 0) {
                        CHECK(!"duplicate code");
                        break;
                }
        }
        CHECK_EQ_INT(f.items, THREADS * PER_THREAD);
        /* Group commit: far fewer transactions than creates. */
        CHECK(f.calls > 0 && f.items / (size_t)f.calls > 1);
        printf("     %zu creates in %d batches\n", f.items, f.calls);
        CHECK_EQ_INT(db->ops->count(db, 1000, &total, &active), 0);
        CHECK_EQ_INT(total, THREADS * PER_THREAD);
out_close:
        db->ops->close(db);
        fake_destroy(&f);
}

/* Submitters that each wait for their own create before sending the next
 * (as HTTP clients do) still share commits: while one batch is being
 * fsynced, the others queue up for the next. */
enum { SYNC_PER_THREAD = 150 };

struct sync_sub {
        struct kurz_writer *w;
        int id;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        bool finished;
        int fresh;
};

struct sync_req {
        struct kurz_writer_create wc;
        struct sync_sub *t;
};

static void sync_done(struct kurz_writer_create *c)
{
        struct sync_req *r = container_of(c, struct sync_req, wc);

        pthread_mutex_lock(&r->t->mu);
        r->t->finished = true;
        pthread_cond_signal(&r->t->cv);
        pthread_mutex_unlock(&r->t->mu);
}

static void *sync_main(void *arg)
{
        struct sync_sub *t = arg;
        char url[64];

        for (int i = 0; i < SYNC_PER_THREAD; i++) {
                struct sync_req r = {.t = t, .wc.done = sync_done};
                int len = snprintf(url, sizeof(url), "https://s.example/%d/%d", t->id, i);

                r.wc.item.url = url;
                r.wc.item.url_len = (size_t)len;
                r.wc.item.url_hash = kurz_hash(url, (size_t)len);
                r.wc.item.created_at = 1000;
                t->finished = false;
                if (kurz_writer_create(t->w, &r.wc) < 0)
                        continue;
                pthread_mutex_lock(&t->mu);
                while (!t->finished)
                        pthread_cond_wait(&t->cv, &t->mu);
                pthread_mutex_unlock(&t->mu);
                t->fresh += r.wc.item.status == KURZ_CREATE_NEW;
        }
        return NULL;
}

static void test_group_commit_waiting(void)
{
        static struct sync_sub subs[THREADS];
        struct kurz_sqlite_config scfg = {.data_dir = root};
        struct kurz_writer_config wcfg = {0};
        pthread_t th[THREADS];
        struct kurz_store *db = NULL;
        struct kurz_writer *w = NULL;
        struct fake f;
        int next = 100000;

        CHECK_EQ_INT(kurz_sqlite_open(&scfg, &db), 0);
        if (!db)
                return;
        fake_init(&f);
        f.inner = db;
        wcfg.gen = counter_gen;
        wcfg.gen_arg = &next;
        CHECK_EQ_INT(kurz_writer_start(&f.base, &wcfg, &w), 0);
        if (!w)
                goto out_close;
        for (int i = 0; i < THREADS; i++) {
                subs[i] = (struct sync_sub){.w = w, .id = i};
                pthread_mutex_init(&subs[i].mu, NULL);
                pthread_cond_init(&subs[i].cv, NULL);
                pthread_create(&th[i], NULL, sync_main, &subs[i]);
        }
        for (int i = 0; i < THREADS; i++) {
                pthread_join(th[i], NULL);
                CHECK_EQ_INT(subs[i].fresh, SYNC_PER_THREAD);
                pthread_cond_destroy(&subs[i].cv);
                pthread_mutex_destroy(&subs[i].mu);
        }
        kurz_writer_stop(w);
        CHECK_EQ_INT(f.items, THREADS * SYNC_PER_THREAD);
        CHECK(f.calls > 0 && (double)f.items / f.calls > 1.2);
        printf("     %zu waiting creates in %d batches\n", f.items, f.calls);
out_close:
        db->ops->close(db);
        fake_destroy(&f);
}

/* --- jobs keep their place among creates --- */

struct job_arg {
        struct fake *f;
        const char *name;
        int rc_seen;
        atomic_int *done_count;
};

static int log_job(struct kurz_store *s, void *arg)
{
        struct job_arg *a = arg;

        CHECK(s == &a->f->base);
        pthread_mutex_lock(&a->f->mu);
        fake_log(a->f, a->name);
        pthread_mutex_unlock(&a->f->mu);
        return 42;
}

static void log_job_done(void *arg, int rc)
{
        struct job_arg *a = arg;

        a->rc_seen = rc;
        atomic_fetch_add(a->done_count, 1);
}

static void test_job_order(void)
{
        struct kurz_writer_config wcfg = {0};
        struct kurz_writer *w = NULL;
        struct req r[4];
        atomic_int done = 0, jobs_done = 0;
        struct job_arg ja, jb;
        struct fake f;

        fake_init(&f);
        CHECK_EQ_INT(kurz_writer_start(&f.base, &wcfg, &w), 0);
        if (!w)
                return;
        ja = (struct job_arg){.f = &f, .name = "A", .done_count = &jobs_done};
        jb = (struct job_arg){.f = &f, .name = "B", .done_count = &jobs_done};
        for (int i = 0; i < 4; i++)
                req_init(&r[i], &done);
        fake_set_gate(&f, true);
        CHECK_EQ_INT(kurz_writer_create(w, &r[0].wc), 0);
        fake_wait_entered(&f, 1); /* the writer is busy with r0 */
        CHECK_EQ_INT(kurz_writer_job(w, log_job, log_job_done, &ja), 0);
        CHECK_EQ_INT(kurz_writer_create(w, &r[1].wc), 0);
        CHECK_EQ_INT(kurz_writer_create(w, &r[2].wc), 0);
        CHECK_EQ_INT(kurz_writer_job(w, log_job, log_job_done, &jb), 0);
        CHECK_EQ_INT(kurz_writer_create(w, &r[3].wc), 0);
        CHECK_EQ_INT(kurz_writer_queued(w), 3);
        fake_set_gate(&f, false);
        kurz_writer_stop(w);
        CHECK_EQ_STR(f.log, "C1 A C2 B C1");
        CHECK_EQ_INT(done, 4);
        CHECK_EQ_INT(jobs_done, 2);
        CHECK_EQ_INT(ja.rc_seen, 42);
        CHECK_EQ_INT(jb.rc_seen, 42);
        for (int i = 0; i < 4; i++)
                CHECK_EQ_INT(r[i].wc.item.status, KURZ_CREATE_NEW);
        fake_destroy(&f);
}

/* --- stop drains what is queued and refuses new work --- */

static void *stop_main(void *arg)
{
        kurz_writer_stop(arg);
        return NULL;
}

static void test_stop_drains(void)
{
        enum { MAXR = 2000 };
        static struct req r[MAXR];
        struct kurz_writer_config wcfg = {.max_batch = 16};
        struct kurz_writer *w = NULL;
        atomic_int done = 0, jobs_done = 0;
        struct job_arg ja;
        pthread_t stopper;
        struct fake f;
        int accepted = 0, rc = 0;

        fake_init(&f);
        CHECK_EQ_INT(kurz_writer_start(&f.base, &wcfg, &w), 0);
        if (!w)
                return;
        ja = (struct job_arg){.f = &f, .name = "J", .done_count = &jobs_done};
        fake_set_gate(&f, true);
        for (int i = 0; i < 100; i++) {
                req_init(&r[i], &done);
                CHECK_EQ_INT(kurz_writer_create(w, &r[i].wc), 0);
        }
        accepted = 100;
        CHECK_EQ_INT(kurz_writer_job(w, log_job, log_job_done, &ja), 0);
        fake_wait_entered(&f, 1);
        pthread_create(&stopper, NULL, stop_main, w);
        /* Keep submitting until stop has begun: those accepted before must
         * still complete. */
        while (accepted < MAXR) {
                req_init(&r[accepted], &done);
                rc = kurz_writer_create(w, &r[accepted].wc);
                if (rc < 0)
                        break;
                accepted++;
                usleep(100);
        }
        CHECK_EQ_INT(rc, -ESHUTDOWN);
        CHECK_EQ_INT(kurz_writer_job(w, log_job, log_job_done, &ja), -ESHUTDOWN);
        fake_set_gate(&f, false);
        pthread_join(stopper, NULL);
        CHECK_EQ_INT(done, accepted);
        CHECK_EQ_INT(jobs_done, 1);
        CHECK_EQ_INT(f.items, accepted);
        for (int i = 0; i < accepted; i++)
                CHECK_EQ_INT(r[i].wc.item.status, KURZ_CREATE_NEW);
        fake_destroy(&f);
}

/* --- a full queue refuses with -EAGAIN --- */

static void test_queue_full(void)
{
        struct kurz_writer_config wcfg = {.max_queue = 4, .max_batch = 2};
        struct kurz_writer *w = NULL;
        atomic_int done = 0;
        struct req r[6];
        struct fake f;

        fake_init(&f);
        CHECK_EQ_INT(kurz_writer_start(&f.base, &wcfg, &w), 0);
        if (!w)
                return;
        for (int i = 0; i < 6; i++)
                req_init(&r[i], &done);
        fake_set_gate(&f, true);
        CHECK_EQ_INT(kurz_writer_create(w, &r[0].wc), 0);
        fake_wait_entered(&f, 1); /* the slow store holds r0 */
        CHECK_EQ_INT(kurz_writer_queued(w), 0);
        for (int i = 1; i <= 4; i++)
                CHECK_EQ_INT(kurz_writer_create(w, &r[i].wc), 0);
        CHECK_EQ_INT(kurz_writer_queued(w), 4);
        CHECK_EQ_INT(kurz_writer_create(w, &r[5].wc), -EAGAIN);
        fake_set_gate(&f, false);
        kurz_writer_stop(w);
        CHECK_EQ_INT(done, 5); /* not the refused one */
        CHECK_EQ_INT(r[5].wc.item.status, KURZ_CREATE_PENDING);
        CHECK_EQ_STR(f.log, "C1 C2 C2"); /* max_batch bounds each batch */
        fake_destroy(&f);
}

/* --- a failing store fails every item --- */

static void test_failing_store(void)
{
        struct kurz_writer_config wcfg = {0};
        struct kurz_writer *w = NULL;
        atomic_int done = 0;
        struct req r[10];
        struct fake f;

        fake_init(&f);
        f.fail_rc = KURZ_E_UNAVAILABLE;
        CHECK_EQ_INT(kurz_writer_start(&f.base, &wcfg, &w), 0);
        if (!w)
                return;
        for (int i = 0; i < 10; i++) {
                req_init(&r[i], &done);
                CHECK_EQ_INT(kurz_writer_create(w, &r[i].wc), 0);
        }
        kurz_writer_stop(w);
        CHECK_EQ_INT(done, 10);
        for (int i = 0; i < 10; i++) {
                CHECK_EQ_INT(r[i].wc.item.status, KURZ_CREATE_FAILED);
                CHECK_EQ_INT(r[i].wc.item.err, KURZ_E_UNAVAILABLE);
        }
        fake_destroy(&f);
}

int main(void)
{
        if (!mkdtemp(root)) {
                perror("mkdtemp");
                return 1;
        }
        RUN(test_concurrent_creates);
        RUN(test_group_commit_waiting);
        RUN(test_job_order);
        RUN(test_stop_drains);
        RUN(test_queue_full);
        RUN(test_failing_store);
        test_rmtree(root);
        TEST_END("writer");
}

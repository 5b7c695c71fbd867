/* tests/faults/alloc_wrap.c - allocation fault injection for the test build
 * build/faults/kurz. The link wraps the malloc, calloc, realloc, strdup,
 * strndup and aligned_alloc calls of kurz's own objects (-Wl,--wrap=...) and
 * routes jansson's allocator through the same wrappers, so that after arming,
 * exactly the Nth allocation from then on fails (returns NULL).
 *
 * Control, from a test driver: write "SEQ N" into the file named by
 * $KURZ_FAULT_CTL and send SIGUSR2. N > 0 arms (count from zero, fail the
 * Nth), N == 0 disarms. The handler answers on stderr with one line
 * "alloc-fault: ack SEQ counted=K failed=F", where K is the number of
 * allocations counted since the previous command and F is 1 when the armed
 * allocation was reached and failed. A failed allocation also prints
 * "alloc-fault: failing allocation N". Everything here is async-signal-safe
 * or lock-free: the wrappers run on every thread. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);

static atomic_long target;  /* fail the allocation with this number; 0 = off */
static atomic_long counted; /* allocations since the last command */
static atomic_int failed;   /* the target was reached */
static const char *ctl_path;

/* A line for stderr, built without stdio (the handler may interrupt it). */
struct line {
        char p[160];
        size_t len;
};

static void put(struct line *l, const char *s)
{
        for (; *s && l->len < sizeof(l->p) - 1; s++)
                l->p[l->len++] = *s;
}

static void put_num(struct line *l, long v)
{
        char buf[24];
        char *p = buf + sizeof(buf);
        unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;

        *--p = '\0';
        do {
                *--p = (char)('0' + u % 10);
                u /= 10;
        } while (u);
        if (v < 0)
                *--p = '-';
        put(l, p);
}

static void say(struct line *l)
{
        l->p[l->len++] = '\n';
        (void)!write(2, l->p, l->len);
}

static bool should_fail(void)
{
        long t = atomic_load_explicit(&target, memory_order_acquire);
        long k;

        if (t <= 0)
                return false;
        k = atomic_fetch_add(&counted, 1) + 1;
        if (k != t)
                return false;
        struct line l = {.len = 0};

        atomic_store(&failed, 1);
        put(&l, "alloc-fault: failing allocation ");
        put_num(&l, k);
        say(&l);
        return true;
}

static void on_ctl(int sig)
{
        struct line l = {.len = 0};
        char buf[64];
        long v[2] = {0, 0};
        int saved = errno, fd, i = 0;
        ssize_t n;

        (void)sig;
        fd = ctl_path ? open(ctl_path, O_RDONLY | O_CLOEXEC) : -1;
        if (fd < 0)
                goto out;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                goto out;
        for (ssize_t j = 0; j < n && i < 2; j++) {
                if (buf[j] >= '0' && buf[j] <= '9') {
                        v[i] = v[i] * 10 + (buf[j] - '0');
                        if (j + 1 == n || buf[j + 1] < '0' || buf[j + 1] > '9')
                                i++;
                }
        }
        atomic_store(&target, 0);
        put(&l, "alloc-fault: ack ");
        put_num(&l, v[0]);
        put(&l, " counted=");
        put_num(&l, atomic_exchange(&counted, 0));
        put(&l, " failed=");
        put_num(&l, atomic_exchange(&failed, 0));
        say(&l);
        atomic_store_explicit(&target, v[1], memory_order_release);
out:
        errno = saved;
}

void *__wrap_malloc(size_t n)
{
        return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
        return should_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
        /* realloc(p, 0) frees p: a NULL from it is not a failure. */
        if (n && should_fail())
                return NULL;
        return __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
        return should_fail() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
        return should_fail() ? NULL : __real_strndup(s, n);
}

void *__wrap_aligned_alloc(size_t align, size_t n)
{
        return should_fail() ? NULL : __real_aligned_alloc(align, n);
}

static void *json_malloc(size_t n)
{
        return __wrap_malloc(n);
}

static void json_free(void *p)
{
        free(p);
}

__attribute__((constructor)) static void alloc_wrap_init(void)
{
        struct sigaction sa;

        json_set_alloc_funcs(json_malloc, json_free);
        ctl_path = getenv("KURZ_FAULT_CTL");
        if (!ctl_path)
                return;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_ctl;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGUSR2, &sa, NULL);
}

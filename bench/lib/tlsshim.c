/*
 * LD_PRELOAD shim for the load generators (wrk, h2load), which link libssl dynamically.
 *
 * - BENCH_TLS_NO_RESUME=1: drop the session a client is about to offer, so every handshake
 *   is a full one. wrk keeps its session across SSL_clear() and h2load reuses its SSL object
 *   after SSL_shutdown(); both then resume silently (DESIGN.md section 7). We clear the session
 *   at the first handshake call of each connection (SSL_in_before), whichever way it got there.
 * - BENCH_TLS_TICKET_ONCE=1: offer each session (ticket) at most once, as browsers do with TLS
 *   1.3 tickets (RFC 8446 C.4): a session already offered and not replaced by a fresh ticket
 *   since is dropped, and that handshake is a full one. Plain OpenSSL clients reuse a ticket
 *   until it expires, which hides a server that issues no new ticket on resumption.
 * - BENCH_TLS_STATS=FILE: at exit, write JSON with the number of completed handshakes, how many
 *   resumed (SSL_session_reused), and a histogram of connection lifetimes in microseconds, from
 *   the first handshake call (TCP already connected) to SSL_shutdown.
 * - BENCH_RESOLVE_SUFFIX=.example: getaddrinfo() answers 127.0.0.1 for names ending in it, so
 *   wrk can put the routing name (SNI) in its URL.
 *
 * No OpenSSL headers: the few functions are declared here and found with dlsym.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

#define SUB_BUCKETS 64
#define MAGNITUDES 40
static uint64_t hist[MAGNITUDES * SUB_BUCKETS];
static uint64_t handshakes, resumed, closed;
static int ex_index = -1;
static int offered_index = -1;
/* libssl's SSL_connect calls SSL_do_handshake through the PLT, so it reaches our wrapper too. */
static __thread int depth;

static void *sym(const char *name) {
  void *p = dlsym(RTLD_NEXT, name);
  if (!p) p = dlsym(RTLD_DEFAULT, name);
  if (!p) {
    fprintf(stderr, "tlsshim: %s not found\n", name);
    abort();
  }
  return p;
}

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Log-linear buckets: 64 per power of two, so a bucket is at most 1/64 of its value wide. */
static unsigned bucket_of(uint64_t v) {
  if (v < SUB_BUCKETS) return (unsigned)v;
  unsigned mag = 63u - (unsigned)__builtin_clzll(v); /* v in [2^mag, 2^(mag+1)), mag >= 6 */
  unsigned shift = mag - 6u;                         /* keep 7 significant bits */
  unsigned idx = SUB_BUCKETS + shift * SUB_BUCKETS + (unsigned)((v >> shift) - SUB_BUCKETS);
  return idx < MAGNITUDES * SUB_BUCKETS ? idx : MAGNITUDES * SUB_BUCKETS - 1;
}

static uint64_t bucket_low(unsigned idx) {
  if (idx < SUB_BUCKETS) return idx;
  unsigned shift = (idx - SUB_BUCKETS) / SUB_BUCKETS;
  uint64_t sub = (idx - SUB_BUCKETS) % SUB_BUCKETS + SUB_BUCKETS;
  return sub << shift;
}

/* SSL_get_ex_new_index is a macro over CRYPTO_get_ex_new_index; CRYPTO_EX_INDEX_SSL is 0. */
static int new_index(void) {
  int (*real)(int, long, void *, void *, void *, void *) = sym("CRYPTO_get_ex_new_index");
  return real(0, 0, NULL, NULL, NULL, NULL);
}

/* Slot for the connection's start time. */
static int get_index(void) {
  if (ex_index < 0) ex_index = new_index();
  return ex_index;
}

/* Slot for the session this SSL offered last (compared by address, never dereferenced). */
static int get_offered_index(void) {
  if (offered_index < 0) offered_index = new_index();
  return offered_index;
}

static int env_on(const char *name) {
  const char *v = getenv(name);
  return v && v[0] == '1';
}

static void before_handshake(SSL *ssl) {
  static int (*in_before)(const SSL *);
  static int (*set_session)(SSL *, SSL_SESSION *);
  static int (*set_ex)(SSL *, int, void *);
  static void *(*get_ex)(const SSL *, int);
  static SSL_SESSION *(*get_session)(const SSL *);
  if (!in_before) {
    in_before = sym("SSL_in_before");
    set_session = sym("SSL_set_session");
    set_ex = sym("SSL_set_ex_data");
    get_ex = sym("SSL_get_ex_data");
    get_session = sym("SSL_get_session");
  }
  if (!in_before(ssl)) return;
  if (env_on("BENCH_TLS_NO_RESUME")) set_session(ssl, NULL);
  if (env_on("BENCH_TLS_TICKET_ONCE")) {
    /* A fresh ticket replaces the SSL's session with a new object (the old one is still
       referenced while the new one is made), so an unchanged address means no new ticket. */
    SSL_SESSION *session = get_session(ssl);
    if (session != NULL && (void *)session == get_ex(ssl, get_offered_index())) {
      set_session(ssl, NULL);
      session = NULL;
    }
    set_ex(ssl, get_offered_index(), session);
  }
  set_ex(ssl, get_index(), (void *)(uintptr_t)now_us());
}

/* True while a handshake is under way; wrk calls SSL_connect again once it is done. */
static int in_init(SSL *ssl) {
  static int (*real)(const SSL *);
  if (!real) real = sym("SSL_in_init");
  return real(ssl);
}

static int after_handshake(SSL *ssl, int was_in_init, int rv) {
  static int (*reused)(const SSL *);
  if (rv != 1 || !was_in_init) return rv;
  if (!reused) reused = sym("SSL_session_reused");
  __atomic_fetch_add(&handshakes, 1, __ATOMIC_RELAXED);
  if (reused(ssl)) __atomic_fetch_add(&resumed, 1, __ATOMIC_RELAXED);
  return rv;
}

int SSL_connect(SSL *ssl) {
  static int (*real)(SSL *);
  if (!real) real = sym("SSL_connect");
  if (depth > 0) return real(ssl);
  before_handshake(ssl);
  int was_in_init = in_init(ssl);
  depth++;
  int rv = real(ssl);
  depth--;
  return after_handshake(ssl, was_in_init, rv);
}

int SSL_do_handshake(SSL *ssl) {
  static int (*real)(SSL *);
  if (!real) real = sym("SSL_do_handshake");
  if (depth > 0) return real(ssl);
  before_handshake(ssl);
  int was_in_init = in_init(ssl);
  depth++;
  int rv = real(ssl);
  depth--;
  return after_handshake(ssl, was_in_init, rv);
}

int SSL_shutdown(SSL *ssl) {
  static int (*real)(SSL *);
  static void *(*get_ex)(const SSL *, int);
  static int (*set_ex)(SSL *, int, void *);
  if (!real) {
    real = sym("SSL_shutdown");
    get_ex = sym("SSL_get_ex_data");
    set_ex = sym("SSL_set_ex_data");
  }
  uint64_t start = (uint64_t)(uintptr_t)get_ex(ssl, get_index());
  if (start != 0) {
    uint64_t took = now_us() - start;
    __atomic_fetch_add(&hist[bucket_of(took)], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&closed, 1, __ATOMIC_RELAXED);
    set_ex(ssl, get_index(), NULL);
  }
  return real(ssl);
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
  static int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
  if (!real) real = sym("getaddrinfo");
  const char *suffix = getenv("BENCH_RESOLVE_SUFFIX");
  if (node && suffix && suffix[0]) {
    size_t n = strlen(node), s = strlen(suffix);
    if (n > s && strcmp(node + n - s, suffix) == 0) node = "127.0.0.1";
  }
  return real(node, service, hints, res);
}

__attribute__((destructor)) static void write_stats(void) {
  const char *path = getenv("BENCH_TLS_STATS");
  if (!path || !path[0] || (handshakes == 0 && closed == 0)) return;
  FILE *f = fopen(path, "w");
  if (!f) return;
  fprintf(f, "{\"handshakes\":%llu,\"resumed\":%llu,\"closed\":%llu,\"hist\":[",
          (unsigned long long)handshakes, (unsigned long long)resumed,
          (unsigned long long)closed);
  int first = 1;
  for (unsigned i = 0; i < MAGNITUDES * SUB_BUCKETS; i++) {
    if (hist[i] == 0) continue;
    fprintf(f, "%s[%llu,%llu]", first ? "" : ",", (unsigned long long)bucket_low(i),
            (unsigned long long)hist[i]);
    first = 0;
  }
  fprintf(f, "]}\n");
  fclose(f);
}

/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * powercut_encoder.h - the one writer of powercut traces in C.
 *
 * Both recorders write through it: the in-process recorder (libpowercut-recorder) and
 * the Valgrind tool (ValgrindTool/, GPL), which runs without libc. So this code uses no
 * libc at all: no malloc, no stdio, no string functions. The caller supplies a buffer
 * and a flush callback; records are appended to the buffer and the buffer is handed to
 * the callback whenever it fills (and by pce_finish).
 *
 * It writes either form of Docs/trace-format.md and Docs/binary-format.md:
 *   PCE_BINARY - the binary form (magic, version 1, records, END with the event count);
 *   PCE_TEXT   - the text form `powercut-trace 1`, free-text fields escaped as \xHH
 *                (space, tab, '#', '\', control bytes, DEL and bytes that are not
 *                well-formed UTF-8; a meta value keeps the single spaces between words).
 *
 * Every function returns 0, or -1 once anything failed (a flush callback returned
 * non-zero, or a record broke a rule of the format: see pce_error). After a failure
 * every later call returns -1 and writes nothing more.
 *
 * Threads: pce_thread(w, n) says which thread the following events belong to. The
 * binary form emits a thread record only when the number changes; the text form adds
 * `thread=N` to each event of a thread other than 0.
 */
#ifndef POWERCUT_ENCODER_H
#define POWERCUT_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { PCE_BINARY = 0, PCE_TEXT = 1 };

/* Event codes: the binary form's (and Swift's EventKind raw values). */
enum {
    PCE_STORE = 0,
    PCE_NTSTORE = 1,
    PCE_CLWB = 2,
    PCE_CLFLUSHOPT = 3,
    PCE_CLFLUSH = 4,
    PCE_SFENCE = 5,
    PCE_MFENCE = 6,
    PCE_FENCE = 7,
    PCE_WPQFLUSH = 8,
    PCE_OP_BEGIN = 9,
    PCE_OP_END = 10,
    PCE_DURABLE = 11,
    PCE_MARK = 13,
    PCE_PMEM = 14,
    PCE_PMEM_RELEASE = 15
};

enum { PCE_ADR = 0, PCE_EADR = 1, PCE_WPQ = 2 };
enum { PCE_FLUSHCACHE = 0, PCE_PERSIST = 1, PCE_NONE = 2 };
/* Contract argument of pce_op_begin: add PCE_CONTRACT_EXPLICIT to write `contract=`. */
enum { PCE_CONTRACT_EXPLICIT = 0x100 };

/* Largest store with data=, and longest string (both 1 MiB). */
#define PCE_MAX_STORE (1u << 20)
#define PCE_MAX_STRING (1u << 20)

/* Called with the bytes to write; returns 0, or non-zero to fail the writer. */
typedef int (*pce_flush_fn)(void *ctx, const uint8_t *bytes, size_t n);

typedef struct pce_writer {
    uint8_t *buf;
    size_t cap, len;
    pce_flush_fn flush;
    void *ctx;
    int form;
    int failed;
    int in_events;      /* an event was written: header records are no longer allowed */
    uint32_t thread;    /* the thread of the next event */
    uint32_t written_thread; /* binary: the thread the stream is at */
    uint64_t prev;      /* binary: the running address */
    uint64_t events;    /* numbered records written so far */
    const char *error;  /* static text of the first failure */
} pce_writer;

/* buf must hold at least 64 bytes. Writes nothing yet. */
void pce_init(pce_writer *w, int form, uint8_t *buf, size_t cap, pce_flush_fn flush, void *ctx);
/* The first record: magic + version, or `powercut-trace 1`. */
int pce_begin(pce_writer *w);

/* Header records (before the first event). build_id: hex digits or NULL. */
int pce_line_size(pce_writer *w, uint64_t n);
int pce_domain(pce_writer *w, int domain);
int pce_module(pce_writer *w, const uint8_t *path, size_t path_len, uint64_t base, uint64_t size,
               const char *build_id);
int pce_meta(pce_writer *w, const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len);
int pce_initial(pce_writer *w, uint64_t addr, const uint8_t *data, size_t len);

/* A pmem range: a header record before the first event, a `pmem` event after it.
 * name may be NULL. */
int pce_pmem(pce_writer *w, uint64_t base, uint64_t len, const uint8_t *name, size_t name_len, int is_volatile,
             uint32_t stack);
/* A stack definition (header or between events, before the first event naming it). */
int pce_stack(pce_writer *w, uint32_t id, const uint64_t *frames, size_t n);

/* The thread of the events that follow. */
void pce_thread(pce_writer *w, uint32_t thread);

/* Events. stack 0 = none. data may be NULL (no data=). */
int pce_store(pce_writer *w, int kind, uint64_t addr, uint64_t size, const uint8_t *data, uint32_t stack);
int pce_writeback(pce_writer *w, int kind, uint64_t addr, uint32_t stack);
int pce_fence(pce_writer *w, int kind, uint32_t stack); /* sfence, mfence, fence, wpqflush */
int pce_op_begin(pce_writer *w, uint64_t id, uint64_t dst, uint64_t len, int has_src, uint64_t src,
                 const uint8_t *name, size_t name_len, int contract, uint32_t stack);
int pce_op_end(pce_writer *w, uint64_t id, uint32_t stack);
int pce_durable(pce_writer *w, uint64_t addr, uint64_t len, uint32_t stack);
int pce_mark(pce_writer *w, const uint8_t *name, size_t name_len, uint32_t stack);
int pce_pmem_release(pce_writer *w, uint64_t base, uint64_t len, uint32_t stack);

/* The END record (binary) and a final flush. */
int pce_finish(pce_writer *w);
/* Hands out what is buffered (e.g. before the caller syncs its file). */
int pce_flush(pce_writer *w);

/* Static text of the first failure, or "" when none. */
const char *pce_error(const pce_writer *w);

#ifdef __cplusplus
}
#endif
#endif

/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * The trace encoder (see include/powercut_encoder.h). No libc: every byte is moved by
 * the loops below, so the Valgrind tool can compile this file as it is.
 */
#include "include/powercut_encoder.h"

static const char hexdigits[] = "0123456789abcdef";

/* Binary tags (Docs/binary-format.md). */
enum {
    TAG_LINE_SIZE = 0x01,
    TAG_DOMAIN = 0x02,
    TAG_PMEM = 0x03,
    TAG_MODULE = 0x04,
    TAG_STACK = 0x05,
    TAG_META = 0x06,
    TAG_END = 0x07,
    TAG_INIT = 0x08,
    TAG_THREAD = 0x09,
    TAG_EVENT = 0x20,
    TAG_HAS_STACK = 0x40,
    TAG_HAS_DATA = 0x80
};

static const uint8_t magic[8] = {0x89, 0x50, 0x43, 0x54, 0x0D, 0x0A, 0x1A, 0x0A};

static int fail(pce_writer *w, const char *why) {
    if (!w->failed) {
        w->failed = 1;
        w->error = why;
    }
    return -1;
}

int pce_flush(pce_writer *w) {
    if (w->failed) return -1;
    if (w->len == 0) return 0;
    size_t n = w->len;
    w->len = 0;
    if (w->flush(w->ctx, w->buf, n) != 0) return fail(w, "the flush callback failed (cannot write the trace)");
    return 0;
}

/* Makes room for n contiguous bytes (n <= 64 <= cap). */
static inline int room(pce_writer *w, size_t n) {
    if (w->cap - w->len < n) return pce_flush(w);
    return 0;
}

static inline void put1(pce_writer *w, uint8_t b) { w->buf[w->len++] = b; }

/* An unaligned 8-byte word that may alias anything (the copy below moves store data). */
typedef uint64_t pce_word __attribute__((may_alias, aligned(1)));

/* Appends any number of bytes, flushing as the buffer fills. The copy works on local
 * pointers, 8 bytes at a time: through w->buf a byte store may alias *w, which made
 * the compiler reload w->len for every byte (a store's data was most of a recorder's
 * encoding time). */
static int put(pce_writer *w, const uint8_t *p, size_t n) {
    while (n > 0) {
        if (w->len == w->cap && pce_flush(w) < 0) return -1;
        size_t k = w->cap - w->len;
        if (k > n) k = n;
        uint8_t *d = w->buf + w->len;
        size_t i = 0;
        for (; i + 8 <= k; i += 8) *(pce_word *)(d + i) = *(const pce_word *)(p + i);
        for (; i < k; i++) d[i] = p[i];
        w->len += k;
        p += k;
        n -= k;
    }
    return 0;
}

static int puts_(pce_writer *w, const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return put(w, (const uint8_t *)s, n);
}

/* ---------------------------------------------------------------- binary pieces */

static inline void varint(pce_writer *w, uint64_t v) {
    while (v >= 0x80) {
        put1(w, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    put1(w, (uint8_t)v);
}

static inline void zz(pce_writer *w, uint64_t to, uint64_t from) {
    int64_t d = (int64_t)(to - from);
    varint(w, ((uint64_t)d << 1) ^ (uint64_t)(d >> 63));
}

static int bstr(pce_writer *w, const uint8_t *s, size_t n) {
    if (n > PCE_MAX_STRING) return fail(w, "a string is longer than 1 MiB");
    if (room(w, 10) < 0) return -1;
    varint(w, n);
    return put(w, s, n);
}

/* ---------------------------------------------------------------- text pieces */

static inline void thex(pce_writer *w, uint64_t v) {
    char tmp[16];
    int n = 0;
    do {
        tmp[n++] = hexdigits[v & 15];
        v >>= 4;
    } while (v);
    put1(w, '0');
    put1(w, 'x');
    while (n) put1(w, (uint8_t)tmp[--n]);
}

static inline void tdec(pce_writer *w, uint64_t v) {
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) put1(w, (uint8_t)tmp[--n]);
}

static inline void tword(pce_writer *w, const char *s) {
    while (*s) put1(w, (uint8_t)*s++);
}

/* Length of the well-formed UTF-8 sequence at p (1 to 4), or 0. */
static size_t utf8_len(const uint8_t *p, size_t n) {
    uint8_t c = p[0];
    if (c < 0x80) return 1;
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if (n < len) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return len;
}

/* Writes a free-text field, escaping every byte that would change how the line reads.
 * keep_word_spaces: a space between two other bytes that are not spaces stays (meta). */
static int tescaped(pce_writer *w, const uint8_t *s, size_t n, int keep_word_spaces) {
    if (n > PCE_MAX_STRING) return fail(w, "a string is longer than 1 MiB");
    size_t i = 0;
    while (i < n) {
        if (room(w, 8) < 0) return -1;
        uint8_t c = s[i];
        if (c == ' ' && keep_word_spaces && i > 0 && i + 1 < n && s[i - 1] != ' ' && s[i + 1] != ' ') {
            put1(w, c);
            i++;
            continue;
        }
        size_t k = (c <= 0x20 || c == '#' || c == '\\' || c == 0x7f) ? 0 : utf8_len(s + i, n - i);
        if (k == 0) {
            put1(w, '\\');
            put1(w, 'x');
            put1(w, (uint8_t)hexdigits[c >> 4]);
            put1(w, (uint8_t)hexdigits[c & 15]);
            i++;
            continue;
        }
        for (size_t j = 0; j < k; j++) put1(w, s[i + j]);
        i += k;
    }
    return 0;
}

static int thexbytes(pce_writer *w, const uint8_t *d, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (room(w, 2) < 0) return -1;
        put1(w, (uint8_t)hexdigits[d[i] >> 4]);
        put1(w, (uint8_t)hexdigits[d[i] & 15]);
    }
    return 0;
}

/* ` stack=N thread=N` and the newline of an event line. */
static int tevent_end(pce_writer *w, uint32_t stack) {
    if (room(w, 40) < 0) return -1;
    if (stack) {
        tword(w, " stack=");
        tdec(w, stack);
    }
    if (w->thread) {
        tword(w, " thread=");
        tdec(w, w->thread);
    }
    put1(w, '\n');
    return 0;
}

/* ---------------------------------------------------------------- common */

void pce_init(pce_writer *w, int form, uint8_t *buf, size_t cap, pce_flush_fn flush, void *ctx) {
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->flush = flush;
    w->ctx = ctx;
    w->form = form;
    w->failed = (cap < 64 || !buf || !flush || (form != PCE_BINARY && form != PCE_TEXT));
    w->error = w->failed ? "bad encoder set-up (a buffer of at least 64 bytes, a flush callback, a form)" : 0;
    w->in_events = 0;
    w->thread = 0;
    w->written_thread = 0;
    w->prev = 0;
    w->events = 0;
}

const char *pce_error(const pce_writer *w) { return w->error ? w->error : ""; }

int pce_begin(pce_writer *w) {
    if (w->failed) return -1;
    if (w->form == PCE_TEXT) return puts_(w, "powercut-trace 1\n");
    if (room(w, 16) < 0) return -1;
    for (int i = 0; i < 8; i++) put1(w, magic[i]);
    varint(w, 1);
    return 0;
}

static int header_ok(pce_writer *w) {
    if (w->failed) return -1;
    if (w->in_events) return fail(w, "a header record after the first event");
    return 0;
}

int pce_line_size(pce_writer *w, uint64_t n) {
    if (header_ok(w) < 0) return -1;
    if (room(w, 40) < 0) return -1;
    if (w->form == PCE_TEXT) {
        tword(w, "line-size ");
        tdec(w, n);
        put1(w, '\n');
    } else {
        put1(w, TAG_LINE_SIZE);
        varint(w, n);
    }
    return 0;
}

int pce_domain(pce_writer *w, int domain) {
    if (header_ok(w) < 0) return -1;
    if (domain < PCE_ADR || domain > PCE_WPQ) return fail(w, "unknown domain");
    if (room(w, 16) < 0) return -1;
    if (w->form == PCE_TEXT) {
        tword(w, domain == PCE_ADR ? "domain adr\n" : domain == PCE_EADR ? "domain eadr\n" : "domain wpq\n");
    } else {
        put1(w, TAG_DOMAIN);
        put1(w, (uint8_t)domain);
    }
    return 0;
}

static int hex_only(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F'))) return 0;
    return 1;
}

int pce_module(pce_writer *w, const uint8_t *path, size_t path_len, uint64_t base, uint64_t size,
               const char *build_id) {
    if (header_ok(w) < 0) return -1;
    if (path_len == 0) return fail(w, "a module with an empty path");
    if (build_id && !*build_id) build_id = 0;
    if (build_id && !hex_only(build_id)) return fail(w, "a build-id that is not hex digits");
    if (w->form == PCE_TEXT) {
        if (puts_(w, "module ") < 0 || tescaped(w, path, path_len, 0) < 0 || room(w, 48) < 0) return -1;
        put1(w, ' ');
        thex(w, base);
        put1(w, ' ');
        thex(w, size);
        if (build_id && (puts_(w, " build-id=") < 0 || puts_(w, build_id) < 0)) return -1;
        if (room(w, 1) < 0) return -1;
        put1(w, '\n');
        return 0;
    }
    if (room(w, 1) < 0) return -1;
    put1(w, TAG_MODULE);
    if (bstr(w, path, path_len) < 0 || room(w, 24) < 0) return -1;
    varint(w, base);
    varint(w, size);
    put1(w, build_id ? 1 : 0);
    if (build_id) {
        size_t n = 0;
        while (build_id[n]) n++;
        return bstr(w, (const uint8_t *)build_id, n);
    }
    return 0;
}

int pce_meta(pce_writer *w, const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len) {
    if (header_ok(w) < 0) return -1;
    if (key_len == 0 || key_len > 255) return fail(w, "a meta key of 0 or more than 255 bytes");
    for (size_t i = 0; i < key_len; i++)
        if (key[i] <= 0x20 || key[i] == '#' || key[i] == '\\' || key[i] == 0x7f)
            return fail(w, "a meta key with a space, control byte, '#' or '\\'");
    if (w->form == PCE_TEXT) {
        if (puts_(w, "meta ") < 0 || put(w, key, key_len) < 0) return -1;
        if (value_len) {
            if (room(w, 1) < 0) return -1;
            put1(w, ' ');
            if (tescaped(w, value, value_len, 1) < 0) return -1;
        }
        if (room(w, 1) < 0) return -1;
        put1(w, '\n');
        return 0;
    }
    if (room(w, 1) < 0) return -1;
    put1(w, TAG_META);
    if (bstr(w, key, key_len) < 0) return -1;
    return bstr(w, value, value_len);
}

int pce_initial(pce_writer *w, uint64_t addr, const uint8_t *data, size_t len) {
    if (header_ok(w) < 0) return -1;
    if (len == 0 || len > PCE_MAX_STORE) return fail(w, "an init record of 0 or more than 1 MiB bytes");
    if (w->form == PCE_TEXT) {
        if (room(w, 32) < 0) return -1;
        tword(w, "init ");
        thex(w, addr);
        tword(w, " data=");
        if (thexbytes(w, data, len) < 0 || room(w, 1) < 0) return -1;
        put1(w, '\n');
        return 0;
    }
    if (room(w, 24) < 0) return -1;
    put1(w, TAG_INIT);
    varint(w, addr);
    varint(w, len);
    return put(w, data, len);
}

int pce_stack(pce_writer *w, uint32_t id, const uint64_t *frames, size_t n) {
    if (w->failed) return -1;
    if (id == 0 || n == 0) return fail(w, "a stack with ID 0 or no frames");
    if (w->form == PCE_TEXT) {
        if (room(w, 20) < 0) return -1;
        tword(w, "stack ");
        tdec(w, id);
        for (size_t i = 0; i < n; i++) {
            if (room(w, 20) < 0) return -1;
            put1(w, ' ');
            thex(w, frames[i]);
        }
        if (room(w, 1) < 0) return -1;
        put1(w, '\n');
        return 0;
    }
    if (room(w, 24) < 0) return -1;
    put1(w, TAG_STACK);
    varint(w, id);
    varint(w, n);
    uint64_t last = 0;
    for (size_t i = 0; i < n; i++) {
        if (room(w, 10) < 0) return -1;
        zz(w, frames[i], last);
        last = frames[i];
    }
    return 0;
}

void pce_thread(pce_writer *w, uint32_t thread) { w->thread = thread; }

/* Starts a binary event: the thread record if the thread changed, then the tag. Room
 * for 64 bytes is made first, so fixed fields may follow with put1/varint. */
static inline int bevent(pce_writer *w, int kind, uint32_t stack, int has_data) {
    if (room(w, 64) < 0) return -1;
    if (w->thread != w->written_thread) {
        put1(w, TAG_THREAD);
        varint(w, w->thread);
        w->written_thread = w->thread;
    }
    put1(w, (uint8_t)(TAG_EVENT | kind | (stack ? TAG_HAS_STACK : 0) | (has_data ? TAG_HAS_DATA : 0)));
    return 0;
}

static inline int event_ok(pce_writer *w) {
    if (w->failed) return -1;
    w->in_events = 1;
    w->events++;
    return 0;
}

int pce_pmem(pce_writer *w, uint64_t base, uint64_t len, const uint8_t *name, size_t name_len, int is_volatile,
             uint32_t stack) {
    if (w->failed) return -1;
    if (len == 0) return fail(w, "a pmem range of length 0");
    if (base + (len - 1) < base) return fail(w, "a pmem range past the end of the address space");
    int header = !w->in_events;
    if (!header && event_ok(w) < 0) return -1;
    if (w->form == PCE_TEXT) {
        if (room(w, 48) < 0) return -1;
        tword(w, "pmem ");
        thex(w, base);
        put1(w, ' ');
        thex(w, len);
        if (name && (puts_(w, " name=") < 0 || tescaped(w, name, name_len, 0) < 0)) return -1;
        if (is_volatile && puts_(w, " volatile") < 0) return -1;
        if (header) {
            if (room(w, 1) < 0) return -1;
            put1(w, '\n');
            return 0;
        }
        return tevent_end(w, stack);
    }
    if (header) {
        if (room(w, 24) < 0) return -1;
        put1(w, TAG_PMEM);
    } else if (bevent(w, PCE_PMEM, stack, 0) < 0) return -1;
    varint(w, base);
    varint(w, len);
    put1(w, (uint8_t)((is_volatile ? 1 : 0) | (name ? 2 : 0)));
    if (name && bstr(w, name, name_len) < 0) return -1;
    if (!header && stack) {
        if (room(w, 10) < 0) return -1;
        varint(w, stack);
    }
    return 0;
}

static inline void bstack(pce_writer *w, uint32_t stack) {
    if (stack) varint(w, stack);
}

int pce_store(pce_writer *w, int kind, uint64_t addr, uint64_t size, const uint8_t *data, uint32_t stack) {
    if (event_ok(w) < 0) return -1;
    if (kind != PCE_STORE && kind != PCE_NTSTORE) return fail(w, "pce_store of a kind that is not a store");
    if (size == 0 || size > PCE_MAX_STORE) return fail(w, "a store of 0 or more than 1 MiB bytes");
    if (addr + (size - 1) < addr) return fail(w, "a store past the end of the address space");
    if (w->form == PCE_TEXT) {
        if (room(w, 64) < 0) return -1;
        tword(w, kind == PCE_STORE ? "store " : "ntstore ");
        thex(w, addr);
        put1(w, ' ');
        tdec(w, size);
        if (data) {
            tword(w, " data=");
            if (thexbytes(w, data, size) < 0) return -1;
        }
        return tevent_end(w, stack);
    }
    if (bevent(w, kind, stack, data != 0) < 0) return -1;
    zz(w, addr, w->prev);
    varint(w, size);
    w->prev = addr + size;
    bstack(w, stack);
    if (data) return put(w, data, size);
    return 0;
}

int pce_writeback(pce_writer *w, int kind, uint64_t addr, uint32_t stack) {
    if (event_ok(w) < 0) return -1;
    if (kind != PCE_CLWB && kind != PCE_CLFLUSHOPT && kind != PCE_CLFLUSH)
        return fail(w, "pce_writeback of a kind that is not a write-back");
    if (w->form == PCE_TEXT) {
        if (room(w, 40) < 0) return -1;
        tword(w, kind == PCE_CLWB ? "clwb " : kind == PCE_CLFLUSHOPT ? "clflushopt " : "clflush ");
        thex(w, addr);
        return tevent_end(w, stack);
    }
    if (bevent(w, kind, stack, 0) < 0) return -1;
    zz(w, addr, w->prev);
    w->prev = addr;
    bstack(w, stack);
    return 0;
}

int pce_fence(pce_writer *w, int kind, uint32_t stack) {
    if (event_ok(w) < 0) return -1;
    const char *word = kind == PCE_SFENCE ? "sfence" : kind == PCE_MFENCE ? "mfence" : kind == PCE_FENCE ? "fence"
                     : kind == PCE_WPQFLUSH ? "wpqflush" : 0;
    if (!word) return fail(w, "pce_fence of a kind that is not a fence");
    if (w->form == PCE_TEXT) {
        if (room(w, 10) < 0) return -1;
        tword(w, word);
        return tevent_end(w, stack);
    }
    if (bevent(w, kind, stack, 0) < 0) return -1;
    bstack(w, stack);
    return 0;
}

static const char *contract_word(int c) { return c == PCE_PERSIST ? "persist" : c == PCE_NONE ? "none" : "flushcache"; }

int pce_op_begin(pce_writer *w, uint64_t id, uint64_t dst, uint64_t len, int has_src, uint64_t src,
                 const uint8_t *name, size_t name_len, int contract, uint32_t stack) {
    if (event_ok(w) < 0) return -1;
    int explicit_contract = (contract & PCE_CONTRACT_EXPLICIT) != 0;
    contract &= 0xff;
    if (contract < PCE_FLUSHCACHE || contract > PCE_NONE) return fail(w, "an unknown contract");
    if (name && name_len == 0) return fail(w, "an op with an empty name");
    if (w->form == PCE_TEXT) {
        if (room(w, 64) < 0) return -1;
        tword(w, "op ");
        tdec(w, id);
        tword(w, " begin dst=");
        thex(w, dst);
        tword(w, " len=");
        tdec(w, len);
        if (has_src) {
            if (room(w, 24) < 0) return -1;
            tword(w, " src=");
            thex(w, src);
        }
        if (name && (puts_(w, " name=") < 0 || tescaped(w, name, name_len, 0) < 0)) return -1;
        if (explicit_contract && (puts_(w, " contract=") < 0 || puts_(w, contract_word(contract)) < 0)) return -1;
        return tevent_end(w, stack);
    }
    if (bevent(w, PCE_OP_BEGIN, stack, 0) < 0) return -1;
    varint(w, id);
    zz(w, dst, w->prev);
    varint(w, len);
    put1(w, (uint8_t)((has_src ? 1 : 0) | (name ? 2 : 0) | (explicit_contract ? 4 : 0) | (contract << 3)));
    if (has_src) zz(w, src, dst);
    w->prev = dst;
    if (name && bstr(w, name, name_len) < 0) return -1;
    if (stack) {
        if (room(w, 10) < 0) return -1;
        varint(w, stack);
    }
    return 0;
}

int pce_op_end(pce_writer *w, uint64_t id, uint32_t stack) {
    if (event_ok(w) < 0) return -1;
    if (w->form == PCE_TEXT) {
        if (room(w, 40) < 0) return -1;
        tword(w, "op ");
        tdec(w, id);
        tword(w, " end");
        return tevent_end(w, stack);
    }
    if (bevent(w, PCE_OP_END, stack, 0) < 0) return -1;
    varint(w, id);
    bstack(w, stack);
    return 0;
}

int pce_durable(pce_writer *w, uint64_t addr, uint64_t len, uint32_t stack) {
    if (event_ok(w) < 0) return -1;
    if (len == 0) return fail(w, "a durable assertion of length 0");
    if (w->form == PCE_TEXT) {
        if (room(w, 48) < 0) return -1;
        tword(w, "durable ");
        thex(w, addr);
        put1(w, ' ');
        tdec(w, len);
        return tevent_end(w, stack);
    }
    if (bevent(w, PCE_DURABLE, stack, 0) < 0) return -1;
    zz(w, addr, w->prev);
    varint(w, len);
    w->prev = addr;
    bstack(w, stack);
    return 0;
}

int pce_mark(pce_writer *w, const uint8_t *name, size_t name_len, uint32_t stack) {
    if (event_ok(w) < 0) return -1;
    if (name_len == 0) return fail(w, "a mark with an empty name");
    if (w->form == PCE_TEXT) {
        if (puts_(w, "mark ") < 0 || tescaped(w, name, name_len, 0) < 0) return -1;
        return tevent_end(w, stack);
    }
    if (bevent(w, PCE_MARK, stack, 0) < 0) return -1;
    if (bstr(w, name, name_len) < 0) return -1;
    if (stack) {
        if (room(w, 10) < 0) return -1;
        varint(w, stack);
    }
    return 0;
}

int pce_pmem_release(pce_writer *w, uint64_t base, uint64_t len, uint32_t stack) {
    if (event_ok(w) < 0) return -1;
    if (len == 0) return fail(w, "a pmem-release of length 0");
    if (w->form == PCE_TEXT) {
        if (room(w, 56) < 0) return -1;
        tword(w, "pmem-release ");
        thex(w, base);
        put1(w, ' ');
        thex(w, len);
        return tevent_end(w, stack);
    }
    if (bevent(w, PCE_PMEM_RELEASE, stack, 0) < 0) return -1;
    varint(w, base);
    varint(w, len);
    bstack(w, stack);
    return 0;
}

int pce_finish(pce_writer *w) {
    if (w->failed) return -1;
    if (w->form == PCE_BINARY) {
        if (room(w, 16) < 0) return -1;
        put1(w, TAG_END);
        varint(w, w->events);
    }
    return pce_flush(w);
}

/*
 * powercut_recorder.h - the C core of the powercut recorder, as the Swift wrapper uses it.
 *
 * The recorder single-steps one call of a copy routine in this process (x86-64 Linux):
 * it sets the trap flag (EFLAGS.TF) right before the call, and a SIGTRAP handler decodes
 * every instruction before it executes. Stores, non-temporal stores, write-backs and
 * fences that touch registered persistent memory ("pmem") become events, each with the
 * interned call stack of the instruction. See Docs of the trace format for what each
 * event means.
 *
 * Threads: the recorder is single-threaded. It records the calling thread only (TF is
 * per thread); other threads run unrecorded. Call these functions from one thread at a
 * time. While a call is recorded, the process-wide SIGTRAP disposition is the
 * recorder's; the previous one is restored when the call returns.
 *
 * Errors: functions returning int give 0 on success and -1 on error; pc_error() then
 * has a one-line message. Messages stay until the next failing call or pc_reset().
 */
#ifndef POWERCUT_RECORDER_H
#define POWERCUT_RECORDER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Event kinds. PC_OP_BEGIN/PC_OP_END are markers added by pc_op_begin/pc_op_end. */
typedef enum {
    PC_STORE = 1,
    PC_NTSTORE,
    PC_CLWB,
    PC_CLFLUSHOPT,
    PC_CLFLUSH,
    PC_SFENCE,
    PC_MFENCE,
    PC_FENCE,
    PC_WPQFLUSH,
    PC_OP_BEGIN,
    PC_OP_END
} pc_kind;

typedef enum { PC_CONTRACT_FLUSHCACHE = 0, PC_CONTRACT_PERSIST, PC_CONTRACT_NONE } pc_contract;

/* One event. For PC_STORE/PC_NTSTORE: addr, size (bytes). For write-backs: addr (the
 * instruction's effective address, not aligned), size 0. Fences: addr = size = 0.
 * PC_OP_BEGIN: addr = dst, size = len, contract set. data_offset: offset of the bytes
 * written in pc_data() (size bytes), UINT64_MAX if not captured. stack: 0 = none, else
 * an id for pc_stack_frames. op_id: the op the event belongs to (0 = outside any op). */
typedef struct {
    uint8_t kind;       /* pc_kind */
    uint8_t contract;   /* pc_contract, PC_OP_BEGIN only */
    uint16_t reserved;
    uint32_t stack;
    uint64_t addr;
    uint64_t size;
    uint64_t data_offset;
    uint64_t op_id;
} pc_event;

/* Version of this recorder, as written in `meta recorder powercut-c VERSION`. */
const char *pc_version(void);

/* Maps the buffers and opens the disassembler. Idempotent. Installs no handler. */
int pc_init(void);
/* Drops events, data, stacks, pmem ranges, ops and the error. Keeps budget/capture. */
void pc_reset(void);

/* Registers [base, base+len) as pmem. 0 ok; -1 for len 0, wrap-around or overlap. */
int pc_add_pmem(uint64_t base, uint64_t len, int is_volatile);
size_t pc_pmem_count(void);
/* Range i (0-based, in registration order); returns 0 or -1 if out of range. */
int pc_pmem_range(size_t i, uint64_t *base, uint64_t *len, int *is_volatile);

/* Traps allowed per recorded call (0 = unlimited, the default). When exceeded the
 * call is abandoned (siglongjmp out of the routine) with "instruction budget of N
 * exceeded": the routine's state is lost, so use it in throw-away workers. */
void pc_set_budget(uint64_t max_instructions_per_call);
/* When on, the bytes each store/ntstore wrote are copied into pc_data(). */
void pc_set_capture_data(int on);

/* Op markers. pc_op_begin appends an op-begin event with a new op id (1, 2, ...), which
 * it returns (or -1: nested op, a range past the end of memory; len 0 is allowed). pc_op_begin_named also records a name
 * (non-empty, no whitespace, '#' or '='; NULL for none). pc_op_end returns 0 or -1. */
int pc_op_begin(uint64_t dst, uint64_t len, pc_contract c);
int pc_op_begin_named(uint64_t dst, uint64_t len, const char *name, pc_contract c);
int pc_op_end(void);
/* Name of op `op_id`, or NULL. */
const char *pc_op_name(uint64_t op_id);

/* Single-steps one call fn(dst, src, n) / fn(ctx). 0 ok, -1 error (pc_error): an
 * instruction that may write pmem and cannot be decoded, the budget, a full buffer.
 * Events recorded before an error stay. */
typedef void (*pc_fn3)(void *, const void *, size_t);
int pc_record_call3(pc_fn3 fn, void *dst, const void *src, size_t n);
typedef void (*pc_fn_ctx)(void *ctx);
int pc_record_ctx(pc_fn_ctx fn, void *ctx);

/* Appends an event without executing anything (for markers such as PC_WPQFLUSH from a
 * harness that knows it wrote a flush hint). stack 0. */
int pc_append_event(pc_kind kind, uint64_t addr, uint64_t size);

size_t pc_event_count(void);
const pc_event *pc_events(void);
const uint8_t *pc_data(void);
size_t pc_data_size(void);

/* Interned call stacks: ids 1..pc_stack_count(), innermost frame first (frame 0 is the
 * instruction's own address, then return addresses), at most 32 frames. */
size_t pc_stack_count(void);
size_t pc_stack_frames(uint32_t id, const uint64_t **frames);

/* Module map of the process (dl_iterate_phdr), refreshed by pc_collect_modules(). */
int pc_collect_modules(void);
size_t pc_module_count(void);
const char *pc_module_path(size_t i);
uint64_t pc_module_base(size_t i);
uint64_t pc_module_size(size_t i);
const char *pc_module_build_id(size_t i); /* lower-case hex, "" if none */

/* Instructions seen since pc_init, for benchmarks: each was decoded before it ran. */
uint64_t pc_instructions_stepped(void);

/* Block stepping (on by default; POWERCUT_BLOCK_STEP=0 in the environment turns it
 * off): a run of instructions that make no event, do not branch and do not depend on
 * their address runs natively from a copy, one trap for the run. pc_blocks_run gives
 * the number of runs and, in *instructions, the instructions they held. */
void pc_set_block_stepping(int on);
uint64_t pc_blocks_run(uint64_t *instructions);
/* Last error message, one line, "" if none. */
const char *pc_error(void);

/* What kind of error the last message is, so that callers need not match its text. */
typedef enum {
    PC_ERR_NONE = 0,
    PC_ERR_OTHER,        /* a bad argument or a failure of the recorder's setup */
    PC_ERR_BUDGET,       /* the instruction budget ran out */
    PC_ERR_UNRECORDABLE, /* an instruction that may write pmem or order stores cannot be placed */
    PC_ERR_CAPACITY,     /* an event, data or stack buffer is full */
    PC_ERR_EXIT,         /* the routine called exit/exit_group during the call */
    PC_ERR_SIGNALS       /* the routine took SIGTRAP away (disposition, mask, a breakpoint) or
                            installed a signal handler during the call */
} pc_error_kind_t;
int pc_error_kind(void);

/* Signal handlers that ran (stepped, their stores recorded) during the last call. */
uint64_t pc_handlers_stepped(void);

#ifdef __cplusplus
}
#endif
#endif

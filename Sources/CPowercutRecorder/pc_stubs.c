/*
 * The recorder needs x86-64 Linux (EFLAGS.TF single-stepping, the signal frame's
 * register layout, capstone, libunwind). Elsewhere every entry point fails cleanly so
 * that the package still builds.
 */
#if !(defined(__linux__) && defined(__x86_64__))
#include "include/powercut.h"
#include "include/powercut_recorder.h"

#define PC_UNSUPPORTED "the powercut recorder needs x86-64 Linux"

const char *pc_version(void) { return "0.1.0"; }
int pc_init(void) { return -1; }
void pc_reset(void) {}
int pc_add_pmem(uint64_t base, uint64_t len, int is_volatile) { (void)base; (void)len; (void)is_volatile; return -1; }
size_t pc_pmem_count(void) { return 0; }
int pc_pmem_range(size_t i, uint64_t *base, uint64_t *len, int *is_volatile) {
    (void)i; (void)base; (void)len; (void)is_volatile;
    return -1;
}
void pc_set_budget(uint64_t n) { (void)n; }
void pc_set_capture_data(int on) { (void)on; }
int pc_op_begin(uint64_t dst, uint64_t len, pc_contract c) { (void)dst; (void)len; (void)c; return -1; }
int pc_op_begin_named(uint64_t dst, uint64_t len, const char *name, pc_contract c) {
    (void)dst; (void)len; (void)name; (void)c;
    return -1;
}
int pc_op_end(void) { return -1; }
const char *pc_op_name(uint64_t op_id) { (void)op_id; return 0; }
int pc_record_call3(pc_fn3 fn, void *dst, const void *src, size_t n) { (void)fn; (void)dst; (void)src; (void)n; return -1; }
int pc_record_ctx(pc_fn_ctx fn, void *ctx) { (void)fn; (void)ctx; return -1; }
int pc_append_event(pc_kind kind, uint64_t addr, uint64_t size) { (void)kind; (void)addr; (void)size; return -1; }
size_t pc_event_count(void) { return 0; }
const pc_event *pc_events(void) { return 0; }
const uint8_t *pc_data(void) { return 0; }
size_t pc_data_size(void) { return 0; }
size_t pc_stack_count(void) { return 0; }
size_t pc_stack_frames(uint32_t id, const uint64_t **frames) { (void)id; if (frames) *frames = 0; return 0; }
int pc_collect_modules(void) { return -1; }
size_t pc_module_count(void) { return 0; }
const char *pc_module_path(size_t i) { (void)i; return 0; }
uint64_t pc_module_base(size_t i) { (void)i; return 0; }
uint64_t pc_module_size(size_t i) { (void)i; return 0; }
const char *pc_module_build_id(size_t i) { (void)i; return 0; }
uint64_t pc_instructions_stepped(void) { return 0; }
const char *pc_error(void) { return PC_UNSUPPORTED; }
int pc_error_kind(void) { return PC_ERR_OTHER; }
void pc_set_block_stepping(int on) { (void)on; }
uint64_t pc_blocks_run(uint64_t *instructions) { if (instructions) *instructions = 0; return 0; }
uint64_t pc_handlers_stepped(void) { return 0; }

int powercut_pmem(void *addr, size_t len) { (void)addr; (void)len; return -1; }
int powercut_pmem_volatile(void *addr, size_t len) { (void)addr; (void)len; return -1; }
int powercut_op_begin(void *dst, size_t len, const char *name, int contract) {
    (void)dst; (void)len; (void)name; (void)contract;
    return -1;
}
int powercut_op_end(void) { return -1; }
int powercut_record_call(void (*fn)(void *, const void *, size_t), void *dst, const void *src, size_t n) {
    (void)fn; (void)dst; (void)src; (void)n;
    return -1;
}
int powercut_start(void) { return -1; }
int powercut_stop(void) { return -1; }
int powercut_drain(void) { return -1; }
void powercut_set_budget(uint64_t max_instructions) { (void)max_instructions; }
void powercut_capture_data(int on) { (void)on; }
int powercut_write_trace(const char *path) { (void)path; return -1; }
void powercut_reset(void) {}
const char *powercut_error(void) { return PC_UNSUPPORTED; }
#else
typedef int pc_stubs_unused; /* not empty: ISO C wants a declaration */
#endif

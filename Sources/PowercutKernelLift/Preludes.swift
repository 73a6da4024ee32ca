/// The write-back instruction the shim's `clwb()` executes.
public enum FlushInstruction: String, Sendable, CaseIterable {
    case clwb, clflushopt, clflush

    var define: String { "POWERCUT_FLUSH_" + rawValue.uppercased() }
}

/// The C prelude: what a kernel header would have given the tree's C file, reduced to
/// what a user-space build needs. Every line of it is the shim's code, not the tree's.
enum CPrelude {
    static let lineSize = 64

    static let text = """
    /* powercut kernel-lift: C prelude. This is the SHIM, not the tree's code: kernel
     * types and attributes, a few macros, no-op user-access guards, and the three
     * choices the lift makes for the tree (memcpy, the write-back instruction, the
     * cache line size). Exception tables are dropped: fault paths compile but never run. */
    #define __KERNEL__ 1
    #define CONFIG_X86_64 1
    #define CONFIG_64BIT 1
    #define CONFIG_ARCH_HAS_UACCESS_FLUSHCACHE 1
    #define NULL ((void *)0)
    typedef __SIZE_TYPE__ size_t;
    typedef __PTRDIFF_TYPE__ ssize_t;
    typedef __UINTPTR_TYPE__ uintptr_t;
    typedef __UINT8_TYPE__ u8;   typedef __INT8_TYPE__ s8;
    typedef __UINT16_TYPE__ u16; typedef __INT16_TYPE__ s16;
    typedef __UINT32_TYPE__ u32; typedef __INT32_TYPE__ s32;
    typedef __UINT64_TYPE__ u64; typedef __INT64_TYPE__ s64;
    typedef u8 __u8; typedef u16 __u16; typedef u32 __u32; typedef u64 __u64;
    typedef _Bool bool;
    #define true 1
    #define false 0
    struct page;
    #define __user
    #define __kernel
    #define __iomem
    #define __force
    #define __must_check
    #define __visible
    #define notrace
    #define noinstr
    #define __always_inline inline __attribute__((__always_inline__))
    #define noinline __attribute__((__noinline__))
    #define likely(x) __builtin_expect(!!(x), 1)
    #define unlikely(x) __builtin_expect(!!(x), 0)
    #define barrier() __asm__ __volatile__("" ::: "memory")
    #define EXPORT_SYMBOL(sym)
    #define EXPORT_SYMBOL_GPL(sym)
    #define EXPORT_SYMBOL_NS(sym, ns)
    #define EXPORT_SYMBOL_NS_GPL(sym, ns)
    #define __ALIGN_KERNEL_MASK(x, mask) (((x) + (mask)) & ~(mask))
    #define ALIGN(x, a) __ALIGN_KERNEL_MASK(x, (__typeof__(x))(a) - 1)
    #define IS_ALIGNED(x, a) (((x) & ((__typeof__(x))(a) - 1)) == 0)
    #define min_t(type, x, y) ({ type __x = (x); type __y = (y); __x < __y ? __x : __y; })
    #define max_t(type, x, y) ({ type __x = (x); type __y = (y); __x > __y ? __x : __y; })
    /* User-access guards: no-ops; access_ok is true in its 2- and 3-argument forms. */
    #define stac() do { } while (0)
    #define clac() do { } while (0)
    #define might_fault() do { } while (0)
    #define might_sleep() do { } while (0)
    #define access_ok(...) 1
    #define __get_user_nocheck(x, ptr, size) ({ (x) = *(ptr); 0; })
    #define __put_user_nocheck(x, ptr, size) ({ *(ptr) = (x); 0; })
    #define kmap_atomic(page) ((char *)(page))
    #define kunmap_atomic(addr) ((void)(addr))
    #define kmap_local_page(page) ((char *)(page))
    #define kunmap_local(addr) ((void)(addr))
    /* Exception tables: dropped. */
    #define _ASM_EXTABLE(...) ""
    #define _ASM_EXTABLE_UA(...) ""
    #define _ASM_EXTABLE_CPY(...) ""
    #define _ASM_EXTABLE_FAULT(...) ""
    #define _ASM_EXTABLE_EX(...) ""
    #define _ASM_EXTABLE_TYPE(...) ""
    #define _ASM_EXTABLE_TYPE_REG(...) ""
    /* The cache line size: 64 bytes. */
    struct cpuinfo_x86 { u16 x86_clflush_size; };
    static struct cpuinfo_x86 boot_cpu_data = { .x86_clflush_size = 64 };
    /* clwb(): the write-back instruction chosen for this lift (POWERCUT_FLUSH_*). */
    static __always_inline void clwb(volatile void *p)
    {
    #if defined(POWERCUT_FLUSH_CLFLUSH)
    \t__asm__ __volatile__("clflush %0" : "+m" (*(volatile char *)p));
    #elif defined(POWERCUT_FLUSH_CLFLUSHOPT)
    \t__asm__ __volatile__("clflushopt %0" : "+m" (*(volatile char *)p));
    #else
    \t__asm__ __volatile__("clwb %0" : "+m" (*(volatile char *)p));
    #endif
    }
    /* memcpy: rep movsb (cached stores), so the copy is one known instruction. */
    static __always_inline void *powercut_memcpy(void *dst, const void *src, size_t n)
    {
    \tvoid *ret = dst;
    \t__asm__ __volatile__("rep movsb" : "+D" (dst), "+S" (src), "+c" (n) : : "memory");
    \treturn ret;
    }
    #define memcpy(d, s, n) powercut_memcpy((d), (s), (n))
    /* The non-temporal core, unprototyped: the tree calls it with 3 or 4 arguments. */
    long __copy_user_nocache();
    long copy_to_nontemporal();
    void memcpy_flushcache(void *, const void *, size_t);
    unsigned long __memcpy_mcsafe();

    """
}

/// The assembler prelude: the kernel's assembler vocabulary, old and new, for the
/// tree's .S file. The shim's code.
enum AssemblerPrelude {
    /// Assembler macros (.macro) the prelude defines.
    static let macros: Set<String> = ["ALTERNATIVE", "ALTERNATIVE_2", "ALTERNATIVE_3"]

    static let text = """
    /* powercut kernel-lift: assembler prelude. This is the SHIM, not the tree's code:
     * function markers (SYM_FUNC_* and ENTRY/ENDPROC), user-access toggles as nothing,
     * RET as a plain ret, exception tables dropped, ALTERNATIVE keeping the original
     * instruction. Functions are hidden: only the lift's wrappers are exported. */
    #define __ASSEMBLY__ 1
    #define ALIGN .p2align 4, 0x90
    #define SYM_FUNC_START(name) .globl name; .hidden name; .type name, @function; .p2align 4, 0x90; name:
    #define SYM_FUNC_START_NOALIGN(name) .globl name; .hidden name; .type name, @function; name:
    #define SYM_FUNC_START_WEAK(name) .weak name; .hidden name; .type name, @function; .p2align 4, 0x90; name:
    #define SYM_FUNC_START_LOCAL(name) .type name, @function; .p2align 4, 0x90; name:
    #define SYM_TYPED_FUNC_START(name) SYM_FUNC_START(name)
    #define SYM_FUNC_END(name) .size name, . - name
    #define SYM_FUNC_ALIAS(alias, name) .globl alias; .hidden alias; .set alias, name
    #define SYM_CODE_START(name) .globl name; .hidden name; name:
    #define SYM_CODE_START_LOCAL(name) name:
    #define SYM_CODE_END(name)
    #define ENTRY(name) .globl name; .hidden name; .type name, @function; .p2align 4, 0x90; name:
    #define GLOBAL(name) .globl name; .hidden name; name:
    #define ENDPROC(name) .size name, . - name
    #define END(name)
    #define EXPORT_SYMBOL(name)
    #define EXPORT_SYMBOL_GPL(name)
    #define ASM_STAC
    #define ASM_CLAC
    #define RET ret
    #define ANNOTATE_NOENDBR
    #define ANNOTATE_RETPOLINE_SAFE
    #define ANNOTATE_UNRET_SAFE
    #define ENDBR
    #define X86_TRAP_GP 13
    #define X86_TRAP_PF 14
    #define X86_TRAP_MC 18
    #define _ASM_EXTABLE(...)
    #define _ASM_EXTABLE_UA(...)
    #define _ASM_EXTABLE_CPY(...)
    #define _ASM_EXTABLE_FAULT(...)
    #define _ASM_EXTABLE_EX(...)
    #define _ASM_EXTABLE_TYPE(...)
    #define _ASM_EXTABLE_TYPE_REG(...)
    .macro ALTERNATIVE oldinstr:req, newinstr, feature
    \t\\oldinstr
    .endm
    .macro ALTERNATIVE_2 oldinstr:req, newinstr1, feature1, newinstr2, feature2
    \t\\oldinstr
    .endm
    .macro ALTERNATIVE_3 oldinstr:req, newinstr1, feature1, newinstr2, feature2, newinstr3, feature3
    \t\\oldinstr
    .endm

    """
}

import Foundation

/// Small fake Linux trees, written for these tests (no kernel code): files at the
/// kernel's paths, using the kernel's macro vocabulary, behaving as the flushcache
/// routines are described in Docs/kernel-lift.md. Each variant exercises one layout
/// difference kernel-lift must read off the files.
struct FakeTree {
    enum Core { case nocache2016, nocache2023 }
    enum WriteBack { case firstLine, everyLine }

    var core: Core
    var writeBack: WriteBack
    /// ENTRY/ENDPROC (older) or SYM_FUNC_START/SYM_FUNC_END.
    var entryMacro = true
    /// `RET` (macro) or `ret`.
    var retMacro = false
    /// access_ok(VERIFY_WRITE, p, n) or access_ok(p, n).
    var accessOkArguments = 3
    /// ALIGN_DESTINATION in arch/x86/include/asm/asm.h rather than in the .S file.
    var alignMacroInHeader = false
    /// `memcpy_flushcache` (older) or `__memcpy_flushcache`.
    var memcpyName = "__memcpy_flushcache"

    /// The 2017 bug: 2016 core, ENTRY/ret, 3-argument access_ok, ALIGN_DESTINATION in a
    /// header, short copies written back on their first line only.
    static let bug2017 = FakeTree(core: .nocache2016, writeBack: .firstLine, entryMacro: true, retMacro: false,
                                  accessOkArguments: 3, alignMacroInHeader: true, memcpyName: "memcpy_flushcache")
    /// The 2020 fix: the same core, SYM_FUNC_START/RET, 2-argument access_ok.
    static let fix2020 = FakeTree(core: .nocache2016, writeBack: .everyLine, entryMacro: false, retMacro: true,
                                  accessOkArguments: 2)
    /// The 2023 core in its own file, called with three arguments.
    static let core2023 = FakeTree(core: .nocache2023, writeBack: .everyLine, entryMacro: false, retMacro: true,
                                   accessOkArguments: 2)

    var corePath: String {
        core == .nocache2016 ? "arch/x86/lib/copy_user_64.S" : "arch/x86/lib/copy_user_uncached_64.S"
    }

    /// Writes the tree under `root`.
    func write(to root: String) throws {
        try put(root, "arch/x86/lib/usercopy_64.c", cFile)
        try put(root, corePath, core == .nocache2016 ? core2016File : core2023File)
        if alignMacroInHeader {
            try put(root, "arch/x86/include/asm/asm.h", "/* fake tree for powercut tests */\n#ifdef __ASSEMBLY__\n" + alignDestination + "#endif\n")
        }
        // Something a real tree has and the lift must not need.
        try put(root, "Makefile", "# fake tree for powercut tests\n")
    }

    private func put(_ root: String, _ rel: String, _ text: String) throws {
        let url = URL(fileURLWithPath: root).appendingPathComponent(rel)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    // MARK: usercopy_64.c

    var cFile: String {
        let access = accessOkArguments == 3 ? "access_ok(VERIFY_WRITE, to, n)" : "access_ok(to, n)"
        let coreCall = core == .nocache2016 ? "__copy_user_nocache(dst, src, size, 0)" : "__copy_user_nocache(dst, src, size)"
        let shortWriteBack = writeBack == .firstLine ? "write_back_lines(dst, 1);" : "write_back_lines(dst, size);"
        return """
        // Fake tree for powercut's tests: not kernel code, laid out as arch/x86/lib/usercopy_64.c.
        #include <linux/export.h>
        #include <linux/uaccess.h>
        #include <asm/special_insns.h>

        unsigned long fake_zero_user(void __user *to, unsigned long n)
        {
        \tmight_fault();
        \tif (!\(access))
        \t\treturn n;
        \tstac();
        \tclac();
        \treturn 0;
        }
        EXPORT_SYMBOL(fake_zero_user);

        #ifdef CONFIG_ARCH_HAS_UACCESS_FLUSHCACHE
        /* Write back every cache line that [addr, addr + len) touches. */
        static void write_back_lines(void *addr, size_t len)
        {
        \tunsigned long line = boot_cpu_data.x86_clflush_size;
        \tunsigned long at = (unsigned long)addr & ~(line - 1);
        \tunsigned long end = (unsigned long)addr + len;

        \twhile (at < end) {
        \t\tclwb((void *)at);
        \t\tat += line;
        \t}
        }

        long __copy_user_flushcache(void *dst, const void __user *src, unsigned size)
        {
        \tunsigned long start = (unsigned long)dst, done;
        \tlong left;

        \tstac();
        \tleft = \(coreCall);
        \tclac();

        \tif (size < 8) {
        \t\tif (!IS_ALIGNED(start, 4) || size != 4)
        \t\t\t\(shortWriteBack)
        \t} else {
        \t\tdone = 0;
        \t\tif (!IS_ALIGNED(start, 8)) {
        \t\t\tdone = ALIGN(start, boot_cpu_data.x86_clflush_size) - start;
        \t\t\twrite_back_lines(dst, 1);
        \t\t}
        \t\tif (size > done && !IS_ALIGNED(size - done, 8))
        \t\t\twrite_back_lines(dst + size - 1, 1);
        \t}
        \treturn left;
        }

        static inline void stream8(unsigned long to, unsigned long from)
        {
        \tasm volatile("movq (%1), %%rax\\n\\tmovnti %%rax, (%0)" : : "r" (to), "r" (from) : "rax", "memory");
        }

        static inline void stream4(unsigned long to, unsigned long from)
        {
        \tasm volatile("movl (%1), %%eax\\n\\tmovnti %%eax, (%0)" : : "r" (to), "r" (from) : "rax", "memory");
        }

        void \(memcpyName)(void *dst, const void *src, size_t size)
        {
        \tunsigned long to = (unsigned long)dst, from = (unsigned long)src;

        \tif (!IS_ALIGNED(to, 8)) {
        \t\tsize_t head = min_t(size_t, size, ALIGN(to, 8) - to);

        \t\tmemcpy((void *)to, (void *)from, head);
        \t\twrite_back_lines((void *)to, head);
        \t\tto += head;
        \t\tfrom += head;
        \t\tsize -= head;
        \t\tif (size == 0)
        \t\t\treturn;
        \t}
        \tfor (; size >= 32; size -= 32, to += 32, from += 32) {
        \t\tstream8(to, from);
        \t\tstream8(to + 8, from + 8);
        \t\tstream8(to + 16, from + 16);
        \t\tstream8(to + 24, from + 24);
        \t}
        \tfor (; size >= 8; size -= 8, to += 8, from += 8)
        \t\tstream8(to, from);
        \tfor (; size >= 4; size -= 4, to += 4, from += 4)
        \t\tstream4(to, from);
        \tif (size) {
        \t\tmemcpy((void *)to, (void *)from, size);
        \t\twrite_back_lines((void *)to, size);
        \t}
        }
        EXPORT_SYMBOL_GPL(\(memcpyName));
        #endif

        """
    }

    // MARK: The 2016 core (copy_user_64.S)

    var alignDestination: String {
        """
        /* Cached byte copies until %rdi is 8-byte aligned; %edx counts them off. */
        .macro ALIGN_DESTINATION
        \tmovl %edi,%ecx
        \tandl $7,%ecx
        \tjz 108f
        \tnegl %ecx
        \taddl $8,%ecx
        \tsubl %ecx,%edx
        107:\tmovb (%rsi),%al
        \tmovb %al,(%rdi)
        \tincq %rsi
        \tincq %rdi
        \tdecl %ecx
        \tjnz 107b
        108:
        \t_ASM_EXTABLE(107b, 108b)
        .endm

        """
    }

    var core2016File: String {
        let open = entryMacro ? "ENTRY(__copy_user_nocache)" : "SYM_FUNC_START(__copy_user_nocache)"
        let close = entryMacro ? "ENDPROC(__copy_user_nocache)" : "SYM_FUNC_END(__copy_user_nocache)"
        let ret = retMacro ? "RET" : "ret"
        return """
        /* Fake tree for powercut's tests: not kernel code, laid out as arch/x86/lib/copy_user_64.S. */
        #include <linux/linkage.h>
        #include <asm/asm.h>
        #include <asm/smap.h>
        #include <asm/export.h>

        \(alignMacroInHeader ? "" : alignDestination)
        /* A routine the lift does not need, using ALTERNATIVE. */
        \(open.replacingOccurrences(of: "__copy_user_nocache", with: "fake_copy_generic"))
        \tALTERNATIVE "movl %edx,%ecx", "movl %edx,%ecx", X86_FEATURE_ERMS
        \trep movsb
        \txorl %eax,%eax
        \t\(ret)
        \(close.replacingOccurrences(of: "__copy_user_nocache", with: "fake_copy_generic"))

        /*
         * __copy_user_nocache(dst %rdi, src %rsi, count %edx, zerorest %ecx): cached head to
         * 8-byte alignment, 64-byte blocks and 8-byte words with movnti, a 4-byte movnti
         * when the rest allows, cached bytes after that, then sfence.
         */
        \(open)
        \tASM_STAC
        \tcmpl $8,%edx
        \tjb .Lfk_tail
        \tALIGN_DESTINATION
        \tmovl %edx,%ecx
        \tandl $63,%edx
        \tshrl $6,%ecx
        \tjz .Lfk_words
        .Lfk_block:
        1:\tmovq 0(%rsi),%r8
        \tmovq 8(%rsi),%r9
        \tmovq 16(%rsi),%r10
        \tmovq 24(%rsi),%r11
        \tmovnti %r8,0(%rdi)
        \tmovnti %r9,8(%rdi)
        \tmovnti %r10,16(%rdi)
        \tmovnti %r11,24(%rdi)
        \tmovq 32(%rsi),%r8
        \tmovq 40(%rsi),%r9
        \tmovq 48(%rsi),%r10
        \tmovq 56(%rsi),%r11
        \tmovnti %r8,32(%rdi)
        \tmovnti %r9,40(%rdi)
        \tmovnti %r10,48(%rdi)
        \tmovnti %r11,56(%rdi)
        \taddq $64,%rsi
        \taddq $64,%rdi
        \tdecl %ecx
        \tjnz .Lfk_block
        .Lfk_words:
        \tcmpl $8,%edx
        \tjb .Lfk_tail
        2:\tmovq (%rsi),%r8
        \tmovnti %r8,(%rdi)
        \taddq $8,%rsi
        \taddq $8,%rdi
        \tsubl $8,%edx
        \tjmp .Lfk_words
        .Lfk_tail:
        \ttestl %edx,%edx
        \tjz .Lfk_done
        \ttestl $3,%edi
        \tjnz .Lfk_bytes
        \tcmpl $4,%edx
        \tjb .Lfk_bytes
        3:\tmovl (%rsi),%r8d
        \tmovnti %r8d,(%rdi)
        \taddq $4,%rsi
        \taddq $4,%rdi
        \tsubl $4,%edx
        .Lfk_bytes:
        \ttestl %edx,%edx
        \tjz .Lfk_done
        4:\tmovb (%rsi),%al
        \tmovb %al,(%rdi)
        \tincq %rsi
        \tincq %rdi
        \tdecl %edx
        \tjnz 4b
        .Lfk_done:
        \txorl %eax,%eax
        \tASM_CLAC
        \tsfence
        \t\(ret)

        \t.section .fixup,"ax"
        9:\tmovl %edx,%eax
        \tASM_CLAC
        \t\(ret)
        \t.previous
        \t_ASM_EXTABLE(1b,9b)
        \t_ASM_EXTABLE(2b,9b)
        \t_ASM_EXTABLE(3b,9b)
        \t_ASM_EXTABLE(4b,9b)
        \(close)
        EXPORT_SYMBOL(__copy_user_nocache)

        """
    }

    // MARK: The 2023 core (copy_user_uncached_64.S)

    var core2023File: String {
        let ret = retMacro ? "RET" : "ret"
        return """
        /* Fake tree for powercut's tests: not kernel code, laid out as arch/x86/lib/copy_user_uncached_64.S. */
        #include <linux/linkage.h>
        #include <asm/asm.h>
        #include <asm/export.h>

        /*
         * __copy_user_nocache(dst %rdi, src %rsi, count %edx): a cached byte and a cached
         * 2-byte store to reach 4-byte alignment, a 4-byte movnti to reach 8, 64-byte
         * blocks and 8-byte words with movnti, a last 4-byte movnti, sfence, then the
         * last 2 and 1 bytes cached. Returns the bytes not copied (0).
         */
        SYM_FUNC_START(__copy_user_nocache)
        \ttestl $1,%edi
        \tjz .Lnt_even
        \ttestl %edx,%edx
        \tjz .Lnt_out
        10:\tmovb (%rsi),%al
        \tmovb %al,(%rdi)
        \tincq %rsi
        \tincq %rdi
        \tdecl %edx
        .Lnt_even:
        \ttestl $2,%edi
        \tjz .Lnt_four
        \tcmpl $2,%edx
        \tjb .Lnt_tail
        11:\tmovw (%rsi),%ax
        \tmovw %ax,(%rdi)
        \taddq $2,%rsi
        \taddq $2,%rdi
        \tsubl $2,%edx
        .Lnt_four:
        \ttestl $4,%edi
        \tjz .Lnt_body
        \tcmpl $4,%edx
        \tjb .Lnt_tail
        12:\tmovl (%rsi),%eax
        \tmovnti %eax,(%rdi)
        \taddq $4,%rsi
        \taddq $4,%rdi
        \tsubl $4,%edx
        .Lnt_body:
        \tcmpl $64,%edx
        \tjb .Lnt_quads
        13:\tmovq 0(%rsi),%r8
        \tmovq 8(%rsi),%r9
        \tmovq 16(%rsi),%r10
        \tmovq 24(%rsi),%r11
        \tmovnti %r8,0(%rdi)
        \tmovnti %r9,8(%rdi)
        \tmovnti %r10,16(%rdi)
        \tmovnti %r11,24(%rdi)
        \tmovq 32(%rsi),%r8
        \tmovq 40(%rsi),%r9
        \tmovq 48(%rsi),%r10
        \tmovq 56(%rsi),%r11
        \tmovnti %r8,32(%rdi)
        \tmovnti %r9,40(%rdi)
        \tmovnti %r10,48(%rdi)
        \tmovnti %r11,56(%rdi)
        \taddq $64,%rsi
        \taddq $64,%rdi
        \tsubl $64,%edx
        \tjmp .Lnt_body
        .Lnt_quads:
        \tcmpl $8,%edx
        \tjb .Lnt_long
        14:\tmovq (%rsi),%rax
        \tmovnti %rax,(%rdi)
        \taddq $8,%rsi
        \taddq $8,%rdi
        \tsubl $8,%edx
        \tjmp .Lnt_quads
        .Lnt_long:
        \tcmpl $4,%edx
        \tjb .Lnt_tail
        15:\tmovl (%rsi),%eax
        \tmovnti %eax,(%rdi)
        \taddq $4,%rsi
        \taddq $4,%rdi
        \tsubl $4,%edx
        .Lnt_tail:
        \tsfence
        \ttestl $2,%edx
        \tjz .Lnt_last
        16:\tmovw (%rsi),%ax
        \tmovw %ax,(%rdi)
        \taddq $2,%rsi
        \taddq $2,%rdi
        \tsubl $2,%edx
        .Lnt_last:
        \ttestl $1,%edx
        \tjz .Lnt_out
        17:\tmovb (%rsi),%al
        \tmovb %al,(%rdi)
        \tdecl %edx
        .Lnt_out:
        \tmovl %edx,%eax
        \t\(ret)

        _ASM_EXTABLE_UA(10b, .Lnt_out)
        _ASM_EXTABLE_UA(11b, .Lnt_out)
        _ASM_EXTABLE_UA(12b, .Lnt_out)
        _ASM_EXTABLE_UA(13b, .Lnt_out)
        _ASM_EXTABLE_UA(14b, .Lnt_out)
        _ASM_EXTABLE_UA(15b, .Lnt_out)
        _ASM_EXTABLE_UA(16b, .Lnt_out)
        _ASM_EXTABLE_UA(17b, .Lnt_out)
        SYM_FUNC_END(__copy_user_nocache)
        EXPORT_SYMBOL(__copy_user_nocache)

        """
    }
}

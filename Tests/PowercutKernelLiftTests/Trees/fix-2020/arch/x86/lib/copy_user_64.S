/* Fake tree for powercut's tests: not kernel code, laid out as arch/x86/lib/copy_user_64.S. */
#include <linux/linkage.h>
#include <asm/asm.h>
#include <asm/smap.h>
#include <asm/export.h>

/* Cached byte copies until %rdi is 8-byte aligned; %edx counts them off. */
.macro ALIGN_DESTINATION
	movl %edi,%ecx
	andl $7,%ecx
	jz 108f
	negl %ecx
	addl $8,%ecx
	subl %ecx,%edx
107:	movb (%rsi),%al
	movb %al,(%rdi)
	incq %rsi
	incq %rdi
	decl %ecx
	jnz 107b
108:
	_ASM_EXTABLE(107b, 108b)
.endm

/* A routine the lift does not need, using ALTERNATIVE. */
SYM_FUNC_START(fake_copy_generic)
	ALTERNATIVE "movl %edx,%ecx", "movl %edx,%ecx", X86_FEATURE_ERMS
	rep movsb
	xorl %eax,%eax
	RET
SYM_FUNC_END(fake_copy_generic)

/*
 * __copy_user_nocache(dst %rdi, src %rsi, count %edx, zerorest %ecx): cached head to
 * 8-byte alignment, 64-byte blocks and 8-byte words with movnti, a 4-byte movnti
 * when the rest allows, cached bytes after that, then sfence.
 */
SYM_FUNC_START(__copy_user_nocache)
	ASM_STAC
	cmpl $8,%edx
	jb .Lfk_tail
	ALIGN_DESTINATION
	movl %edx,%ecx
	andl $63,%edx
	shrl $6,%ecx
	jz .Lfk_words
.Lfk_block:
1:	movq 0(%rsi),%r8
	movq 8(%rsi),%r9
	movq 16(%rsi),%r10
	movq 24(%rsi),%r11
	movnti %r8,0(%rdi)
	movnti %r9,8(%rdi)
	movnti %r10,16(%rdi)
	movnti %r11,24(%rdi)
	movq 32(%rsi),%r8
	movq 40(%rsi),%r9
	movq 48(%rsi),%r10
	movq 56(%rsi),%r11
	movnti %r8,32(%rdi)
	movnti %r9,40(%rdi)
	movnti %r10,48(%rdi)
	movnti %r11,56(%rdi)
	addq $64,%rsi
	addq $64,%rdi
	decl %ecx
	jnz .Lfk_block
.Lfk_words:
	cmpl $8,%edx
	jb .Lfk_tail
2:	movq (%rsi),%r8
	movnti %r8,(%rdi)
	addq $8,%rsi
	addq $8,%rdi
	subl $8,%edx
	jmp .Lfk_words
.Lfk_tail:
	testl %edx,%edx
	jz .Lfk_done
	testl $3,%edi
	jnz .Lfk_bytes
	cmpl $4,%edx
	jb .Lfk_bytes
3:	movl (%rsi),%r8d
	movnti %r8d,(%rdi)
	addq $4,%rsi
	addq $4,%rdi
	subl $4,%edx
.Lfk_bytes:
	testl %edx,%edx
	jz .Lfk_done
4:	movb (%rsi),%al
	movb %al,(%rdi)
	incq %rsi
	incq %rdi
	decl %edx
	jnz 4b
.Lfk_done:
	xorl %eax,%eax
	ASM_CLAC
	sfence
	RET

	.section .fixup,"ax"
9:	movl %edx,%eax
	ASM_CLAC
	RET
	.previous
	_ASM_EXTABLE(1b,9b)
	_ASM_EXTABLE(2b,9b)
	_ASM_EXTABLE(3b,9b)
	_ASM_EXTABLE(4b,9b)
SYM_FUNC_END(__copy_user_nocache)
EXPORT_SYMBOL(__copy_user_nocache)

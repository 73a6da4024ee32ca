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
	testl $1,%edi
	jz .Lnt_even
	testl %edx,%edx
	jz .Lnt_out
10:	movb (%rsi),%al
	movb %al,(%rdi)
	incq %rsi
	incq %rdi
	decl %edx
.Lnt_even:
	testl $2,%edi
	jz .Lnt_four
	cmpl $2,%edx
	jb .Lnt_tail
11:	movw (%rsi),%ax
	movw %ax,(%rdi)
	addq $2,%rsi
	addq $2,%rdi
	subl $2,%edx
.Lnt_four:
	testl $4,%edi
	jz .Lnt_body
	cmpl $4,%edx
	jb .Lnt_tail
12:	movl (%rsi),%eax
	movnti %eax,(%rdi)
	addq $4,%rsi
	addq $4,%rdi
	subl $4,%edx
.Lnt_body:
	cmpl $64,%edx
	jb .Lnt_quads
13:	movq 0(%rsi),%r8
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
	subl $64,%edx
	jmp .Lnt_body
.Lnt_quads:
	cmpl $8,%edx
	jb .Lnt_long
14:	movq (%rsi),%rax
	movnti %rax,(%rdi)
	addq $8,%rsi
	addq $8,%rdi
	subl $8,%edx
	jmp .Lnt_quads
.Lnt_long:
	cmpl $4,%edx
	jb .Lnt_tail
15:	movl (%rsi),%eax
	movnti %eax,(%rdi)
	addq $4,%rsi
	addq $4,%rdi
	subl $4,%edx
.Lnt_tail:
	sfence
	testl $2,%edx
	jz .Lnt_last
16:	movw (%rsi),%ax
	movw %ax,(%rdi)
	addq $2,%rsi
	addq $2,%rdi
	subl $2,%edx
.Lnt_last:
	testl $1,%edx
	jz .Lnt_out
17:	movb (%rsi),%al
	movb %al,(%rdi)
	decl %edx
.Lnt_out:
	movl %edx,%eax
	RET

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

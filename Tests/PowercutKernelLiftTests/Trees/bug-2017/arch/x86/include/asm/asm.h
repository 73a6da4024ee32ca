/* fake tree for powercut tests */
#ifdef __ASSEMBLY__
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
#endif

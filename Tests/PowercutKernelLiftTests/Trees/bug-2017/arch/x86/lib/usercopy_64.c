// Fake tree for powercut's tests: not kernel code, laid out as arch/x86/lib/usercopy_64.c.
#include <linux/export.h>
#include <linux/uaccess.h>
#include <asm/special_insns.h>

unsigned long fake_zero_user(void __user *to, unsigned long n)
{
	might_fault();
	if (!access_ok(VERIFY_WRITE, to, n))
		return n;
	stac();
	clac();
	return 0;
}
EXPORT_SYMBOL(fake_zero_user);

#ifdef CONFIG_ARCH_HAS_UACCESS_FLUSHCACHE
/* Write back every cache line that [addr, addr + len) touches. */
static void write_back_lines(void *addr, size_t len)
{
	unsigned long line = boot_cpu_data.x86_clflush_size;
	unsigned long at = (unsigned long)addr & ~(line - 1);
	unsigned long end = (unsigned long)addr + len;

	while (at < end) {
		clwb((void *)at);
		at += line;
	}
}

long __copy_user_flushcache(void *dst, const void __user *src, unsigned size)
{
	unsigned long start = (unsigned long)dst, done;
	long left;

	stac();
	left = __copy_user_nocache(dst, src, size, 0);
	clac();

	if (size < 8) {
		if (!IS_ALIGNED(start, 4) || size != 4)
			write_back_lines(dst, 1);
	} else {
		done = 0;
		if (!IS_ALIGNED(start, 8)) {
			done = ALIGN(start, boot_cpu_data.x86_clflush_size) - start;
			write_back_lines(dst, 1);
		}
		if (size > done && !IS_ALIGNED(size - done, 8))
			write_back_lines(dst + size - 1, 1);
	}
	return left;
}

static inline void stream8(unsigned long to, unsigned long from)
{
	asm volatile("movq (%1), %%rax\n\tmovnti %%rax, (%0)" : : "r" (to), "r" (from) : "rax", "memory");
}

static inline void stream4(unsigned long to, unsigned long from)
{
	asm volatile("movl (%1), %%eax\n\tmovnti %%eax, (%0)" : : "r" (to), "r" (from) : "rax", "memory");
}

void memcpy_flushcache(void *dst, const void *src, size_t size)
{
	unsigned long to = (unsigned long)dst, from = (unsigned long)src;

	if (!IS_ALIGNED(to, 8)) {
		size_t head = min_t(size_t, size, ALIGN(to, 8) - to);

		memcpy((void *)to, (void *)from, head);
		write_back_lines((void *)to, head);
		to += head;
		from += head;
		size -= head;
		if (size == 0)
			return;
	}
	for (; size >= 32; size -= 32, to += 32, from += 32) {
		stream8(to, from);
		stream8(to + 8, from + 8);
		stream8(to + 16, from + 16);
		stream8(to + 24, from + 24);
	}
	for (; size >= 8; size -= 8, to += 8, from += 8)
		stream8(to, from);
	for (; size >= 4; size -= 4, to += 4, from += 4)
		stream4(to, from);
	if (size) {
		memcpy((void *)to, (void *)from, size);
		write_back_lines((void *)to, size);
	}
}
EXPORT_SYMBOL_GPL(memcpy_flushcache);
#endif

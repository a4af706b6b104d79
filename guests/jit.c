/*
 * jit: writes a lot of code and runs it, as a JIT compiler or a kernel loading modules
 * does, so much that an emulator's cache of translated code fills and is flushed again
 * and again (run it with a small translation buffer: tests/integration/test_record.c).
 * Each of rounds= rounds (default 4) writes pages= functions (default 256, one per 4 KiB
 * page) of blocks= blocks (default 64) each: `add $imm32, %eax; rol $5, %eax; test $1,
 * %al; jz next`, whose conditional jump ends the block either way, then `ret`. The
 * immediates differ by page, block and round, so every round is new code at the same
 * addresses. Then it calls each function calls= times (default 3), folding what it
 * returned into a checksum, while the PIT interrupts at hz= (default 1000).
 * Output: "jit: rounds=R pages=P blocks=B calls=C sum=S bad=N" (N: calls that returned
 * another value than the one computed here; 0 on a correct machine), then exit 0 (1 if
 * N is not 0).
 */
#include "guest.h"

#define MAX_PAGES 512
#define BLOCK_BYTES 12

static uint8_t code[MAX_PAGES][4096] __attribute__((aligned(4096)));
static volatile unsigned long ticks;

static void pit_irq(struct g_regs *r)
{
	(void)r;
	ticks++;
	g_pic_eoi(IRQ_PIT);
}

static uint32_t imm_of(long long round, long long page, long long block)
{
	return (uint32_t)((round * 1000003 + page * 8191 + block) * 2654435761u);
}

static uint32_t rol5(uint32_t v)
{
	return v << 5 | v >> 27;
}

/* Writes the page's function for this round; returns what it will return. */
static uint32_t write_page(long long round, long long page, long long blocks)
{
	uint8_t *p = code[page];
	uint32_t eax = 0;
	for (long long b = 0; b < blocks; b++) {
		uint32_t imm = imm_of(round, page, b);
		*p++ = 0x05; /* add $imm32, %eax */
		memcpy(p, &imm, 4);
		p += 4;
		*p++ = 0xc1; /* rol $5, %eax */
		*p++ = 0xc0;
		*p++ = 0x05;
		*p++ = 0xa8; /* test $1, %al */
		*p++ = 0x01;
		*p++ = 0x74; /* jz .+2: to the next block, taken or not */
		*p++ = 0x00;
		eax = rol5(eax + imm);
	}
	*p = 0xc3; /* ret */
	return eax;
}

static uint32_t call_page(long long page)
{
	uint32_t r;
	/* %eax starts at 0; the function only adds and rotates it. */
	__asm__ volatile("xorl %%eax, %%eax\n\tcall *%1"
			 : "=&a"(r)
			 : "r"((uintptr_t)code[page])
			 : "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "cc", "memory");
	return r;
}

int main(void)
{
	long long rounds = g_opt_int("rounds", 4), pages = g_opt_int("pages", 256);
	long long blocks = g_opt_int("blocks", 64), calls = g_opt_int("calls", 3);
	long long hz = g_opt_int("hz", 1000);
	if (rounds < 1 || pages < 1 || pages > MAX_PAGES || blocks < 1 ||
	    blocks * BLOCK_BYTES + 1 > 4096 || calls < 1 || hz < 19 || hz > 100000) {
		g_printf("jit: bad options rounds=%lld pages=%lld blocks=%lld calls=%lld hz=%lld\n",
			 rounds, pages, blocks, calls, hz);
		return 2;
	}
	static uint32_t want[MAX_PAGES];
	uint64_t sum = G_FNV_INIT;
	unsigned long bad = 0;
	g_set_irq_handler(IRQ_PIT, pit_irq);
	g_pit_start((unsigned)hz, 2);
	g_pic_unmask(IRQ_PIT);
	g_sti();
	for (long long r = 0; r < rounds; r++) {
		for (long long p = 0; p < pages; p++)
			want[p] = write_page(r, p, blocks);
		for (long long c = 0; c < calls; c++)
			for (long long p = 0; p < pages; p++) {
				uint32_t got = call_page(p);
				bad += got != want[p];
				sum = g_fnv1a(sum, &got, sizeof(got));
			}
	}
	g_cli();
	g_pic_mask(IRQ_PIT);
	g_pit_stop();
	g_printf("jit: rounds=%lld pages=%lld blocks=%lld calls=%lld sum=%016lx bad=%lu\n", rounds,
		 pages, blocks, calls, (unsigned long)sum, bad);
	return bad ? 1 : 0;
}

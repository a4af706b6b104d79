/*
 * start.c: g_start() (called by entry.S in long mode), results and g_exit().
 */
#include "guest.h"

void g_cmdline_init(void);

static unsigned passed, failed;

void g_start(void)
{
	g_serial_init();
	g_idt_init();
	g_pic_init();
	g_cmdline_init();
	g_exit(main());
}

bool g_report(const char *name, bool ok)
{
	g_printf("%s: %s\n", ok ? "PASS" : "FAIL", name);
	if (ok)
		passed++;
	else
		failed++;
	return ok;
}

bool g_reportf(bool ok, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	g_vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return g_report(buf, ok);
}

unsigned g_passed(void)
{
	return passed;
}

unsigned g_failed(void)
{
	return failed;
}

int g_report_summary(const char *prefix)
{
	g_printf("%s: %u passed, %u failed\n", prefix, passed, failed);
	return failed ? 1 : 0;
}

void g_exit(int code)
{
	outl(PORT_DEBUG_EXIT, (uint32_t)code);
	for (;;)
		__asm__ volatile("cli; hlt" ::: "memory");
}

/*
 * printf.c: a small printf: %d %i %u %x %X %p %s %c %%, flags '-', '0', '+' and ' ', a
 * width (digits or '*'), a precision for %s, and the length modifiers h, hh, l, ll, z.
 */
#include "guest.h"

struct sink {
	char *buf;
	size_t size, len; /* buf == NULL: to the serial port */
};

static void emit(struct sink *s, char c)
{
	if (!s->buf)
		g_putc(c);
	else if (s->len + 1 < s->size)
		s->buf[s->len] = c;
	s->len++;
}

static void pad(struct sink *s, char c, int n)
{
	while (n-- > 0)
		emit(s, c);
}

static void format_num(struct sink *s, unsigned long long v, bool neg, unsigned base,
		       bool upper, int width, bool left, bool zero, const char *prefix)
{
	char tmp[24];
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	int n = 0;
	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v);
	int plen = (int)strlen(prefix) + (neg ? 1 : 0);
	int fill = width - n - plen;
	if (!left && !zero)
		pad(s, ' ', fill);
	if (neg)
		emit(s, '-');
	while (*prefix)
		emit(s, *prefix++);
	if (!left && zero)
		pad(s, '0', fill);
	while (n)
		emit(s, tmp[--n]);
	if (left)
		pad(s, ' ', fill);
}

static void vformat(struct sink *s, const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			emit(s, *fmt);
			continue;
		}
		fmt++;
		bool left = false, zero = false;
		const char *sign = ""; /* for a non-negative %d: "+" or " " */
		for (;; fmt++) {
			if (*fmt == '-')
				left = true;
			else if (*fmt == '+')
				sign = "+";
			else if (*fmt == ' ' && !*sign)
				sign = " ";
			else if (*fmt == '0')
				zero = true;
			else
				break;
		}
		int width = 0, prec = -1;
		if (*fmt == '*') {
			width = va_arg(ap, int);
			if (width < 0) {
				left = true;
				width = -width;
			}
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		if (*fmt == '.') {
			fmt++;
			prec = 0;
			if (*fmt == '*') {
				prec = va_arg(ap, int);
				fmt++;
			}
			while (*fmt >= '0' && *fmt <= '9')
				prec = prec * 10 + (*fmt++ - '0');
		}
		int lng = 0; /* 0 int, 1 long, 2 long long, 3 size_t */
		for (;; fmt++) {
			if (*fmt == 'l')
				lng++;
			else if (*fmt == 'z')
				lng = 3;
			else if (*fmt != 'h')
				break;
		}
		unsigned long long u;
		long long d;
		switch (*fmt) {
		case 'd':
		case 'i':
			d = lng == 0 ? va_arg(ap, int) : lng == 1 ? va_arg(ap, long) :
			    lng == 2 ? va_arg(ap, long long) : (long long)va_arg(ap, size_t);
			u = d < 0 ? 0ull - (unsigned long long)d : (unsigned long long)d;
			format_num(s, u, d < 0, 10, false, width, left, zero, d < 0 ? "" : sign);
			break;
		case 'u':
		case 'x':
		case 'X':
			u = lng == 0 ? va_arg(ap, unsigned) : lng == 1 ? va_arg(ap, unsigned long) :
			    lng == 2 ? va_arg(ap, unsigned long long) : va_arg(ap, size_t);
			format_num(s, u, false, *fmt == 'u' ? 10 : 16, *fmt == 'X', width, left,
				   zero, "");
			break;
		case 'p':
			u = (uintptr_t)va_arg(ap, void *);
			format_num(s, u, false, 16, false, width, left, zero, "0x");
			break;
		case 'c':
			pad(s, ' ', left ? 0 : width - 1);
			emit(s, (char)va_arg(ap, int));
			pad(s, ' ', left ? width - 1 : 0);
			break;
		case 's': {
			const char *str = va_arg(ap, const char *);
			if (!str)
				str = "(null)";
			int n = 0;
			while (str[n] && (prec < 0 || n < prec))
				n++;
			pad(s, ' ', left ? 0 : width - n);
			for (int i = 0; i < n; i++)
				emit(s, str[i]);
			pad(s, ' ', left ? width - n : 0);
			break;
		}
		case '%':
			emit(s, '%');
			break;
		case '\0':
			return;
		default:
			emit(s, '%');
			emit(s, *fmt);
			break;
		}
	}
}

int g_vprintf(const char *fmt, va_list ap)
{
	struct sink s = {0};
	vformat(&s, fmt, ap);
	return (int)s.len;
}

int g_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = g_vprintf(fmt, ap);
	va_end(ap);
	return n;
}

int g_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct sink s = {.buf = buf, .size = size};
	vformat(&s, fmt, ap);
	if (size)
		buf[s.len < size ? s.len : size - 1] = '\0';
	return (int)s.len;
}

int g_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = g_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

uint64_t g_report_hash = G_FNV_INIT;

void g_report_line(const char *fmt, ...)
{
	char buf[160];
	va_list ap;
	va_start(ap, fmt);
	int n = g_vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = (int)sizeof(buf) - 1;
	g_report_hash = g_fnv1a(g_report_hash, buf, (size_t)n);
	g_printf("%s\n", buf);
}

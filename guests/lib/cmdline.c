/*
 * cmdline.c: hvm_start_info.cmdline as space-separated options "key=value" or "key".
 * Later occurrences of a key win.
 */
#include "guest.h"

#define CMDLINE_MAX 1024
#define OPTS_MAX 64

static char line[CMDLINE_MAX]; /* the line as given */
static char work[CMDLINE_MAX]; /* split copy: keys and values NUL-terminated */
static struct {
	const char *key, *val; /* val NULL: bare key */
} opts[OPTS_MAX];
static int nopts;

void g_cmdline_init(void);
void g_cmdline_init(void)
{
	const struct hvm_start_info *si = g_start_info();
	const char *src = si && si->cmdline_paddr ? (const char *)(uintptr_t)si->cmdline_paddr : "";
	size_t n = 0;
	while (src[n] && n < CMDLINE_MAX - 1)
		n++;
	memcpy(line, src, n);
	line[n] = '\0';
	memcpy(work, src, n);
	work[n] = '\0';

	char *p = work;
	while (*p && nopts < OPTS_MAX) {
		while (*p == ' ' || *p == '\t' || *p == '\n')
			*p++ = '\0';
		if (!*p)
			break;
		opts[nopts].key = p;
		opts[nopts].val = NULL;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '=')
			p++;
		if (*p == '=') {
			*p++ = '\0';
			opts[nopts].val = p;
			while (*p && *p != ' ' && *p != '\t' && *p != '\n')
				p++;
		}
		nopts++;
	}
}

const char *g_cmdline(void)
{
	return line;
}

static int find(const char *key)
{
	for (int i = nopts - 1; i >= 0; i--)
		if (!strcmp(opts[i].key, key))
			return i;
	return -1;
}

bool g_opt_present(const char *key)
{
	return find(key) >= 0;
}

const char *g_opt_str(const char *key, const char *def)
{
	int i = find(key);
	if (i < 0)
		return def;
	return opts[i].val ? opts[i].val : "";
}

static bool parse_int(const char *s, long long *out)
{
	bool neg = false;
	unsigned base = 10;
	unsigned long long v = 0;
	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned d;
		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			return false;
		v = v * base + d;
	}
	*out = neg ? -(long long)v : (long long)v;
	return true;
}

long long g_opt_int(const char *key, long long def)
{
	int i = find(key);
	long long v;
	if (i < 0 || !opts[i].val)
		return def;
	if (!parse_int(opts[i].val, &v)) {
		/* A typo must not run with the default as if it had been understood. */
		g_printf("option %s=%s: expected a number\n", key, opts[i].val);
		g_exit(2);
	}
	return v;
}

bool g_opt_bool(const char *key, bool def)
{
	int i = find(key);
	if (i < 0)
		return def;
	const char *v = opts[i].val;
	if (!v || !*v || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "true") ||
	    !strcmp(v, "on"))
		return true;
	if (!strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off"))
		return false;
	g_printf("option %s=%s: expected 1/yes/true/on or 0/no/false/off\n", key, v);
	g_exit(2);
}

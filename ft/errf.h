/*
 * errf.h: the one-line reasons ft's functions hand back in (err, errlen). Internal to ft/.
 */
#ifndef REWIND_FT_ERRF_H
#define REWIND_FT_ERRF_H

#include <stdarg.h>
#include <stdio.h>

/* Write the reason into err (when there is room) and return -1. */
static inline int ft_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int ft_errf(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

#endif

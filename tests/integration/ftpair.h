/*
 * ftpair.h: what the tests of the fault-tolerant pair share: a free loopback port, and
 * the check that a transcript is the ticker guest's whole output, every line once, in
 * order (the property a failover must keep).
 */
#ifndef REWIND_TESTS_FTPAIR_H
#define REWIND_TESTS_FTPAIR_H

#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* A TCP port on loopback that nothing listens on now. */
static inline int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	socklen_t l = sizeof(a);
	cr_assert(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* The ticker's whole output for lines= n: numbered lines in order, then its done line. */
static inline void check_ticker(const char *out, long long lines)
{
	const char *s = strchr(out, '\n');
	cr_assert(s, "no output: %s", out);
	s++;
	for (long long i = 0; i < lines; i++) {
		char want[32];
		snprintf(want, sizeof(want), "%06lld ", i);
		cr_assert_eq(strncmp(s, want, 7), 0, "line %lld is not next: %.40s", i, s);
		s = strchr(s, '\n');
		cr_assert(s);
		s++;
	}
	char done[64];
	snprintf(done, sizeof(done), "ticker: done, %lld lines\n", lines);
	cr_assert_str_eq(s, done);
}

#endif

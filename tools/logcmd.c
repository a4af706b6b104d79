/*
 * logcmd.c: `rewind log info|dump|verify`: a log's header, machine, sizes and events,
 * one event a line, and a check of every chunk with repair of a cut log.
 */
#include "logfmt/log.h"

#include "tools/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage_log(FILE *f)
{
	fprintf(f,
		"usage: rewind log info LOG\n"
		"       rewind log dump [--from POS] [--to POS] [--kind KIND] LOG\n"
		"       rewind log verify [--repair] LOG\n"
		"\n"
		"info    the guest (and its image's name: a Linux kernel's version banner, or\n"
		"        the file name), the machine it ran on, its length, events by kind,\n"
		"        and the bytes of the embedded image apart from the bytes of events\n"
		"dump    one event a line: position, kind, details. KIND: clock, timer, input,\n"
		"        hash, end (repeat --kind for several)\n"
		"verify  check every chunk's CRC and decoding, the index and the footer. A log\n"
		"        cut short (recorder killed, disk full) is reported with how much of it\n"
		"        is good; --repair drops the torn tail and writes a fresh index and\n"
		"        footer, so it replays up to its last complete chunk.\n"
		"\n"
		"Exit status: 0 good, 2 usage, 4 a log that is cut, corrupt or not a log.\n");
}

/* Open a log file and its byte-I/O table; a missing or unreadable file ends the run. */
int open_log_file(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		die_line(EXIT_BADINPUT, "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0)
		die_line(EXIT_HOST, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		die_line(EXIT_BADINPUT, "%s: %s, not a log file", path,
			 S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
	return fd;
}

static int open_log(const char *path, int flags, struct lf_io *io, struct lf_io_fd *iofd)
{
	int fd = open_log_file(path, flags);
	lf_io_fd_init(io, iofd, fd);
	return fd;
}

static void human(uint64_t n, char *buf, size_t cap)
{
	if (n >= 10u << 20)
		snprintf(buf, cap, "%.1f MiB", (double)n / (1 << 20));
	else if (n >= 10u << 10)
		snprintf(buf, cap, "%.1f KiB", (double)n / (1 << 10));
	else
		snprintf(buf, cap, "%" PRIu64 " B", n);
}

/*
 * What identifies the guest image, for a person: a Linux kernel's version banner when the
 * embedded image holds one ("Linux version 6.1.0-57-amd64 (...) #1 SMP PREEMPT_DYNAMIC
 * Debian 6.1.192-3 (2026-11-26)"), else the file name. Debian's 6.1 images hold a second,
 * placeholder banner without the build number ("... # SMP ..."), so a banner with "#"
 * and a digit is preferred to the first one found.
 */
static void image_name(const struct lf_header *h, char *buf, size_t cap)
{
	static const char banner[] = "Linux version ";
	const size_t bl = sizeof(banner) - 1;
	bool found = false;
	const char *end = h->image ? (const char *)h->image + h->image_len : NULL;
	for (const char *p = h->image; p && (p = memmem(p, (size_t)(end - p), banner, bl));
	     p += bl) {
		/* The banner proper: "Linux version " and a release, printable up to its '\n'
		 * or NUL (the other occurrences are format strings and documentation). */
		const char *q = p + bl;
		if (q == end || *q < '0' || *q > '9')
			continue;
		while (q < end && q - p < 512 && *q >= ' ' && *q <= '~')
			q++;
		if (q == end || (*q != '\n' && *q != '\0'))
			continue;
		bool numbered = false;
		for (const char *c = p; c + 1 < q && !numbered; c++)
			numbered = c[0] == '#' && c[1] >= '0' && c[1] <= '9';
		if (!found || numbered)
			snprintf(buf, cap, "%.*s", (int)(q - p), p);
		found = true;
		if (numbered)
			return;
	}
	if (found)
		return;
	const char *slash = strrchr(h->image_path, '/');
	snprintf(buf, cap, "%s", slash && slash[1] ? slash + 1 : h->image_path);
}

static int log_info(const char *path)
{
	struct lf_io io;
	struct lf_io_fd iofd;
	int fd = open_log(path, O_RDONLY, &io, &iofd);
	struct lf_verify_report rep;
	int vrc = lf_verify(&io, &rep);
	if (vrc < 0 && vrc != -LF_ETRUNC)
		die_lf(vrc, path);
	if (lseek(fd, 0, SEEK_SET) < 0)
		die_line(EXIT_HOST, "%s: %s", path, strerror(errno));
	struct lf_reader *r;
	int rc = lf_reader_open(&io, &r);
	if (rc < 0)
		die_lf(rc, path);
	const struct lf_header *h = lf_reader_header(r);

	/* The end event, when there is one: it is the last event of the log. */
	struct lf_event ev, endev = {0};
	bool have_end = false;
	if (rep.events && lf_reader_seek(r, rep.last_pos) == 0)
		while (lf_reader_next(r, &ev) == 1)
			if (ev.kind == LF_EV_END) {
				endev = ev;
				have_end = true;
			}

	time_t t = (time_t)(h->created_ns / 1000000000u);
	struct tm tm;
	char when[64];
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
	printf("log:        %s (format %u, written by %s on %s)\n", path, h->version, h->tool,
	       when);
	printf("guest:      %s (%" PRIu64 " bytes, hash %016" PRIx64 ", %s)\n", h->image_path,
	       h->image_len, h->image_hash, h->image ? "embedded" : "not embedded");
	char name[600];
	image_name(h, name, sizeof(name));
	printf("image:      %s\n", name);
	if (h->initrd_len) { /* --initrd (format 4) */
		char st[32];
		human(h->initrd_stored, st, sizeof(st));
		printf("initrd:     %s (%" PRIu64 " bytes, hash %016" PRIx64 ", %s%s%s)\n",
		       h->initrd_path, h->initrd_len, h->initrd_hash,
		       h->initrd ? "embedded: " : "not embedded", h->initrd ? st : "",
		       h->initrd ? " stored" : "");
	}
	printf("cmdline:    %s\n", *h->cmdline ? h->cmdline : "(none)");
	printf("machine:    ");
	for (const char *p = h->config; *p; p++)
		putchar(*p == '\n' ? (p[1] ? ' ' : '\n') : *p);
	printf("length:     positions %" PRIu64 " to %" PRIu64 "\n", rep.first_pos, rep.last_pos);
	if (have_end) {
		static const char *const how[] = {"?", "debug exit", "reset", "triple fault",
						  "halted", "stopped by the user"};
		printf("end:        %s", endev.end.reason < 6 ? how[endev.end.reason] : "?");
		if (endev.end.reason == 1)
			printf(" with value %" PRIu64 " (exit status %" PRIu64 ")", endev.end.value,
			       ((endev.end.value << 1) | 1) & 0xff);
		printf(" at position %" PRIu64 "\n", endev.pos);
	} else {
		printf("end:        none (the recording was cut)\n");
	}
	printf("events:     %" PRIu64 " in %" PRIu64 " chunks (%s):", rep.events, rep.chunks_ok,
	       lf_codec_name(rep.chunk_codec));
	for (unsigned k = 1; k <= LF_KIND_MAX; k++)
		printf(" %s %" PRIu64 "%s", lf_kind_name(k), rep.events_by_kind[k],
		       k < LF_KIND_MAX ? "," : "\n");
	char a[32], b[32], c[32], d[32], e[32];
	human(rep.file_bytes, a, sizeof(a));
	human(rep.header_bytes, b, sizeof(b));
	human(h->image_stored, c, sizeof(c));
	human(rep.chunk_bytes, d, sizeof(d));
	human(rep.raw_bytes, e, sizeof(e));
	printf("size:       %s: header %s (image %s stored of %" PRIu64 " bytes), events %s "
	       "(%s before compression), index and footer %" PRIu64 " B\n",
	       a, b, c, h->image_len, d, e, rep.index_bytes);
	if (rep.raw_bytes && rep.events)
		printf("            %.2f bytes per event stored\n",
		       (double)rep.chunk_bytes / (double)rep.events);
	printf("state:      %s\n", vrc == 0 ? "whole (index and footer good)" : rep.problem);
	lf_reader_free(r);
	close(fd);
	return vrc == 0 ? 0 : EXIT_BADINPUT;
}

static int log_dump(int argc, char **argv)
{
	uint64_t from = 0, to = UINT64_MAX;
	unsigned kinds = 0;
	static const struct option lopts[] = {{"from", required_argument, NULL, 'f'},
					      {"to", required_argument, NULL, 't'},
					      {"kind", required_argument, NULL, 'k'},
					      {"help", no_argument, NULL, 'h'},
					      {NULL, 0, NULL, 0}};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'f':
		case 't':
			errno = 0;
			uint64_t v = strtoull(optarg, &end, 0);
			if (errno || *end || !*optarg || *optarg == '-')
				die_line(EXIT_USAGE, "--%s %s: expected a position (a count)",
					 c == 'f' ? "from" : "to", optarg);
			if (c == 'f')
				from = v;
			else
				to = v;
			break;
		case 'k': {
			int k = lf_kind_parse(optarg);
			if (k < 0)
				die_line(EXIT_USAGE,
					 "--kind %s: expected clock, timer, input, hash or end", optarg);
			kinds |= 1u << k;
			break;
		}
		case 'h':
			usage_log(stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'rewind log --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1)
		die_line(EXIT_USAGE, "log dump: expected one log file");
	const char *path = argv[optind];
	struct lf_io io;
	struct lf_io_fd iofd;
	int fd = open_log(path, O_RDONLY, &io, &iofd);
	struct lf_reader *r;
	int rc = lf_reader_open(&io, &r);
	if (rc < 0)
		die_lf(rc, path);
	if (from && (rc = lf_reader_seek(r, from)) < 0)
		die_lf(rc, path);
	struct lf_event ev;
	uint64_t index = 0;
	char line[512];
	while ((rc = lf_reader_next(r, &ev)) == 1) {
		index++;
		if (ev.pos < from)
			continue;
		if (ev.pos > to)
			break;
		if (kinds && !(kinds & (1u << ev.kind)))
			continue;
		lf_event_format(&ev, line, sizeof(line));
		if (printf("%20" PRIu64 "  %s\n", ev.pos, line) < 0)
			break;
	}
	fflush(stdout);
	int status = 0;
	if (rc < 0) {
		fprintf(stderr, "%s: %s: %s; the events above are good\n", prog, path,
			*lf_errdetail() ? lf_errdetail() : lf_strerror(rc));
		status = EXIT_BADINPUT;
	} else {
		struct lf_reader_info ri;
		lf_reader_info(r, &ri);
		if (!ri.finalized && (from == 0 && to == UINT64_MAX)) {
			fprintf(stderr, "%s: %s has no index or footer: the recording was cut "
					"('rewind log verify' tells more)\n",
				prog, path);
			status = EXIT_BADINPUT;
		}
	}
	lf_reader_free(r);
	close(fd);
	return status;
}

static int log_verify(int argc, char **argv)
{
	bool repair = false;
	static const struct option lopts[] = {{"repair", no_argument, NULL, 'r'},
					      {"help", no_argument, NULL, 'h'},
					      {NULL, 0, NULL, 0}};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			repair = true;
			break;
		case 'h':
			usage_log(stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'rewind log --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1)
		die_line(EXIT_USAGE, "log verify: expected one log file");
	const char *path = argv[optind];
	struct lf_io io;
	struct lf_io_fd iofd;
	int fd = open_log(path, repair ? O_RDWR : O_RDONLY, &io, &iofd);
	struct lf_verify_report rep;
	int rc = lf_verify(&io, &rep);
	if (rc < 0 && rc != -LF_ETRUNC)
		die_lf(rc, path);
	if (!rep.header_ok) {
		/* Empty, or cut inside the header: no guest, no machine, nothing to keep. */
		printf("%s: %s\n", path, rep.problem[0] ? rep.problem : "the header is incomplete");
		printf("%s: no complete header (guest image and machine), so no event can be "
		       "used: there is nothing to repair\n",
		       path);
		close(fd);
		return EXIT_BADINPUT;
	}
	printf("%s: header good; %" PRIu64 " chunks good with %" PRIu64
	       " events, positions %" PRIu64 " to %" PRIu64 "\n",
	       path, rep.chunks_ok, rep.events, rep.first_pos, rep.last_pos);
	if (rc == 0) {
		printf("%s: whole: index and footer good\n", path);
		close(fd);
		return 0;
	}
	printf("%s: %s\n", path, rep.problem);
	printf("%s: the first %" PRIu64 " of %" PRIu64 " bytes are good\n", path, rep.good_bytes,
	       rep.file_bytes);
	if (!repair) {
		printf("%s: 'rewind log verify --repair %s' keeps them and makes the log whole\n",
		       path, path);
		close(fd);
		return EXIT_BADINPUT;
	}
	rc = lf_repair_fd(fd, &rep);
	if (rc < 0)
		die_lf(rc, path);
	printf("%s: repaired: %" PRIu64 " chunks, %" PRIu64 " events up to position %" PRIu64
	       " kept; %" PRIu64 " bytes of torn tail dropped\n",
	       path, rep.chunks_ok, rep.events, rep.last_pos,
	       rep.file_bytes > rep.good_bytes ? rep.file_bytes - rep.good_bytes : 0);
	if (close(fd) < 0)
		die_line(EXIT_HOST, "%s: %s", path, strerror(errno));
	return 0;
}

int cmd_log(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage_log(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "info")) {
		if (argc == 3 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help"))) {
			usage_log(stdout);
			return 0;
		}
		if (argc != 3)
			die_line(EXIT_USAGE, "log info: expected one log file");
		return log_info(argv[2]);
	}
	if (!strcmp(sub, "dump"))
		return log_dump(argc - 1, argv + 1);
	if (!strcmp(sub, "verify"))
		return log_verify(argc - 1, argv + 1);
	die_line(EXIT_USAGE, "log %s: expected info, dump or verify (try 'rewind log --help')",
		 sub);
}

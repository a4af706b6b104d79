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
		"        cut short (recorder killed, disk full) or damaged is reported with how\n"
		"        much of it is good and what a repair would keep and leave out;\n"
		"        --repair keeps the chunks before the first bad one and writes a fresh\n"
		"        index and footer, so the log replays up to its last good chunk. The\n"
		"        original is copied to LOG.orig (or LOG.orig.N, never overwriting a\n"
		"        file) before anything is cut (docs/log-repair.md).\n"
		"\n"
		"Exit status: 0 good (or repaired), 2 usage, 4 a log that is cut, corrupt or not\n"
		"a log, 10 no room for the copy of the original.\n");
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

const char *cli_visible(const char *s, char *buf, size_t cap)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char one[8];
		if (*p == '\r' || *p == '\n' || *p == '\t' || *p == '\\')
			snprintf(one, sizeof(one), "\\%c",
				 *p == '\r' ? 'r' : *p == '\n' ? 'n' : *p == '\t' ? 't' : '\\');
		else if (*p < ' ' || *p > '~')
			snprintf(one, sizeof(one), "\\x%02x", *p);
		else
			snprintf(one, sizeof(one), "%c", *p);
		size_t l = strlen(one);
		if (n + l + 4 > cap) {
			if (cap >= 4)
				memcpy(buf + (n + 4 <= cap ? n : cap - 4), "...", 4);
			else if (cap)
				buf[0] = 0;
			return buf;
		}
		memcpy(buf + n, one, l + 1);
		n += l;
	}
	if (cap)
		buf[n] = 0;
	return buf;
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
	/* Strings from the log are shown with their invisible bytes escaped. */
	size_t vcap = 4 * strlen(h->cmdline) + 4 * strlen(h->config) + 4 * strlen(h->image_path) +
		      4 * strlen(h->tool) + (h->initrd_path ? 4 * strlen(h->initrd_path) : 0) + 4096;
	char *vis = malloc(vcap);
	if (vis == NULL)
		die_line(EXIT_HOST, "%s: no memory", path);
	printf("log:        %s (format %u, written by %s on %s)\n", path, h->version,
	       cli_visible(h->tool, vis, vcap), when);
	printf("guest:      %s (%" PRIu64 " bytes, hash %016" PRIx64 ", %s)\n",
	       cli_visible(h->image_path, vis, vcap), h->image_len, h->image_hash,
	       h->image ? "embedded" : "not embedded");
	char name[600];
	image_name(h, name, sizeof(name));
	printf("image:      %s\n", cli_visible(name, vis, vcap));
	if (h->initrd_len) { /* --initrd (format 4) */
		char st[32];
		human(h->initrd_stored, st, sizeof(st));
		printf("initrd:     %s (%" PRIu64 " bytes, hash %016" PRIx64 ", %s%s%s)\n",
		       cli_visible(h->initrd_path, vis, vcap), h->initrd_len, h->initrd_hash,
		       h->initrd ? "embedded: " : "not embedded", h->initrd ? st : "",
		       h->initrd ? " stored" : "");
	}
	printf("cmdline:    %s\n", *h->cmdline ? cli_visible(h->cmdline, vis, vcap) : "(none)");
	printf("machine:    ");
	/* key=value lines, one space apart; anything else invisible is escaped. */
	for (const char *p = h->config; *p;) {
		size_t l = strcspn(p, "\n");
		char *line = strndup(p, l);
		if (line == NULL)
			die_line(EXIT_HOST, "%s: no memory", path);
		printf("%s%s", p == h->config ? "" : " ", cli_visible(line, vis, vcap));
		free(line);
		p += l;
		if (*p)
			p++;
	}
	putchar('\n');
	free(vis);
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
	if (rep.index_problem[0])
		printf("index:      not used: %s\n", rep.index_problem);
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
	struct lf_reader_info ri0;
	lf_reader_info(r, &ri0);
	if (ri0.index_problem)
		fprintf(stderr, "%s: %s: %s: not used, the chunks are read in order\n", prog, path,
			ri0.index_problem);
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

/*
 * Before a repair drops bytes: copy the log to PATH.orig (or PATH.orig.1, .2, ...: the
 * first name that is free; nothing is overwritten) and make the copy durable. Says where
 * on stderr. Ends the run, the log untouched, when no copy can be made.
 */
static void keep_original(int fd, const char *path, uint64_t size, char *name, size_t cap)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		die_line(EXIT_HOST, "%s: %s", path, strerror(errno));
	int out = -1;
	for (unsigned i = 0; i < 1000 && out < 0; i++) {
		int len = i == 0 ? snprintf(name, cap, "%s.orig", path)
				 : snprintf(name, cap, "%s.orig.%u", path, i);
		if (len < 0 || (size_t)len >= cap)
			die_line(EXIT_BADINPUT,
				 "%s: the path is too long to name a copy beside it: not repairing",
				 path);
		out = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 0666);
		if (out < 0 && errno != EEXIST)
			die_line(EXIT_HOST, "%s: cannot keep the original as %s (%s): not repairing",
				 path, name, strerror(errno));
	}
	if (out < 0)
		die_line(EXIT_HOST, "%s: %s.orig to .orig.999 all exist: not repairing (move them)",
			 path, path);
	static char buf[1 << 16];
	uint64_t done = 0;
	while (done < size) {
		ssize_t got = pread(fd, buf, sizeof(buf), (off_t)done);
		if (got < 0 && errno == EINTR)
			continue;
		const char *err = got < 0 ? strerror(errno) : "the log shrank while copying";
		for (ssize_t put = 0; got > 0 && put < got;) {
			ssize_t k = write(out, buf + put, (size_t)(got - put));
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				err = strerror(errno);
				got = -1;
				break;
			}
			put += k;
		}
		if (got <= 0) {
			unlink(name);
			die_line(EXIT_HOST, "%s: cannot keep the original as %s (%s): not repairing",
				 path, name, err);
		}
		done += (uint64_t)got;
	}
	if (fsync(out) < 0 || close(out) < 0) {
		unlink(name);
		die_line(EXIT_HOST, "%s: cannot keep the original as %s (%s): not repairing", path,
			 name, strerror(errno));
	}
	fprintf(stderr, "%s: %s: the original (%" PRIu64 " bytes) is kept as %s\n", prog, path,
		size, name);
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
	if (rep.index_problem[0])
		printf("%s: %s: it is not used, the chunks are read in order\n", path,
		       rep.index_problem);
	printf("%s: %s\n", path, rep.problem);
	printf("%s: the first %" PRIu64 " of %" PRIu64 " bytes are good\n", path, rep.good_bytes,
	       rep.file_bytes);
	/* What a repair costs, before it is offered. */
	uint64_t drop = rep.file_bytes - rep.good_bytes;
	printf("%s: a repair keeps %" PRIu64 " chunks with %" PRIu64 " events", path,
	       rep.chunks_ok, rep.events);
	if (rep.chunks_ok)
		printf(" (positions %" PRIu64 " to %" PRIu64 ")", rep.first_pos, rep.last_pos);
	if (drop)
		printf(", cuts the %" PRIu64 " bytes after them off the log", drop);
	printf(" and appends a fresh index and footer\n");
	if (rep.chunks_after)
		printf("%s: past the damage, %" PRIu64 " whole chunks with %" PRIu64
		       " events (positions %" PRIu64 " to %" PRIu64
		       ") cannot be replayed (a replay cannot cross the gap): a repair leaves "
		       "them out of the log\n",
		       path, rep.chunks_after, rep.events_after, rep.first_pos_after,
		       rep.last_pos_after);
	if (!repair) {
		printf("%s: 'rewind log verify --repair %s' does that%s\n", path, path,
		       drop ? ", keeping the original beside the log" : "");
		close(fd);
		return EXIT_BADINPUT;
	}
	char keep[4096 + 16] = "";
	if (drop)
		keep_original(fd, path, rep.file_bytes, keep, sizeof(keep));
	rc = lf_repair_fd(fd, &rep);
	if (rc < 0) {
		if (keep[0])
			fprintf(stderr, "%s: %s: the original is kept as %s\n", prog, path, keep);
		die_lf(rc, path);
	}
	printf("%s: repaired: kept %" PRIu64 " chunks with %" PRIu64 " events", path,
	       rep.chunks_ok, rep.events);
	if (rep.chunks_ok)
		printf(" (positions %" PRIu64 " to %" PRIu64 ")", rep.first_pos, rep.last_pos);
	printf("\n%s: repaired: dropped %" PRIu64 " bytes after offset %" PRIu64
	       ", appended %" PRIu64 " bytes (index and footer)\n",
	       path, rep.dropped_bytes, rep.good_bytes, rep.appended_bytes);
	if (rep.chunks_after)
		printf("%s: repaired: left out %" PRIu64 " whole chunks with %" PRIu64
		       " events (positions %" PRIu64 " to %" PRIu64 ") after the damage: %s\n",
		       path, rep.chunks_after, rep.events_after, rep.first_pos_after,
		       rep.last_pos_after, rep.problem);
	else
		printf("%s: repaired: left out no whole chunk (what was dropped: %s)\n", path,
		       rep.problem);
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

/*
 * test_ft.c: `rewind ft` with real processes on loopback (docs/ft.md): a primary and a
 * backup follow a guest to its end; kill -9 of the primary at random points (the backup
 * goes live and the transcript is exactly the guest's output: what the primary showed,
 * then the rest from the backup, nothing lost or repeated); kill of the backup (the
 * primary runs on, unprotected, and says so); a partition made by a relay this test
 * controls (exactly one side lives; the other exits 14); a wrong key and a garbage stream
 * (refused, the backup waits on). The guest is guests/ticker, whose lines carry counts
 * that depend on the host's timing, so a backup that went live at another point than
 * where its primary's released output ends would print other numbers.
 *
 * Where a test follows the pair with `rewind console` (--serial tcp:), the client's
 * transcript must be exactly the guest's output; elsewhere consoles are --serial stdio (the
 * primary prints released output, the backup prints the whole output when it goes live).
 */
#include "harness.h"
#include "tests/integration/ftpair.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#define TIMEOUT_S "3" /* generous: a loaded 2-core machine must not fail over by accident */

struct ft_env {
	char dir[64], key[96], arb[128];
	char rewind[256], guest[256];
	int port;
};

static void env_init(struct ft_env *e)
{
	snprintf(e->dir, sizeof(e->dir), "/tmp/rewind-ft-XXXXXX");
	cr_assert(mkdtemp(e->dir));
	snprintf(e->key, sizeof(e->key), "%s/pair.key", e->dir);
	snprintf(e->arb, sizeof(e->arb), "file:%s/pair.arb", e->dir);
	h_rewind_path(e->rewind, sizeof(e->rewind));
	h_guest_path("ticker", e->guest, sizeof(e->guest));
	char *argv[] = {e->rewind, "ft", "keygen", e->key, NULL};
	struct h_run r;
	h_run(argv, NULL, &r);
	cr_assert_eq(r.status, 0, "keygen: %s", r.err);
	h_free(&r);
	e->port = free_port();
}

static void env_free(struct ft_env *e)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	cr_assert_eq(system(cmd), 0);
}

static void start_backup_serial(struct ft_env *e, int port, const char *key,
				const char *timeout, const char *serial, struct h_proc *p)
{
	char listen[32];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	char *argv[] = {e->rewind, "ft", "backup", "--listen", listen, "--key", (char *)key,
			"--arbiter", e->arb, "--timeout", (char *)timeout, "--serial",
			(char *)serial, NULL};
	struct h_opts o = {.timeout_s = 60};
	h_start(argv, &o, p);
}

static void start_backup(struct ft_env *e, int port, const char *key, const char *timeout,
			 struct h_proc *p)
{
	start_backup_serial(e, port, key, timeout, "stdio", p);
}

static void start_primary_serial(struct ft_env *e, int port, const char *key,
				 const char *timeout, const char *cmdline, const char *serial,
				 const struct h_opts *o, struct h_proc *p)
{
	char backup[32];
	snprintf(backup, sizeof(backup), "127.0.0.1:%d", port);
	char *argv[] = {e->rewind, "ft", "primary", "--backup", backup, "--key", (char *)key,
			"--arbiter", e->arb, "--timeout", (char *)timeout, "--serial",
			(char *)serial, "--append", (char *)cmdline, e->guest, NULL};
	h_start(argv, o, p);
}

static void start_primary(struct ft_env *e, int port, const char *key, const char *timeout,
			  const char *cmdline, const struct h_opts *o, struct h_proc *p)
{
	start_primary_serial(e, port, key, timeout, cmdline, "stdio", o, p);
}

Test(ft, usage_and_key_errors, .timeout = 60)
{
	struct ft_env e;
	env_init(&e);
	struct h_run r;
	char *no_arb[] = {e.rewind, "ft", "backup", "--listen", "127.0.0.1:1", "--key", e.key, NULL};
	h_run(no_arb, NULL, &r);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "--arbiter SPEC is required"), "%s", r.err);
	h_free(&r);
	char loose[128];
	snprintf(loose, sizeof(loose), "%s/loose.key", e.dir);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 644 '%s'", e.key, loose, loose);
	cr_assert_eq(system(cmd), 0);
	char *bad_key[] = {e.rewind, "ft", "backup", "--listen", "127.0.0.1:1", "--key", loose,
			   "--arbiter", e.arb, NULL};
	h_run(bad_key, NULL, &r);
	cr_assert_eq(r.status, 4, "%s", r.err);
	cr_assert_eq(h_lines(r.err), 1, "%s", r.err);
	h_free(&r);
	char *help[] = {e.rewind, "--help", NULL};
	h_run(help, NULL, &r);
	cr_assert(strstr(r.out, "14        ft: this side lost the arbiter"), "%s", r.out);
	h_free(&r);
	char *fthelp[] = {e.rewind, "ft", "--help", NULL};
	h_run(fthelp, NULL, &r);
	cr_assert_eq(r.status, 0);
	static const char *words[] = {"ft primary", "ft backup", "ft status", "ft keygen",
				      "rewind console", "--join", "--timeout", "--arbiter",
				      "--log", "--serial", "--no-input", "14"};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		cr_assert(strstr(r.out, words[i]), "ft --help lacks %s", words[i]);
	h_free(&r);
	env_free(&e);
}

/* Both sides to the guest's end: the primary shows everything, the replay matches. */
Test(ft, backup_follows_to_the_end, .timeout = 120)
{
	struct ft_env e;
	env_init(&e);
	struct h_proc b, p;
	start_backup(&e, e.port, e.key, TIMEOUT_S, &b);
	struct h_opts o = {.timeout_s = 60};
	int sport = free_port();
	char listen[32], backup[32];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", sport);
	snprintf(backup, sizeof(backup), "127.0.0.1:%d", e.port);
	char *pargv[] = {e.rewind, "ft", "primary", "--backup", backup, "--listen", listen,
			 "--key", e.key, "--arbiter", e.arb, "--timeout", TIMEOUT_S, "--append",
			 "lines=150 hz=200", e.guest, NULL};
	h_start(pargv, &o, &p);
	/* `rewind ft status` while it runs: role, state, acked position, lag, link. */
	struct h_run sr = {0};
	for (int i = 0; i < 40; i++) {
		usleep(100 * 1000);
		char *sargv[] = {e.rewind, "ft", "status", "--key", e.key, listen, NULL};
		h_run(sargv, NULL, &sr);
		if (sr.status == 0 && strstr(sr.out, "state: protected") &&
		    !strstr(sr.out, "acked: 0\n"))
			break;
		h_free(&sr);
	}
	cr_assert(sr.out, "ft status never answered");
	cr_assert_eq(sr.status, 0, "%s", sr.err);
	static const char *fields[] = {"role: primary\n", "state: protected\n", "acked: ",
				       "lag: ", "link: up", "log: "};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		cr_assert(strstr(sr.out, fields[i]), "status lacks %s:\n%s", fields[i], sr.out);
	h_free(&sr);
	struct h_run pr, br;
	h_wait(&p, &pr);
	h_wait(&b, &br);
	cr_assert_eq(pr.status, 1, "primary: %s", pr.err);
	check_ticker(pr.out, 150);
	cr_assert(strstr(pr.err, "markers"), "%s", pr.err);
	cr_assert_eq(br.status, 1, "backup: %s", br.err);
	cr_assert(strstr(br.err, "the replay matched"), "%s", br.err);
	cr_assert_str_eq(br.out, "", "a following backup shows nothing");
	h_free(&pr);
	h_free(&br);
	env_free(&e);
}

/* kill -9 of the primary some ms after it showed line `after`. */
static void kill_primary(int after, int delay_ms)
{
	struct ft_env e;
	env_init(&e);
	struct h_proc b, p;
	start_backup(&e, e.port, e.key, TIMEOUT_S, &b);
	char mark[16];
	snprintf(mark, sizeof(mark), "%06d ", after);
	struct h_opts o = {.timeout_s = 60, .sig = SIGKILL, .sig_after = mark,
			   .sig_delay_ms = delay_ms};
	start_primary(&e, e.port, e.key, TIMEOUT_S, "lines=60 hz=200", &o, &p);
	struct h_run pr, br;
	h_wait(&p, &pr);
	h_wait(&b, &br);
	cr_assert_eq(pr.termsig, SIGKILL, "the primary ended before the kill: %s", pr.err);
	cr_assert_eq(br.status, 1, "backup: %s", br.err);
	cr_assert(strstr(br.err, "won the arbiter"), "%s", br.err);
	cr_assert(strstr(br.err, "went live at position"), "%s", br.err);
	cr_assert(strstr(br.err, "WITHOUT a backup"), "%s", br.err);
	/* What the primary showed is where the backup's output begins, byte for byte; the
	 * client's transcript (primary's, then the backup's from that offset on) is the
	 * guest's output, whole. */
	cr_assert_geq(br.len, pr.len);
	cr_assert_eq(memcmp(br.out, pr.out, pr.len), 0,
		     "the primary showed output the backup does not have:\n%s\n----\n%s", pr.out,
		     br.out);
	check_ticker(br.out, 60);
	h_free(&pr);
	h_free(&br);
	env_free(&e);
}

Test(ft, kill_primary_stdio, .timeout = 120)
{
	kill_primary(12, 7);
}

/* kill -9 of the primary delay_ms after it began to stream, followed by `rewind console`: the
 * client's transcript is the guest's whole output, every byte once, in order. */
static void console_kill(int delay_ms)
{
	struct ft_env e;
	env_init(&e);
	int pcon = free_port(), bcon = free_port();
	char ps[40], bs[40], addrs[80];
	snprintf(ps, sizeof(ps), "tcp:127.0.0.1:%d", pcon);
	snprintf(bs, sizeof(bs), "tcp:127.0.0.1:%d", bcon);
	snprintf(addrs, sizeof(addrs), "127.0.0.1:%d,127.0.0.1:%d", pcon, bcon);
	struct h_proc b, p, c;
	start_backup_serial(&e, e.port, e.key, TIMEOUT_S, bs, &b);
	struct h_opts o = {.timeout_s = 60, .sig = SIGKILL, .sig_after = "streaming to the backup",
			   .sig_delay_ms = delay_ms};
	start_primary_serial(&e, e.port, e.key, TIMEOUT_S, "lines=100 hz=200", ps, &o, &p);
	char *cargv[] = {e.rewind, "console", "--key", e.key, "--no-input", addrs, NULL};
	struct h_opts co = {.timeout_s = 60};
	h_start(cargv, &co, &c);
	struct h_run pr, br, cr;
	h_wait(&p, &pr);
	h_wait(&b, &br);
	h_wait(&c, &cr);
	cr_assert_eq(pr.termsig, SIGKILL, "the primary ended before the kill: %s", pr.err);
	cr_assert_eq(br.status, 1, "backup: %s", br.err);
	cr_assert(strstr(br.err, "went live at position"), "%s", br.err);
	cr_assert_eq(cr.status, 0, "console: %s", cr.err);
	check_ticker(cr.out, 100);
	h_free(&pr);
	h_free(&br);
	h_free(&cr);
	env_free(&e);
}

/* Random points: seeded from the clock, printed so that a failure can be rerun. */
Test(ft, console_kill_primary_at_random_points, .timeout = 300)
{
	unsigned seed = (unsigned)time(NULL);
	const char *s = getenv("REWIND_FT_SEED");
	if (s)
		seed = (unsigned)strtoul(s, NULL, 10);
	cr_log_info("REWIND_FT_SEED=%u", seed);
	srand(seed);
	for (int i = 0; i < 3; i++) {
		int delay = rand() % 600;
		cr_log_info("kill the primary %d ms after it began to stream", delay);
		console_kill(delay);
	}
}

/* kill -9 of the backup: the primary wins the arbiter and runs on, unprotected. */
Test(ft, kill_backup, .timeout = 120)
{
	struct ft_env e;
	env_init(&e);
	struct h_proc b, p;
	start_backup(&e, e.port, e.key, TIMEOUT_S, &b);
	struct h_opts o = {.timeout_s = 60};
	start_primary(&e, e.port, e.key, TIMEOUT_S, "lines=40 hz=200", &o, &p);
	/* Wait until the pair runs (the backup says it follows), then kill it. */
	struct h_run br;
	b.o.sig = SIGKILL;
	b.o.sig_after = "following pair";
	b.o.sig_delay_ms = 150;
	h_wait(&b, &br);
	cr_assert_eq(br.termsig, SIGKILL, "%s", br.err);
	struct h_run pr;
	h_wait(&p, &pr);
	cr_assert_eq(pr.status, 1, "primary: %s", pr.err);
	cr_assert(strstr(pr.err, "lost the backup"), "%s", pr.err);
	cr_assert(strstr(pr.err, "running on UNPROTECTED"), "%s", pr.err);
	check_ticker(pr.out, 40);
	h_free(&pr);
	h_free(&br);
	env_free(&e);
}

/* ---- a relay the test controls: forwards both ways until cut, then drops everything --- */

struct relay {
	int lfd, port, to;
	atomic_bool cut, quit;
	atomic_bool flip; /* change one byte of the next piece from the primary, once */
	atomic_bool dup;  /* send the next piece from the primary twice (a replayed record) */
	char *cap;        /* what the primary sent, as it crossed the wire (up to 8 MiB) */
	size_t cap_n;
	pthread_t th;
};

static void *relay_main(void *arg)
{
	struct relay *r = arg;
	int a = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (a < 0)
		return NULL;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->to),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int b = -1;
	for (int i = 0; i < 100 && b < 0; i++) { /* the backup may not listen yet */
		b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(b, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			close(b);
			b = -1;
			usleep(50 * 1000);
		}
	}
	if (b < 0) {
		close(a);
		return NULL;
	}
	char buf[65536];
	while (!atomic_load(&r->quit)) {
		struct pollfd pf[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
		if (poll(pf, 2, 50) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			if (!pf[i].revents)
				continue;
			ssize_t n = read(pf[i].fd, buf, sizeof(buf));
			if (n <= 0)
				goto out;
			if (i == 0 && r->cap && r->cap_n + (size_t)n <= (8u << 20)) {
				memcpy(r->cap + r->cap_n, buf, (size_t)n);
				r->cap_n += (size_t)n;
			}
			if (i == 0 && n > 0 && atomic_exchange(&r->flip, false))
				buf[n / 2] ^= 0x20;
			if (i == 0 && n > 0 && atomic_exchange(&r->dup, false) &&
			    write(pf[1 - i].fd, buf, (size_t)n) != n)
				goto out;
			if (!atomic_load(&r->cut) && write(pf[1 - i].fd, buf, (size_t)n) != n)
				goto out;
		}
	}
out:
	close(a);
	close(b);
	return NULL;
}

/* A cut link (tamper: a changed byte instead): both sides lose the other; each claims;
 * exactly one runs on, and what it shows is the guest's output. */
enum cut_how { CUT, FLIP, DUP };

static void relay_start(struct relay *r, int to)
{
	r->port = free_port();
	r->to = to;
	r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;
	setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	cr_assert(bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(r->lfd, 1) == 0);
	cr_assert_eq(pthread_create(&r->th, NULL, relay_main, r), 0);
}

static void partition(enum cut_how how)
{
	bool tamper = how != CUT;
	struct ft_env e;
	env_init(&e);
	static struct relay r;
	r.port = free_port();
	r.to = e.port;
	r.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r.port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;
	setsockopt(r.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	cr_assert(bind(r.lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(r.lfd, 1) == 0);
	cr_assert_eq(pthread_create(&r.th, NULL, relay_main, &r), 0);
	struct h_proc b, p;
	start_backup(&e, e.port, e.key, "1", &b);
	struct h_opts o = {.timeout_s = 60};
	start_primary(&e, r.port, e.key, "1", "lines=400 hz=200", &o, &p);
	usleep(700 * 1000);
	atomic_store(how == CUT ? &r.cut : how == FLIP ? &r.flip : &r.dup, true);
	struct h_run pr, br;
	h_wait(&p, &pr);
	h_wait(&b, &br);
	atomic_store(&r.quit, true);
	pthread_join(r.th, NULL);
	close(r.lfd);
	bool p_lives = pr.status == 1, b_lives = br.status == 1;
	cr_assert(p_lives != b_lives, "exactly one side must live: primary %d (%s), backup %d (%s)",
		  pr.status, pr.err, br.status, br.err);
	struct h_run *loser = p_lives ? &br : &pr, *winner = p_lives ? &pr : &br;
	cr_assert_eq(loser->status, 14, "%s", loser->err);
	cr_assert(strstr(loser->err, "lost the arbiter"), "%s", loser->err);
	cr_assert(strstr(winner->err, "won the arbiter"), "%s", winner->err);
	check_ticker(winner->out, 400);
	if (tamper) /* the backup read the changed record: a dead link at once */
		cr_assert(strstr(br.err, "lost the primary: the link to the primary failed"), "%s",
			  br.err);
	if (!p_lives) /* what the losing primary showed is the start of the backup's */
		cr_assert_eq(memcmp(br.out, pr.out, pr.len), 0);
	h_free(&pr);
	h_free(&br);
	env_free(&e);
}

Test(ft, partition_one_side_lives, .timeout = 120)
{
	partition(CUT);
}

/* A changed byte mid-stream fails authentication: a dead link, never input to the guest. */
Test(ft, tampered_stream_is_a_dead_link, .timeout = 120)
{
	partition(FLIP);
}

/* A record sent again (a relay replaying what it captured): refused, a dead link. */
Test(ft, replayed_record_is_a_dead_link, .timeout = 120)
{
	partition(DUP);
}

/* What crosses the wire of the stream is sealed: typed input (a password) that the
 * guest's log holds in clear is nowhere in the captured bytes. */
Test(ft, typed_text_never_on_the_wire, .timeout = 120)
{
	struct ft_env e;
	env_init(&e);
	h_guest_path("echo", e.guest, sizeof(e.guest));
	static struct relay r;
	r.cap = malloc(8u << 20);
	cr_assert(r.cap);
	relay_start(&r, e.port);
	int pcon = free_port();
	char ps[40], backup[32], logp[128];
	snprintf(ps, sizeof(ps), "tcp:127.0.0.1:%d", pcon);
	snprintf(backup, sizeof(backup), "127.0.0.1:%d", r.port);
	snprintf(logp, sizeof(logp), "%s/primary.rwl", e.dir);
	struct h_proc b, p, c;
	start_backup(&e, e.port, e.key, TIMEOUT_S, &b);
	char *pargv2[] = {e.rewind, "ft", "primary", "--backup", backup, "--key", e.key,
			  "--arbiter", e.arb, "--timeout", TIMEOUT_S, "--serial", ps, "--log", logp,
			  e.guest, NULL};
	struct h_opts o = {.timeout_s = 60};
	h_start(pargv2, &o, &p);
	char addr[32];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", pcon);
	char *cargv[] = {e.rewind, "console", "--key", e.key, addr, NULL};
	struct h_opts co = {.timeout_s = 60, .input = "hunter2-Sw0rdfish\nq", .hold_stdin = true};
	h_start(cargv, &co, &c);
	struct h_run pr, br, cr;
	h_wait(&p, &pr);
	h_wait(&b, &br);
	close(c.in);
	c.in = -1;
	h_wait(&c, &cr);
	atomic_store(&r.quit, true);
	pthread_join(r.th, NULL);
	close(r.lfd);
	cr_assert_eq(pr.status, 1, "%s", pr.err);
	cr_assert(strstr(cr.out, "hunter2-Sw0rdfish"), "the guest did not echo: %s / %s", cr.out,
		  cr.err);
	/* Control: the log holds the typed text, in its input events (maybe split). */
	char *dargv[] = {e.rewind, "log", "dump", logp, NULL};
	struct h_run dr;
	h_run(dargv, NULL, &dr);
	cr_assert_eq(dr.status, 0, "%s", dr.err);
	char typed[256] = "";
	for (char *l = strstr(dr.out, "input serial"); l; l = strstr(l + 1, "input serial")) {
		char *q = strchr(l, '"'), *q2 = q ? strchr(q + 1, '"') : NULL;
		if (q && q2 && strlen(typed) + (size_t)(q2 - q) < sizeof(typed))
			strncat(typed, q + 1, (size_t)(q2 - q - 1));
	}
	h_free(&dr);
	cr_assert(strstr(typed, "hunter2-Sw0rdfish"), "control: the log's input is %s", typed);
	cr_assert_gt(r.cap_n, 1000);
	static const char secret[] = "hunter2-Sw0rdfish";
	for (size_t i = 0; i + 4 <= sizeof(secret) - 1; i++)
		cr_assert_null(memmem(r.cap, r.cap_n, secret + i, 4),
			       "typed text (\"%.4s\") crossed the wire in clear", secret + i);
	/* (the log's header embeds the guest image, which holds this string) */
	cr_assert_null(memmem(r.cap, r.cap_n, "echo: type", 10),
		       "the guest image crossed the wire in clear");
	free(r.cap);
	h_free(&pr);
	h_free(&br);
	h_free(&cr);
	env_free(&e);
}

/* A primary with another key is refused; so is garbage; the backup waits on. */
Test(ft, wrong_key_and_garbage_are_refused, .timeout = 120)
{
	struct ft_env e;
	env_init(&e);
	char other[128];
	snprintf(other, sizeof(other), "%s/other.key", e.dir);
	char *kg[] = {e.rewind, "ft", "keygen", other, NULL};
	struct h_run r;
	h_run(kg, NULL, &r);
	cr_assert_eq(r.status, 0);
	h_free(&r);
	struct h_proc b, p;
	start_backup(&e, e.port, e.key, TIMEOUT_S, &b);
	struct h_opts o = {.timeout_s = 30};
	start_primary(&e, e.port, other, TIMEOUT_S, "lines=5", &o, &p);
	h_wait(&p, &r);
	cr_assert_eq(r.status, 4, "%s", r.err);
	cr_assert_eq(h_lines(r.err), 1, "%s", r.err);
	cr_assert_str_eq(r.out, "", "a refused primary must not run its guest");
	h_free(&r);
	/* Garbage on the stream's port. */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e.port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	char junk[4096];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 7 + 3);
	cr_assert(write(fd, junk, sizeof(junk)) > 0);
	usleep(300 * 1000);
	close(fd);
	/* The backup still serves a real primary after both; a second primary is refused. */
	o.timeout_s = 60;
	start_primary(&e, e.port, e.key, TIMEOUT_S, "lines=100 hz=200", &o, &p);
	struct h_proc p2;
	struct h_opts o2 = {.timeout_s = 30};
	/* Once the backup follows the first (its status answers), the second tries. */
	char blisten[32];
	snprintf(blisten, sizeof(blisten), "127.0.0.1:%d", e.port);
	bool following = false;
	for (int i = 0; i < 50 && !following; i++) {
		usleep(100 * 1000);
		char *sargv[] = {e.rewind, "ft", "status", "--key", e.key, blisten, NULL};
		struct h_run sr;
		h_run(sargv, NULL, &sr);
		following = sr.status == 0 && strstr(sr.out, "state: following");
		h_free(&sr);
	}
	cr_assert(following, "the backup never followed the first primary");
	start_primary(&e, e.port, e.key, TIMEOUT_S, "lines=5 hz=200", &o2, &p2);
	struct h_run p2r;
	h_wait(&p2, &p2r);
	cr_assert_eq(p2r.status, 10, "%s", p2r.err);
	cr_assert(strstr(p2r.err, "the backup refused: it follows another primary already"), "%s",
		  p2r.err);
	h_free(&p2r);
	struct h_run pr, br;
	h_wait(&p, &pr);
	h_wait(&b, &br);
	cr_assert_eq(pr.status, 1, "%s", pr.err);
	check_ticker(pr.out, 100);
	cr_assert_eq(br.status, 1, "%s", br.err);
	cr_assert(strstr(br.err, "refused a connection"), "%s", br.err);
	h_free(&pr);
	h_free(&br);
	env_free(&e);
}

/* Typed input through `rewind console` into guests/echo while the primary is killed:
 * every typed byte reaches the guest once (its echo shows each line once, in order). */
Test(ft, console_input_once_across_failover, .timeout = 120)
{
	struct ft_env e;
	env_init(&e);
	h_guest_path("echo", e.guest, sizeof(e.guest));
	int pcon = free_port(), bcon = free_port();
	char ps[40], bs[40];
	snprintf(ps, sizeof(ps), "tcp:127.0.0.1:%d", pcon);
	snprintf(bs, sizeof(bs), "tcp:127.0.0.1:%d", bcon);
	struct h_proc b, p, c;
	start_backup_serial(&e, e.port, e.key, TIMEOUT_S, bs, &b);
	struct h_opts o = {.timeout_s = 60, .sig = SIGKILL, .sig_after = "streaming to the backup",
			   .sig_delay_ms = 300 + (int)(time(NULL) % 5) * 100};
	start_primary_serial(&e, e.port, e.key, TIMEOUT_S, "", ps, &o, &p);
	/* 60 lines typed 20 ms apart, then the quit byte; input stays open until the end. */
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "i=1; (while [ $i -le 60 ]; do echo line$i; i=$((i+1)); sleep 0.02; done; "
		 "sleep 0.5; printf q; sleep 2) | '%s' console --key '%s' 127.0.0.1:%d,127.0.0.1:%d",
		 e.rewind, e.key, pcon, bcon);
	char *cargv[] = {"sh", "-c", cmd, NULL};
	struct h_opts co = {.timeout_s = 60};
	h_start(cargv, &co, &c);
	struct h_run pr, br, cr;
	h_wait(&p, &pr);
	h_wait(&b, &br);
	h_wait(&c, &cr);
	cr_assert_eq(pr.termsig, SIGKILL, "the primary ended before the kill: %s", pr.err);
	cr_assert_eq(br.status, 1, "backup: %s", br.err);
	cr_assert(strstr(br.err, "went live at position"), "%s", br.err);
	char want[2048];
	size_t n = (size_t)snprintf(want, sizeof(want), "echo: type; byte 113 quits\n");
	for (int i = 1; i <= 60; i++)
		n += (size_t)snprintf(want + n, sizeof(want) - n, "line%d\n", i);
	snprintf(want + n, sizeof(want) - n, "\nbye\n");
	cr_assert_str_eq(cr.out, want, "console: %s", cr.err);
	h_free(&pr);
	h_free(&br);
	h_free(&cr);
	env_free(&e);
}

/* Re-protect: one side dies (the backup, or the primary: then the backup goes live), the
 * survivor runs on alone, a new backup joins it with --join (machine state, then the
 * log), then the survivor dies: the joined backup goes live and the client's transcript
 * is still the guest's whole output. */
struct join_guest {
	const char *guest, *cmdline;
	const char *initrd; /* contents of an initrd for --initrd, or NULL */
	void (*check)(const char *out);
};

static void check_ticker400(const char *out)
{
	check_ticker(out, 400);
}

static void join_case_with(bool primary_first, const struct join_guest *g)
{
	struct ft_env e;
	env_init(&e);
	h_guest_path(g->guest, e.guest, sizeof(e.guest));
	char rd[128];
	snprintf(rd, sizeof(rd), "%s/initrd.cpio", e.dir);
	if (g->initrd) {
		FILE *f = fopen(rd, "w");
		cr_assert(f && fputs(g->initrd, f) >= 0 && fclose(f) == 0);
	}
	int pcon = free_port(), bcon = free_port(), b2con = free_port(), plisten = free_port();
	char ps[40], bs[40], b2s[40], addrs[120], pl[40], join[40];
	snprintf(ps, sizeof(ps), "tcp:127.0.0.1:%d", pcon);
	snprintf(bs, sizeof(bs), "tcp:127.0.0.1:%d", bcon);
	snprintf(b2s, sizeof(b2s), "tcp:127.0.0.1:%d", b2con);
	snprintf(addrs, sizeof(addrs), "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", pcon, bcon,
		 b2con);
	snprintf(pl, sizeof(pl), "127.0.0.1:%d", plisten);
	snprintf(join, sizeof(join), "127.0.0.1:%d", plisten);
	struct h_proc b, p, b2, c;
	start_backup_serial(&e, e.port, e.key, TIMEOUT_S, bs, &b);
	char backup[32];
	snprintf(backup, sizeof(backup), "127.0.0.1:%d", e.port);
	char *pargv[] = {e.rewind, "ft", "primary", "--backup", backup, "--listen", pl, "--key",
			 e.key, "--arbiter", e.arb, "--timeout", TIMEOUT_S, "--serial", ps,
			 "--mem", "16M", "--append", (char *)g->cmdline, e.guest, NULL, NULL, NULL};
	if (g->initrd) {
		pargv[19] = "--initrd";
		pargv[20] = rd;
		pargv[21] = e.guest;
	}
	struct h_opts po = {.timeout_s = 90};
	h_start(pargv, &po, &p);
	/* The survivor's port, where the new backup joins: the primary's --listen, or the
	 * backup's stream port once it went live. */
	if (primary_first)
		snprintf(join, sizeof(join), "127.0.0.1:%d", e.port);
	char *cargv[] = {e.rewind, "console", "--key", e.key, "--no-input", addrs, NULL};
	struct h_opts co = {.timeout_s = 90};
	h_start(cargv, &co, &c);
	struct h_proc *first = primary_first ? &p : &b, *second = primary_first ? &b : &p;
	struct h_run fr;
	first->o.sig = SIGKILL;
	first->o.sig_after = primary_first ? "streaming to the backup" : "following pair";
	first->o.sig_delay_ms = 300;
	h_wait(first, &fr);
	cr_assert_eq(fr.termsig, SIGKILL, "%s", fr.err);
	usleep(300 * 1000);
	char *b2argv[] = {e.rewind, "ft", "backup", "--join", join, "--key", e.key, "--arbiter",
			  e.arb, "--timeout", TIMEOUT_S, "--serial", b2s, NULL};
	struct h_opts b2o = {.timeout_s = 90};
	h_start(b2argv, &b2o, &b2);
	second->o.sig = SIGKILL;
	second->o.sig_after = "a backup joined";
	second->o.sig_delay_ms = 400;
	struct h_run sr, b2r, cr;
	h_wait(second, &sr);
	h_wait(&b2, &b2r);
	h_wait(&c, &cr);
	cr_assert_eq(sr.termsig, SIGKILL, "the survivor ended before the kill: %s", sr.err);
	cr_assert(strstr(sr.err, primary_first ? "went live at position"
					       : "running on UNPROTECTED"), "%s", sr.err);
	cr_assert(strstr(sr.err, "protected again; the guest paused"), "%s", sr.err);
	cr_assert(strstr(b2r.err, "joined the primary"), "%s", b2r.err);
	cr_assert(strstr(b2r.err, "generation 2"), "%s", b2r.err);
	cr_assert(strstr(b2r.err, "went live at position"), "%s", b2r.err);
	cr_assert_eq(b2r.status, 1, "%s", b2r.err);
	cr_assert_eq(cr.status, 0, "console: %s", cr.err);
	g->check(cr.out);
	h_free(&fr);
	h_free(&sr);
	h_free(&b2r);
	h_free(&cr);
	env_free(&e);
}

static void join_case(bool primary_first)
{
	static const struct join_guest ticker = {"ticker", "lines=400 hz=200", NULL,
						 check_ticker400};
	join_case_with(primary_first, &ticker);
}

Test(ft, join_a_primary_then_failover, .timeout = 180)
{
	join_case(false);
}

Test(ft, join_a_backup_that_went_live_then_failover, .timeout = 180)
{
	join_case(true);
}

/* guests/initrd with rounds=400: the module it found, then 400 rounds that hash it again,
 * each the same hash. */
static const char initrd_text[] = "070701 the pair's initrd\nmore bytes of it\n";

static void check_initrd400(const char *out)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < sizeof(initrd_text) - 1; i++)
		h = (h ^ (uint8_t)initrd_text[i]) * 0x100000001b3ull;
	char want[200];
	snprintf(want, sizeof(want),
		 "modules: 1\nmodule 0: paddr 0xfff000 size %zu cmdline_paddr 0x0\n"
		 "  fnv1a64 %016llx head \"070701 the pair's initrd\"\n",
		 sizeof(initrd_text) - 1, (unsigned long long)h);
	size_t wl = strlen(want);
	cr_assert_eq(strncmp(out, want, wl), 0, "the guest did not find its module:\n%s", out);
	const char *s = out + wl;
	for (int i = 0; i < 400; i++) {
		snprintf(want, sizeof(want), "round %06d fnv1a64 %016llx\n", i,
			 (unsigned long long)h);
		cr_assert_eq(strncmp(s, want, strlen(want)), 0, "round %d: %.60s", i, s);
		s += strlen(want);
	}
	cr_assert_str_eq(s, "");
}

/* --initrd on the primary: the backup loads the module from the stream's header as a
 * replay does (its replay would diverge at the guest's first line otherwise), goes live
 * and the guest reads its module on; a backup that joins it gets the module with the RAM,
 * goes live in turn, and the guest still reads the same bytes. */
Test(ft, initrd_through_failover_and_join, .timeout = 180)
{
	static const struct join_guest g = {"initrd", "rounds=400", initrd_text,
					    check_initrd400};
	join_case_with(true, &g);
}

/* `rewind replay` of an ft side's --log file: the guest's whole output, matched. */
static void replay_matches(struct ft_env *e, const char *log, const char *out)
{
	char *rargv[] = {e->rewind, "replay", (char *)log, NULL};
	struct h_run rr;
	h_run(rargv, NULL, &rr);
	cr_assert_eq(rr.status, 1, "replay of %s: %s", log, rr.err);
	cr_assert(strstr(rr.err, ": matched"), "%s", rr.err);
	cr_assert_str_eq(rr.out, out, "the replay of %s shows other output", log);
	h_free(&rr);
}

/* A backup that joins the survivor at join and is killed some ms after it joined (or
 * follows to the end: kill false). */
static void join_and(struct ft_env *e, const char *join, bool kill, struct h_proc *b)
{
	char *argv[] = {e->rewind, "ft", "backup", "--join", (char *)join, "--key", e->key,
			"--arbiter", e->arb, "--timeout", TIMEOUT_S, NULL};
	struct h_opts o = {.timeout_s = 90};
	if (kill) {
		o.sig = SIGKILL;
		o.sig_after = "joined the primary";
		o.sig_delay_ms = 300;
	}
	h_start(argv, &o, b);
}

/* --log keeps one log of the whole run: on a primary whose backup dies and is replaced
 * twice (the stream starts a new log at each join; the file goes on), and on a backup that
 * went live and was joined (the events it received, then those of its live guest). */
Test(ft, log_is_one_log_across_joins, .timeout = 240)
{
	struct ft_env e;
	env_init(&e);
	char plog[128], blog[128], pl[40], backup[40];
	snprintf(plog, sizeof(plog), "%s/primary.rwl", e.dir);
	snprintf(blog, sizeof(blog), "%s/backup.rwl", e.dir);
	snprintf(pl, sizeof(pl), "127.0.0.1:%d", free_port());
	snprintf(backup, sizeof(backup), "127.0.0.1:%d", e.port);
	/* The primary, joined twice, to the end. */
	struct h_proc b1, p, b2, b3;
	start_backup(&e, e.port, e.key, TIMEOUT_S, &b1);
	char *pargv[] = {e.rewind, "ft", "primary", "--backup", backup, "--listen", pl, "--key",
			 e.key, "--arbiter", e.arb, "--timeout", TIMEOUT_S, "--mem", "16M",
			 "--log", plog, "--append", "lines=400 hz=200", e.guest, NULL};
	struct h_opts po = {.timeout_s = 90};
	h_start(pargv, &po, &p);
	struct h_run r1, r2, r3, pr;
	b1.o.sig = SIGKILL;
	b1.o.sig_after = "following pair";
	b1.o.sig_delay_ms = 300;
	h_wait(&b1, &r1);
	cr_assert_eq(r1.termsig, SIGKILL, "%s", r1.err);
	usleep(300 * 1000);
	join_and(&e, pl, true, &b2);
	h_wait(&b2, &r2);
	cr_assert_eq(r2.termsig, SIGKILL, "%s", r2.err);
	usleep(300 * 1000);
	join_and(&e, pl, false, &b3);
	h_wait(&p, &pr);
	h_wait(&b3, &r3);
	cr_assert_eq(pr.status, 1, "primary: %s", pr.err);
	check_ticker(pr.out, 400);
	cr_assert(strstr(pr.err, "joined (generation 2)") && strstr(pr.err, "joined (generation 3)"),
		  "the primary was not joined twice: %s", pr.err);
	cr_assert_eq(r3.status, 1, "last backup: %s", r3.err);
	cr_assert(strstr(r3.err, "the replay matched"), "%s", r3.err);
	replay_matches(&e, plog, pr.out);
	h_free(&r1);
	h_free(&r2);
	h_free(&r3);
	h_free(&pr);

	/* A backup with --log goes live and is joined; it runs to the end. */
	e.port = free_port();
	snprintf(backup, sizeof(backup), "127.0.0.1:%d", e.port);
	char *bargv[] = {e.rewind, "ft", "backup", "--listen", backup, "--key", e.key, "--arbiter",
			 e.arb, "--timeout", TIMEOUT_S, "--log", blog, NULL};
	struct h_opts bo = {.timeout_s = 90};
	h_start(bargv, &bo, &b1);
	char *p2argv[] = {e.rewind, "ft", "primary", "--backup", backup, "--key", e.key,
			  "--arbiter", e.arb, "--timeout", TIMEOUT_S, "--mem", "16M", "--append",
			  "lines=400 hz=200", e.guest, NULL};
	po.sig = SIGKILL;
	po.sig_after = "streaming to the backup";
	po.sig_delay_ms = 500;
	h_start(p2argv, &po, &p);
	h_wait(&p, &pr);
	cr_assert_eq(pr.termsig, SIGKILL, "%s", pr.err);
	usleep(300 * 1000);
	join_and(&e, backup, false, &b2);
	h_wait(&b1, &r1);
	h_wait(&b2, &r2);
	cr_assert_eq(r1.status, 1, "backup: %s", r1.err);
	cr_assert(strstr(r1.err, "went live at position"), "%s", r1.err);
	cr_assert(strstr(r1.err, "joined (generation 2)"), "%s", r1.err);
	check_ticker(r1.out, 400);
	cr_assert_eq(r2.status, 1, "joined backup: %s", r2.err);
	replay_matches(&e, blog, r1.out);
	h_free(&r1);
	h_free(&r2);
	h_free(&pr);
	/* A joining backup cannot keep a log: it starts from a state. */
	char *jl[] = {e.rewind, "ft", "backup", "--join", pl, "--key", e.key, "--arbiter", e.arb,
		      "--log", blog, NULL};
	h_run(jl, NULL, &r1);
	cr_assert_eq(r1.status, 2, "%s", r1.err);
	cr_assert_eq(h_lines(r1.err), 1, "%s", r1.err);
	h_free(&r1);
	env_free(&e);
}

/* A join while the guest writes much of its RAM (guests/dirty: 16 MiB swept at 16 pages a
 * tick): the copy goes round after round while the guest runs (the first round's writes
 * are thousands of pages), the pause sends what the last round left, and the joined
 * backup's replay matches to the end (the guest prints sums of what it reads back, so a
 * page the copy missed or left stale would diverge). */
Test(ft, join_copies_in_rounds, .timeout = 180)
{
	struct ft_env e;
	env_init(&e);
	h_guest_path("dirty", e.guest, sizeof(e.guest));
	char pl[40];
	snprintf(pl, sizeof(pl), "127.0.0.1:%d", free_port());
	struct h_proc b1, p, b2;
	start_backup(&e, e.port, e.key, TIMEOUT_S, &b1);
	char backup[40];
	snprintf(backup, sizeof(backup), "127.0.0.1:%d", e.port);
	char *pargv[] = {e.rewind, "ft", "primary", "--backup", backup, "--listen", pl, "--key",
			 e.key, "--arbiter", e.arb, "--timeout", TIMEOUT_S, "--mem", "64M",
			 "--append", "mb=16 lines=40", e.guest, NULL};
	struct h_opts po = {.timeout_s = 90};
	h_start(pargv, &po, &p);
	struct h_run r1, r2, pr;
	b1.o.sig = SIGKILL;
	b1.o.sig_after = "following pair";
	b1.o.sig_delay_ms = 300;
	h_wait(&b1, &r1);
	cr_assert_eq(r1.termsig, SIGKILL, "%s", r1.err);
	usleep(300 * 1000);
	join_and(&e, pl, false, &b2);
	h_wait(&p, &pr);
	h_wait(&b2, &r2);
	cr_assert_eq(pr.status, 1, "primary: %s", pr.err);
	cr_assert(strstr(pr.out, "dirty: done, 40 lines\n"), "%s", pr.out);
	const char *j = strstr(pr.err, "protected again; the guest paused");
	cr_assert(j, "%s", pr.err);
	const char *rw = strstr(j, " rounds while it ran");
	cr_assert(rw, "%s", j);
	const char *num = rw;
	while (num > j && num[-1] >= '0' && num[-1] <= '9')
		num--;
	cr_assert_geq(atoi(num), 2, "one copy round only: %s", j);
	cr_assert_eq(r2.status, 1, "joined backup: %s", r2.err);
	cr_assert(strstr(r2.err, "the replay matched"), "%s", r2.err);
	h_free(&r1);
	h_free(&r2);
	h_free(&pr);
	env_free(&e);
}

/* `echo cmd | rewind console ...`: input ends at once and is taken as soon as it is in the
 * guest's UART, but the guest's answer comes after (here it works a while before it echoes
 * each byte; then the output rule holds the answer for the backup's ack): the console
 * prints on until its output has been quiet for a second, so the answer is there, then
 * exits 0. */
Test(ft, console_waits_for_the_answer_after_input_ends, .timeout = 120)
{
	struct ft_env e;
	env_init(&e);
	h_guest_path("echo", e.guest, sizeof(e.guest));
	int pcon = free_port();
	char ps[40];
	snprintf(ps, sizeof(ps), "tcp:127.0.0.1:%d", pcon);
	struct h_proc b, p, c;
	start_backup(&e, e.port, e.key, TIMEOUT_S, &b);
	struct h_opts o = {.timeout_s = 60};
	start_primary_serial(&e, e.port, e.key, TIMEOUT_S, "spin=3000000", ps, &o, &p);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "printf 'hello-there\\n' | '%s' console --key '%s' 127.0.0.1:%d",
		 e.rewind, e.key, pcon);
	char *cargv[] = {"sh", "-c", cmd, NULL};
	struct h_opts co = {.timeout_s = 30};
	struct h_run cr, pr, br;
	h_start(cargv, &co, &c);
	h_wait(&c, &cr);
	kill(p.pid, SIGKILL);
	h_wait(&p, &pr);
	kill(b.pid, SIGKILL);
	h_wait(&b, &br);
	cr_assert_eq(cr.status, 0, "console: %s", cr.err);
	cr_assert_str_eq(cr.out, "echo: type; byte 113 quits\nhello-there\n", "console: %s",
			 cr.err);
	h_free(&cr);
	h_free(&pr);
	h_free(&br);
	env_free(&e);
}

/* A client that connects to the --listen port and says nothing (or a join that takes its
 * time) holds up nobody else: `ft status` answers at once, not after that client's 2 s
 * handshake timeout. */
Test(ft, status_not_held_up_by_a_silent_client, .timeout = 120)
{
	struct ft_env e;
	env_init(&e);
	int sport = free_port();
	char listen[32];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", sport);
	struct h_proc b, p;
	start_backup(&e, e.port, e.key, TIMEOUT_S, &b);
	char backup[32];
	snprintf(backup, sizeof(backup), "127.0.0.1:%d", e.port);
	char *pargv[] = {e.rewind, "ft", "primary", "--backup", backup, "--listen", listen,
			 "--key", e.key, "--arbiter", e.arb, "--timeout", TIMEOUT_S, "--append",
			 "lines=600 hz=200", e.guest, NULL};
	struct h_opts o = {.timeout_s = 60};
	h_start(pargv, &o, &p);
	char *sargv[] = {e.rewind, "ft", "status", "--key", e.key, listen, NULL};
	struct h_run sr = {0};
	for (int i = 0; i < 50; i++) { /* the primary listens */
		usleep(100 * 1000);
		h_run(sargv, NULL, &sr);
		if (sr.status == 0)
			break;
		h_free(&sr);
	}
	cr_assert_eq(sr.status, 0, "ft status never answered: %s", sr.err);
	h_free(&sr);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sport),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int silent[3];
	for (int i = 0; i < 3; i++) {
		silent[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		cr_assert(connect(silent[i], (struct sockaddr *)&sa, sizeof(sa)) == 0);
	}
	usleep(100 * 1000);
	double t0 = h_now();
	h_run(sargv, NULL, &sr);
	double took = h_now() - t0;
	cr_assert_eq(sr.status, 0, "%s", sr.err);
	cr_assert(strstr(sr.out, "role: primary\n"), "%s", sr.out);
	cr_assert_lt(took, 1.5, "ft status took %.2f s behind silent clients", took);
	h_free(&sr);
	for (int i = 0; i < 3; i++)
		close(silent[i]);
	struct h_run pr, br;
	h_wait(&p, &pr);
	h_wait(&b, &br);
	cr_assert_eq(pr.status, 1, "%s", pr.err);
	h_free(&pr);
	h_free(&br);
	env_free(&e);
}

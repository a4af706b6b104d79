/*
 * test_ft_exits.c: the ft pair where positions count exits (docs/ft.md, "Backends"), with
 * real `rewind` processes on loopback, as test_ft.c does for instruction positions. Each
 * case runs twice: on emu with `ft primary --positions exits` (every host: emu counts
 * exits and takes landmarks as kvm would, and its backup replays on emu counting them),
 * and with `--backend kvm` on both sides where /dev/kvm opens (skipped elsewhere, saying
 * so). The cases: the backup follows to the end and matches; kill -9 of the primary at
 * random points (what the primary showed, then the backup's output from there, is the
 * guest's output exactly); a join of the backup that went live (its live guest counts
 * exits on) and another failover, followed by `rewind console` whose transcript is
 * exactly the guest's output;
 * and the refusals: a joining backup on another backend than its primary's, `--backend
 * kvm` without /dev/kvm.
 *
 * The guest is guests/ticker (lines whose counts depend on the host's timing, so a backup
 * that went live elsewhere than where its primary's released output ends would print
 * other numbers); its even lines compute while timer ticks land (each tick a landmark),
 * its odd lines halt.
 */
#include "harness.h"
#include "tests/integration/ftpair.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define TIMEOUT_S "3" /* generous: a loaded 2-core machine must not fail over by accident */

/* How a variant runs its sides: the primary's extra options and the backup's. */
struct variant {
	const char *name;
	bool kvm;
	const char *primary[4]; /* NULL-terminated */
	const char *backup[3];
};

static const struct variant emu_exits = {"emu, --positions exits", false,
					 {"--positions", "exits", NULL}, {NULL}};
static const struct variant kvm_both = {"kvm", true, {"--backend", "kvm", NULL},
					{"--backend", "kvm", NULL}};

struct env {
	char dir[64], key[96], arb[128];
	char rewind[256], guest[256];
	const struct variant *v;
};

/* false: the variant cannot run here (the caller skips, saying why). */
static bool env_init(struct env *e, const struct variant *v)
{
	if (v->kvm && !h_have_kvm())
		return false;
	e->v = v;
	snprintf(e->dir, sizeof(e->dir), "/tmp/rewind-ftx-XXXXXX");
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
	return true;
}

static void env_free(struct env *e)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	cr_assert_eq(system(cmd), 0);
}

#define ARGS_MAX 32

struct args {
	char *v[ARGS_MAX];
	int n;
};

static void add(struct args *a, const char *s)
{
	cr_assert(a->n < ARGS_MAX - 1);
	a->v[a->n++] = (char *)s;
	a->v[a->n] = NULL;
}

/* ft backup: --listen port (join NULL) or --join join; the variant's options. */
static void start_backup(struct env *e, int port, const char *join, const char *serial,
			 const struct h_opts *o, struct h_proc *p)
{
	static char addr[8][32];
	static int k;
	char *a = addr[k++ % 8];
	snprintf(a, 32, "127.0.0.1:%d", port);
	struct args x = {0};
	add(&x, e->rewind);
	add(&x, "ft");
	add(&x, "backup");
	add(&x, join ? "--join" : "--listen");
	add(&x, join ? join : a);
	add(&x, "--key");
	add(&x, e->key);
	add(&x, "--arbiter");
	add(&x, e->arb);
	add(&x, "--timeout");
	add(&x, TIMEOUT_S);
	add(&x, "--serial");
	add(&x, serial);
	for (int i = 0; e->v->backup[i]; i++)
		add(&x, e->v->backup[i]);
	h_start(x.v, o, p);
}

/* ft primary to the backup at port, --listen listen (NULL: none); the variant's options. */
static void start_primary(struct env *e, int port, const char *listen, const char *serial,
			  const char *cmdline, const struct h_opts *o, struct h_proc *p)
{
	static char addr[32];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	struct args x = {0};
	add(&x, e->rewind);
	add(&x, "ft");
	add(&x, "primary");
	add(&x, "--backup");
	add(&x, addr);
	if (listen) {
		add(&x, "--listen");
		add(&x, listen);
	}
	add(&x, "--key");
	add(&x, e->key);
	add(&x, "--arbiter");
	add(&x, e->arb);
	add(&x, "--timeout");
	add(&x, TIMEOUT_S);
	add(&x, "--serial");
	add(&x, serial);
	add(&x, "--mem");
	add(&x, "16M");
	add(&x, "--append");
	add(&x, cmdline);
	for (int i = 0; e->v->primary[i]; i++)
		add(&x, e->v->primary[i]);
	add(&x, e->guest);
	h_start(x.v, o, p);
}

/* What the backup says it replays on: the variant's backend, counting exits. */
static void check_replaying(const struct env *e, const char *err)
{
	cr_assert(strstr(err, e->v->kvm ? "replaying on kvm" : "replaying on emu"), "%s", err);
	cr_assert(strstr(err, "positions count exits"), "%s", err);
}

/* ---- follow to the end ------------------------------------------------------------------ */

static void follows_to_the_end(const struct variant *v)
{
	struct env e;
	if (!env_init(&e, v))
		cr_skip_test("no /dev/kvm here: the kvm pair is not run");
	int port = free_port();
	struct h_proc b, p;
	struct h_opts o = {.timeout_s = 120};
	start_backup(&e, port, NULL, "stdio", &o, &b);
	start_primary(&e, port, NULL, "stdio", "lines=60 hz=1000", &o, &p);
	struct h_run pr, br;
	h_wait(&p, &pr);
	h_wait(&b, &br);
	cr_assert_eq(pr.status, 1, "primary: %s", pr.err);
	cr_assert(strstr(pr.err, "positions count exits"), "%s", pr.err);
	check_ticker(pr.out, 60);
	cr_assert_eq(br.status, 1, "backup: %s", br.err);
	check_replaying(&e, br.err);
	cr_assert(strstr(br.err, "the replay matched"), "%s", br.err);
	cr_assert_str_eq(br.out, "", "a following backup shows nothing");
	h_free(&pr);
	h_free(&br);
	env_free(&e);
}

Test(ft_exits, emu_backup_follows_to_the_end, .timeout = 150)
{
	follows_to_the_end(&emu_exits);
}

Test(ft_exits, kvm_backup_follows_to_the_end, .timeout = 150)
{
	follows_to_the_end(&kvm_both);
}

/* ---- kill -9 of the primary, then the console ---------------------------------------------- */

/*
 * kill -9 of the primary delay_ms after it began to stream, consoles on stdio: what the
 * primary showed (released output) is where the backup's output begins, byte for byte,
 * and the backup's output is the guest's whole output, every line once, in order.
 */
static void kill_primary(const struct variant *v, int delay_ms)
{
	struct env e;
	cr_assert(env_init(&e, v));
	int port = free_port();
	struct h_proc b, p;
	struct h_opts bo = {.timeout_s = 120};
	start_backup(&e, port, NULL, "stdio", &bo, &b);
	struct h_opts po = {.timeout_s = 120, .sig = SIGKILL,
			    .sig_after = "streaming to the backup", .sig_delay_ms = delay_ms};
	start_primary(&e, port, NULL, "stdio", "lines=200 hz=500", &po, &p);
	struct h_run pr, br;
	h_wait(&p, &pr);
	h_wait(&b, &br);
	cr_assert_eq(pr.termsig, SIGKILL, "the primary ended before the kill: %s", pr.err);
	cr_assert_eq(br.status, 1, "backup: %s", br.err);
	check_replaying(&e, br.err);
	cr_assert(strstr(br.err, "went live at position"), "%s", br.err);
	cr_assert_geq(br.len, pr.len);
	cr_assert_eq(memcmp(br.out, pr.out, pr.len), 0,
		     "the primary showed output the backup does not have:\n%s\n----\n%s", pr.out,
		     br.out);
	check_ticker(br.out, 200);
	h_free(&pr);
	h_free(&br);
	env_free(&e);
}

/* Random points: seeded from the clock, printed so that a failure can be rerun. */
static void kill_at_random_points(const struct variant *v)
{
	if (v->kvm && !h_have_kvm())
		cr_skip_test("no /dev/kvm here: the kvm pair is not run");
	unsigned seed = (unsigned)time(NULL);
	const char *s = getenv("REWIND_FT_SEED");
	if (s)
		seed = (unsigned)strtoul(s, NULL, 10);
	cr_log_info("REWIND_FT_SEED=%u", seed);
	srand(seed);
	for (int i = 0; i < 2; i++) {
		int delay = rand() % 300;
		cr_log_info("%s: kill the primary %d ms after it began to stream", v->name, delay);
		kill_primary(v, delay);
	}
}

Test(ft_exits, emu_kill_primary_at_random_points, .timeout = 300)
{
	kill_at_random_points(&emu_exits);
}

Test(ft_exits, kvm_kill_primary_at_random_points, .timeout = 300)
{
	kill_at_random_points(&kvm_both);
}

/* ---- a join, then another failover --------------------------------------------------------- */

/*
 * The primary is killed, the backup goes live (counting exits on, with landmarks), a new
 * backup joins it (--join: its machine state, then its log), then the survivor is killed
 * too: the joined backup goes live, and the client's transcript is the guest's whole
 * output.
 */
static void join_then_failover(const struct variant *v)
{
	struct env e;
	if (!env_init(&e, v))
		cr_skip_test("no /dev/kvm here: the kvm pair is not run");
	int port = free_port(), pcon = free_port(), bcon = free_port(), b2con = free_port();
	char ps[40], bs[40], b2s[40], addrs[120], join[40];
	snprintf(ps, sizeof(ps), "tcp:127.0.0.1:%d", pcon);
	snprintf(bs, sizeof(bs), "tcp:127.0.0.1:%d", bcon);
	snprintf(b2s, sizeof(b2s), "tcp:127.0.0.1:%d", b2con);
	snprintf(addrs, sizeof(addrs), "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", pcon, bcon,
		 b2con);
	snprintf(join, sizeof(join), "127.0.0.1:%d", port);
	struct h_proc b, p, b2, c;
	struct h_opts bo = {.timeout_s = 150, .sig = SIGKILL, .sig_after = "a backup joined",
			    .sig_delay_ms = 300};
	start_backup(&e, port, NULL, bs, &bo, &b);
	struct h_opts po = {.timeout_s = 150, .sig = SIGKILL,
			    .sig_after = "streaming to the backup", .sig_delay_ms = 150};
	start_primary(&e, port, NULL, ps, "lines=1000 hz=500", &po, &p);
	char *cargv[] = {e.rewind, "console", "--key", e.key, "--no-input", addrs, NULL};
	struct h_opts co = {.timeout_s = 150};
	h_start(cargv, &co, &c);
	struct h_run pr;
	h_wait(&p, &pr);
	cr_assert_eq(pr.termsig, SIGKILL, "the primary ended before the kill: %s", pr.err);
	/* The backup replays what it holds, then goes live: join it once it did (its
	 * status says it runs as a primary). */
	struct h_opts b2o = {.timeout_s = 150};
	for (int i = 0; i < 600; i++) {
		struct h_run sr;
		char *sargv[] = {e.rewind, "ft", "status", "--key", e.key, join, NULL};
		h_run(sargv, NULL, &sr);
		bool live = sr.status == 0 && strstr(sr.out, "role: primary");
		h_free(&sr);
		if (live)
			break;
		usleep(100 * 1000);
	}
	start_backup(&e, 0, join, b2s, &b2o, &b2);
	struct h_run br, b2r, cr;
	h_wait(&b, &br);
	h_wait(&b2, &b2r);
	h_wait(&c, &cr);
	cr_assert_eq(br.termsig, SIGKILL, "the survivor ended before the kill: %s", br.err);
	cr_assert(strstr(br.err, "went live at position"), "%s", br.err);
	cr_assert(strstr(br.err, "protected again; the guest paused"), "%s", br.err);
	cr_assert(strstr(b2r.err, "joined the primary"), "%s", b2r.err);
	cr_assert(strstr(b2r.err, "generation 2"), "%s", b2r.err);
	check_replaying(&e, b2r.err);
	cr_assert(strstr(b2r.err, "went live at position"), "%s", b2r.err);
	cr_assert_eq(b2r.status, 1, "%s", b2r.err);
	cr_assert_eq(cr.status, 0, "console: %s", cr.err);
	check_ticker(cr.out, 1000);
	h_free(&pr);
	h_free(&br);
	h_free(&b2r);
	h_free(&cr);
	env_free(&e);
}

Test(ft_exits, emu_join_a_backup_that_went_live_then_failover, .timeout = 300)
{
	join_then_failover(&emu_exits);
}

Test(ft_exits, kvm_join_a_backup_that_went_live_then_failover, .timeout = 300)
{
	join_then_failover(&kvm_both);
}

/* ---- refusals ----------------------------------------------------------------------------- */

/* A backup that joins on another backend than its primary's: refused at once, in one line
 * that says what to do; the pair runs on. */
Test(ft_exits, join_on_another_backend_is_refused, .timeout = 120)
{
	struct env e;
	cr_assert(env_init(&e, &emu_exits));
	int port = free_port(), plisten = free_port();
	char pl[40];
	snprintf(pl, sizeof(pl), "127.0.0.1:%d", plisten);
	struct h_proc b, p;
	struct h_opts o = {.timeout_s = 90};
	start_backup(&e, port, NULL, "stdio", &o, &b);
	start_primary(&e, port, pl, "stdio", "lines=200 hz=500", &o, &p);
	/* kvm asked for, the primary on emu: refused before any state goes (also where
	 * /dev/kvm is missing: the primary answers first). */
	struct h_run jr = {0};
	for (int i = 0; i < 100; i++) {
		char *jargv[] = {e.rewind, "ft", "backup", "--join", pl, "--key", e.key,
				 "--arbiter", e.arb, "--backend", "kvm", NULL};
		h_run(jargv, NULL, &jr);
		if (!strstr(jr.err, "cannot connect"))
			break;
		h_free(&jr);
		usleep(50 * 1000);
	}
	cr_assert_eq(jr.status, 4, "%s", jr.err);
	cr_assert_eq(h_lines(jr.err), 1, "%s", jr.err);
	cr_assert(strstr(jr.err, "runs its guest on emu") && strstr(jr.err, "--backend emu"),
		  "%s", jr.err);
	h_free(&jr);
	struct h_run pr, br;
	h_wait(&p, &pr);
	h_wait(&b, &br);
	cr_assert_eq(pr.status, 1, "primary: %s", pr.err);
	cr_assert(strstr(pr.err, "refused a backup's join on kvm"), "%s", pr.err);
	check_ticker(pr.out, 200);
	cr_assert_eq(br.status, 1, "backup: %s", br.err);
	cr_assert(strstr(br.err, "the replay matched"), "%s", br.err);
	h_free(&pr);
	h_free(&br);
	env_free(&e);
}

/* `ft primary --backend kvm` where /dev/kvm does not open: one line, status 10, as
 * `rewind record --backend kvm`, before it looks for its backup. */
Test(ft_exits, primary_on_kvm_without_kvm_is_refused, .timeout = 60)
{
	if (h_have_kvm())
		cr_skip_test("/dev/kvm opens here: the refusal is not run (the kvm cases are)");
	struct env e;
	cr_assert(env_init(&e, &emu_exits));
	char backup[32];
	snprintf(backup, sizeof(backup), "127.0.0.1:%d", free_port());
	char *argv[] = {e.rewind, "ft", "primary", "--backup", backup, "--key", e.key,
			"--arbiter", e.arb, "--backend", "kvm", e.guest, NULL};
	struct h_run r;
	h_run(argv, NULL, &r);
	cr_assert_eq(r.status, 10, "%s", r.err);
	cr_assert_eq(h_lines(r.err), 1, "%s", r.err);
	cr_assert(strstr(r.err, "--backend kvm: "), "%s", r.err);
	h_free(&r);
	env_free(&e);
}

/* unit */
/*
 * test_arbiter.c: ft/arbiter.c, both stores, as separate processes use them.
 *
 * For each store: two processes (fork) released at the same instant claim the same
 * generation, many times over: exactly one wins, the other is told who holds it. A repeated
 * claim by the winner wins again (also from a fresh arbiter, as a restarted process
 * would), another generation or pair is independent, and a store that cannot be used is
 * a clear error at open or FT_CLAIM_ERROR at claim. The etcd tests start a real etcd on
 * loopback (temporary data folder, free ports) and skip, saying so, where it is not
 * installed; it is started with PR_SET_PDEATHSIG, so it dies with the test process however
 * that ends, and the suite's fini kills it and removes its folder.
 */
#include "ft/arbiter.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[256];

static void rm_rf(const char *dir)
{
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		cr_log_warn("could not remove %s", dir);
}

static void file_setup(void)
{
	alarm(120); /* a hung test dies of SIGALRM, reported as a crash */
	snprintf(tmpdir, sizeof tmpdir, "/tmp/rewind-test-arb-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void file_teardown(void)
{
	rm_rf(tmpdir);
}

static struct ft_arbiter *open_ok(const char *spec)
{
	struct ft_arbiter *a;
	char err[512];
	cr_assert_eq(ft_arbiter_open(spec, &a, err, sizeof err), 0, "%s: %s", spec, err);
	cr_assert_str_eq(ft_arbiter_spec(a), spec);
	return a;
}

static void expect_claim(struct ft_arbiter *a, const char *pair, uint64_t gen, const char *who,
			 enum ft_claim want, const char *want_err)
{
	char err[512];
	enum ft_claim got = ft_arbiter_claim(a, pair, gen, who, err, sizeof err);
	cr_expect_eq(got, want, "%s gen %" PRIu64 " by '%s': got %d, want %d (%s)", pair, gen, who,
		     got, want, err);
	if (want_err)
		cr_expect(strstr(err, want_err), "want '%s' in: %s", want_err, err);
}

/*
 * Race two processes for generations 1..n of pair; each opens its own arbiter on spec
 * (as two hosts would) before they are released together. Exactly one may win each.
 */
static void race(const char *spec, const char *pair, int n)
{
	int won_by[2] = {0, 0};
	for (int gen = 1; gen <= n; gen++) {
		int go[2], rep[2];
		cr_assert_eq(pipe(go), 0);
		cr_assert_eq(pipe(rep), 0);
		pid_t pid[2];
		for (int i = 0; i < 2; i++) {
			pid[i] = fork();
			cr_assert_geq(pid[i], 0);
			if (pid[i] == 0) {
				close(go[1]);
				close(rep[0]);
				struct ft_arbiter *a;
				char err[512], who[32], msg[600];
				snprintf(who, sizeof who, "side-%d", i);
				int rc = 3;
				if (ft_arbiter_open(spec, &a, err, sizeof err) == 0) {
					char c;
					if (read(go[0], &c, 1) == 0) /* released */
						rc = (int)ft_arbiter_claim(a, pair, (uint64_t)gen,
									   who, err, sizeof err);
					ft_arbiter_close(a);
				}
				int ml = snprintf(msg, sizeof msg, "%d %d %s\n", i, rc,
						  rc == FT_CLAIM_WON ? "" : err);
				if (write(rep[1], msg, (size_t)ml) != ml)
					_exit(5);
				_exit(rc);
			}
		}
		close(go[0]);
		close(rep[1]);
		/* Give both time to open, then release them at once. */
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
		close(go[1]);
		int st[2], won = 0, lost = 0;
		for (int i = 0; i < 2; i++) {
			cr_assert_eq(waitpid(pid[i], &st[i], 0), pid[i]);
			cr_assert(WIFEXITED(st[i]), "claimer %d died", i);
			int rc = WEXITSTATUS(st[i]);
			won += rc == FT_CLAIM_WON;
			lost += rc == FT_CLAIM_LOST;
			if (rc == FT_CLAIM_WON)
				won_by[i]++;
		}
		char buf[2048];
		ssize_t got = read(rep[0], buf, sizeof buf - 1);
		close(rep[0]);
		buf[got > 0 ? got : 0] = 0;
		cr_assert_eq(won, 1, "gen %d: %d winners, %d losers:\n%s", gen, won, lost, buf);
		cr_assert_eq(lost, 1, "gen %d: %d losers:\n%s", gen, lost, buf);
		/* The loser was told who holds it. */
		int winner = WEXITSTATUS(st[0]) == FT_CLAIM_WON ? 0 : 1;
		char held[64];
		snprintf(held, sizeof held, "is held by side-%d", winner);
		cr_expect(strstr(buf, held), "gen %d: want '%s' in:\n%s", gen, held, buf);
	}
	cr_log_info("%s: %d races, side-0 won %d, side-1 won %d", spec, n, won_by[0], won_by[1]);
}

/* Claims by the same and other sides, generations and pairs, on one store. */
static void semantics(const char *spec)
{
	struct ft_arbiter *a = open_ok(spec), *b = open_ok(spec);
	expect_claim(a, "pair1", 1, "primary host-a:7000", FT_CLAIM_WON, NULL);
	expect_claim(a, "pair1", 1, "primary host-a:7000", FT_CLAIM_WON, NULL);
	expect_claim(b, "pair1", 1, "primary host-a:7000", FT_CLAIM_WON, NULL);
	expect_claim(b, "pair1", 1, "backup host-b:7000", FT_CLAIM_LOST,
		     "generation 1 of pair pair1 is held by primary host-a:7000");
	/* The next generation is a new question, and so is another pair. */
	expect_claim(b, "pair1", 2, "backup host-b:7000", FT_CLAIM_WON, NULL);
	expect_claim(a, "pair1", 2, "primary host-a:7000", FT_CLAIM_LOST,
		     "is held by backup host-b:7000");
	expect_claim(a, "pair2", 1, "other", FT_CLAIM_WON, NULL);
	expect_claim(a, "pair1", UINT64_MAX, "x", FT_CLAIM_WON, NULL);
	/* Pair ids that differ only in characters a file name cannot hold stay apart. */
	expect_claim(a, "a/b.c", 1, "one", FT_CLAIM_WON, NULL);
	expect_claim(a, "a_b.c", 1, "two", FT_CLAIM_WON, NULL);
	expect_claim(a, "a/b_c", 1, "three", FT_CLAIM_WON, NULL);
	expect_claim(a, "a/b.c", 1, "two", FT_CLAIM_LOST, "held by one");
	ft_arbiter_close(a);
	ft_arbiter_close(b);
	/* Claims outlive the arbiter that made them. */
	a = open_ok(spec);
	expect_claim(a, "pair1", 1, "backup host-b:7000", FT_CLAIM_LOST,
		     "held by primary host-a:7000");
	expect_claim(a, "pair1", 1, "primary host-a:7000", FT_CLAIM_WON, NULL);
	/* Bad arguments are the caller's bug, and said so. */
	expect_claim(a, "", 1, "x", FT_CLAIM_ERROR, "pair id");
	expect_claim(a, "has space", 1, "x", FT_CLAIM_ERROR, "pair id");
	expect_claim(a, "p", 1, "", FT_CLAIM_ERROR, "claimer");
	expect_claim(a, "p", 1, "new\nline", FT_CLAIM_ERROR, "claimer");
	ft_arbiter_close(a);
}

static void expect_open_fails(const char *spec, const char *want)
{
	struct ft_arbiter *a = (struct ft_arbiter *)1;
	char err[512];
	cr_expect_eq(ft_arbiter_open(spec, &a, err, sizeof err), -1, "%s opened", spec);
	cr_expect_null(a);
	cr_expect(strstr(err, want), "%s: want '%s' in: %s", spec, want, err);
	cr_expect_null(strchr(err, '\n'), "more than one line: %s", err);
}

/* ---- file: ----------------------------------------------------------------------------- */

TestSuite(file_arbiter, .init = file_setup, .fini = file_teardown, .timeout = 120);

Test(file_arbiter, race_exactly_one_wins)
{
	char spec[300];
	snprintf(spec, sizeof spec, "file:%s/vm1.arb", tmpdir);
	race(spec, "racepair", 200);
	/* Nothing but the claims is left behind. */
	char cmd[400];
	snprintf(cmd, sizeof cmd, "ls '%s' | grep -vc '^vm1.arb.racepair.[0-9]*$'", tmpdir);
	FILE *p = popen(cmd, "r");
	int stray = -1;
	cr_assert_eq(fscanf(p, "%d", &stray), 1);
	pclose(p);
	cr_expect_eq(stray, 0, "temporary files left in %s", tmpdir);
}

Test(file_arbiter, semantics)
{
	char spec[300];
	snprintf(spec, sizeof spec, "file:%s/vm1.arb", tmpdir);
	semantics(spec);
	/* The claim is a file a person can read. */
	char path[400], buf[256] = "";
	snprintf(path, sizeof path, "%s/vm1.arb.pair1.1", tmpdir);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	cr_expect_gt(fread(buf, 1, sizeof buf - 1, f), 0);
	fclose(f);
	cr_expect(strstr(buf, "who=primary host-a:7000\n"), "%s", buf);
}

Test(file_arbiter, relative_path)
{
	char cwd[4096];
	cr_assert_not_null(getcwd(cwd, sizeof cwd));
	cr_assert_eq(chdir(tmpdir), 0);
	struct ft_arbiter *a = open_ok("file:rel.arb");
	expect_claim(a, "p", 7, "me", FT_CLAIM_WON, NULL);
	ft_arbiter_close(a);
	cr_expect_eq(access("rel.arb.p.7", F_OK), 0);
	cr_assert_eq(chdir(cwd), 0);
}

Test(file_arbiter, a_foreign_file_is_never_a_second_winner)
{
	char spec[300], path[400];
	snprintf(spec, sizeof spec, "file:%s/vm1.arb", tmpdir);
	snprintf(path, sizeof path, "%s/vm1.arb.p.3", tmpdir);
	FILE *f = fopen(path, "w");
	fputs("something else\n", f);
	fclose(f);
	struct ft_arbiter *a = open_ok(spec);
	expect_claim(a, "p", 3, "me", FT_CLAIM_LOST, "is not a claim");
	expect_claim(a, "p", 4, "me", FT_CLAIM_WON, NULL);
	ft_arbiter_close(a);
}

Test(file_arbiter, store_gone_at_claim_time)
{
	char dir[300], spec[400];
	snprintf(dir, sizeof dir, "%s/sub", tmpdir);
	cr_assert_eq(mkdir(dir, 0755), 0);
	snprintf(spec, sizeof spec, "file:%s/vm1.arb", dir);
	struct ft_arbiter *a = open_ok(spec);
	cr_assert_eq(rmdir(dir), 0);
	expect_claim(a, "p", 1, "me", FT_CLAIM_ERROR, "cannot write a claim");
	ft_arbiter_close(a);
}

Test(file_arbiter, open_errors)
{
	char spec[400];
	expect_open_fails("file:", "give a file name");
	snprintf(spec, sizeof spec, "file:%s/", tmpdir);
	expect_open_fails(spec, "give a file name");
	expect_open_fails("file:/nonexistent-rewind-dir/vm1.arb",
			  "folder /nonexistent-rewind-dir: No such file or directory");
	snprintf(spec, sizeof spec, "file:%s/plain/vm1.arb", tmpdir);
	char plain[300];
	snprintf(plain, sizeof plain, "%s/plain", tmpdir);
	fclose(fopen(plain, "w"));
	expect_open_fails(spec, "is not a folder");
	expect_open_fails("nfs:/x", "give file:PATH (shared storage) or etcd:HOST:PORT/KEY");
	expect_open_fails("", "give file:PATH");
	/* A folder no one may write to (sysfs refuses even root). */
	expect_open_fails("file:/sys/vm1.arb", "cannot create files in /sys");
}

Test(file_arbiter, unwritable_folder)
{
	char dir[300], spec[400];
	snprintf(dir, sizeof dir, "%s/ro", tmpdir);
	cr_assert_eq(chmod(tmpdir, 0755), 0); /* the user may reach it, not write in it */
	cr_assert_eq(mkdir(dir, 0555), 0);
	cr_assert_eq(chmod(dir, 0555), 0);
	snprintf(spec, sizeof spec, "file:%s/vm1.arb", dir);
	/* Root writes anywhere: check as an ordinary user, in a child. */
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
			_exit(3);
		struct ft_arbiter *a;
		char err[512];
		if (ft_arbiter_open(spec, &a, err, sizeof err) == 0)
			_exit(1);
		char want[400];
		snprintf(want, sizeof want, "cannot create files in %s: Permission denied", dir);
		if (strstr(err, want) && strstr(err, "writable"))
			_exit(0);
		fprintf(stderr, "unwritable folder: want '%s' in: %s\n", want, err);
		_exit(2);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	cr_expect_neq(WEXITSTATUS(st), 3, "could not become an ordinary user to test this");
	cr_expect_neq(WEXITSTATUS(st), 1, "an unwritable folder opened");
	cr_expect_eq(WEXITSTATUS(st), 0, "wrong message");
}

/* ---- etcd: ----------------------------------------------------------------------------- */

static struct {
	pid_t pid;
	char dir[256];
	int port;
	char spec[128];
} etcd;

static int free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t sl = sizeof sin;
	if (s < 0 || bind(s, (struct sockaddr *)&sin, sizeof sin) < 0 ||
	    getsockname(s, (struct sockaddr *)&sin, &sl) < 0)
		cr_assert_fail("no free port: %s", strerror(errno));
	close(s);
	return ntohs(sin.sin_port);
}

static const char *find_etcd(void)
{
	static char path[4096];
	const char *env = getenv("PATH");
	char *dirs = strdup(env ? env : "/usr/local/bin:/usr/bin:/bin");
	const char *found = NULL;
	for (char *save, *d = strtok_r(dirs, ":", &save); d && !found;
	     d = strtok_r(NULL, ":", &save)) {
		snprintf(path, sizeof path, "%s/etcd", d);
		if (access(path, X_OK) == 0)
			found = path;
	}
	free(dirs);
	return found;
}

static void etcd_log_tail(void)
{
	char cmd[400];
	snprintf(cmd, sizeof cmd, "tail -n 15 '%s/etcd.log' >&2", etcd.dir);
	if (system(cmd) != 0)
		cr_log_warn("no etcd log");
}

static void etcd_start(void)
{
	alarm(120);
	etcd.pid = 0;
	etcd.dir[0] = 0;
	const char *bin = find_etcd();
	if (!bin)
		cr_skip_test("etcd is not installed (Debian package etcd-server): the etcd "
			     "arbiter is not tested here");
	snprintf(etcd.dir, sizeof etcd.dir, "/tmp/rewind-test-etcd-XXXXXX");
	cr_assert_not_null(mkdtemp(etcd.dir));
	etcd.port = free_port();
	int peer = free_port();
	char data[300], log[300], curl[64], purl[64], cluster[96];
	snprintf(data, sizeof data, "%s/data", etcd.dir);
	snprintf(log, sizeof log, "%s/etcd.log", etcd.dir);
	snprintf(curl, sizeof curl, "http://127.0.0.1:%d", etcd.port);
	snprintf(purl, sizeof purl, "http://127.0.0.1:%d", peer);
	snprintf(cluster, sizeof cluster, "t=%s", purl);
	pid_t parent = getpid();
	etcd.pid = fork();
	cr_assert_geq(etcd.pid, 0);
	if (etcd.pid == 0) {
		/* Die with the test, however it ends. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execl(bin, "etcd", "--name", "t", "--data-dir", data, "--listen-client-urls", curl,
		      "--advertise-client-urls", curl, "--listen-peer-urls", purl,
		      "--initial-advertise-peer-urls", purl, "--initial-cluster", cluster,
		      (char *)NULL);
		_exit(127);
	}
	snprintf(etcd.spec, sizeof etcd.spec, "etcd:127.0.0.1:%d/rewind-test", etcd.port);
	/* Ready when the arbiter opens on it. */
	char err[512] = "";
	for (int i = 0; i < 300; i++) {
		struct ft_arbiter *a;
		if (ft_arbiter_open(etcd.spec, &a, err, sizeof err) == 0) {
			ft_arbiter_close(a);
			return;
		}
		int st;
		if (waitpid(etcd.pid, &st, WNOHANG) == etcd.pid) {
			etcd.pid = 0;
			etcd_log_tail();
			cr_assert_fail("etcd exited at start (status %#x); its log is above", st);
		}
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	etcd_log_tail();
	cr_assert_fail("etcd did not answer within 30 s: %s", err);
}

static void etcd_stop(void)
{
	if (etcd.pid > 0) {
		kill(etcd.pid, SIGKILL);
		waitpid(etcd.pid, NULL, 0);
		etcd.pid = 0;
	}
	if (etcd.dir[0])
		rm_rf(etcd.dir);
}

TestSuite(etcd_arbiter, .init = etcd_start, .fini = etcd_stop, .timeout = 120);

Test(etcd_arbiter, race_exactly_one_wins)
{
	race(etcd.spec, "racepair", 40);
}

Test(etcd_arbiter, semantics)
{
	semantics(etcd.spec);
}

Test(etcd_arbiter, store_gone_at_claim_time)
{
	struct ft_arbiter *a = open_ok(etcd.spec);
	expect_claim(a, "p", 1, "me", FT_CLAIM_WON, NULL);
	kill(etcd.pid, SIGKILL);
	waitpid(etcd.pid, NULL, 0);
	etcd.pid = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	expect_claim(a, "p", 1, "me", FT_CLAIM_ERROR, "unreachable");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	cr_expect_lt(s, 3.0, "an unreachable etcd took %.1f s to report", s);
	ft_arbiter_close(a);
}

/* Without an etcd: the spec and an address where nothing answers. */
TestSuite(etcd_spec, .timeout = 60);

Test(etcd_spec, bad_specs_and_no_etcd)
{
	alarm(60);
	expect_open_fails("etcd:", "no KEY");
	expect_open_fails("etcd:127.0.0.1:2379", "no KEY");
	expect_open_fails("etcd:127.0.0.1:2379/", "no KEY");
	expect_open_fails("etcd:127.0.0.1/key", "no HOST:PORT");
	expect_open_fails("etcd::2379/key", "no HOST:PORT");
	expect_open_fails("etcd:127.0.0.1:/key", "no HOST:PORT");
	expect_open_fails("etcd:127.0.0.1:99999/key", "bad port");
	expect_open_fails("etcd:127.0.0.1:2x/key", "bad port");
	expect_open_fails("etcd:us@er:1/key", "bad host");
	/* A port where nothing listens: refused at once, a clear reason. */
	int port = free_port();
	char spec[128];
	snprintf(spec, sizeof spec, "etcd:127.0.0.1:%d/k", port);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	char want[128];
	snprintf(want, sizeof want, "etcd at 127.0.0.1:%d unreachable", port);
	expect_open_fails(spec, want);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	cr_expect_lt(s, 3.0, "took %.1f s", s);
}

/* Something that speaks HTTP but is not etcd. */
static void not_etcd(int l)
{
	for (int i = 0; i < 2; i++) {
		int s = accept(l, NULL, NULL);
		if (s < 0)
			_exit(1);
		char buf[4096];
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
		if (read(s, buf, sizeof buf) < 0)
			_exit(1);
		static const char r[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n"
					"Connection: close\r\n\r\nnot here\n";
		if (write(s, r, sizeof r - 1) < 0)
			_exit(1);
		close(s);
	}
	_exit(0);
}

Test(etcd_spec, http_that_is_not_etcd)
{
	alarm(60);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t sl = sizeof sin;
	cr_assert_eq(bind(l, (struct sockaddr *)&sin, sizeof sin), 0);
	cr_assert_eq(listen(l, 4), 0);
	getsockname(l, (struct sockaddr *)&sin, &sl);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		not_etcd(l);
	}
	close(l);
	char spec[128];
	snprintf(spec, sizeof spec, "etcd:127.0.0.1:%d/k", ntohs(sin.sin_port));
	expect_open_fails(spec, "answered HTTP 404 to /v3/maintenance/status");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

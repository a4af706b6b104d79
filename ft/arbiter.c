/*
 * arbiter.c: split-brain prevention for the ft pair (arbiter.h; docs/ft-security.md,
 * "Arbiters", says what each store must guarantee).
 *
 * file:PATH   The claim of (pair, gen) is the file PATH.<pair>.<gen>. A claimer writes
 *             its claim (who, and a random token) to a temporary file of its own in the
 *             same folder, syncs it, and link()s it to that name: link() creates the
 *             name only if it does not exist, atomically, also on NFS (where the server
 *             does it), so exactly one claimer's link succeeds. A claimer whose link
 *             fails reads the claim there: its own token (NFS retried a link whose reply
 *             was lost) or its own who (a repeated claim) wins, anything else loses.
 *             The folder is synced after a win, so the claim survives a crash.
 * etcd:HOST:PORT/KEY
 *             One transaction on etcd's v3 JSON gateway (POST /v3/kv/txn): if
 *             KEY/<pair>/<gen> was never created, put who there, else read it. etcd
 *             runs the transaction atomically, so exactly one put succeeds; the reader
 *             compares the holder with its own who as above. libcurl, plain HTTP, 1 s to
 *             connect and 2 s in all per request.
 */
#include "ft/arbiter.h"
#include "ft/errf.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PAIR_ID 64
#define MAX_WHO	    200
#define TOKEN_HEX   32 /* 16 random bytes */
#define CLAIM_MAGIC "rewind ft claim v1\n"
#define MAX_REPLY   (64u << 10)

enum kind { ARB_FILE, ARB_ETCD };

struct ft_arbiter {
	enum kind kind;
	char *spec;
	/* file: */
	char *path; /* the claims' name prefix */
	char *dir;  /* the folder that holds them */
	/* etcd: */
	char *url; /* http://HOST:PORT */
	char *hostport;
	char *key; /* the prefix of the claims' keys */
};

static bool printable(const char *s, size_t max, bool spaces)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < (spaces ? ' ' : '!') || s[i] > '~')
			return false;
	return true;
}

/* ---- file: ----------------------------------------------------------------------------- */

static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* Create path (which must not exist) holding data, synced. Returns 0 or -1 (errno). */
static int write_new(const char *path, const char *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(fd, data + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = w < 0 ? errno : EIO;
			close(fd);
			unlink(path);
			errno = e;
			return -1;
		}
		done += (size_t)w;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		int e = errno;
		unlink(path);
		errno = e;
		return -1;
	}
	return 0;
}

static void random_hex(char *out, size_t bytes)
{
	uint8_t r[32];
	randombytes_buf(r, bytes);
	sodium_bin2hex(out, bytes * 2 + 1, r, bytes);
}

static int file_open(struct ft_arbiter *a, const char *path, char *err, size_t errlen)
{
	if (!*path || path[strlen(path) - 1] == '/')
		return ft_errf(
		    err, errlen,
		    "arbiter %s: give a file name, e.g. file:/shared/vm1.arb (claims are "
		    "kept beside it)",
		    a->spec);
	a->path = strdup(path);
	const char *slash = strrchr(path, '/');
	a->dir = slash == path ? strdup("/")
		 : slash       ? strndup(path, (size_t)(slash - path))
			       : strdup(".");
	if (!a->path || !a->dir)
		return ft_errf(err, errlen, "arbiter %s: out of memory", a->spec);
	struct stat st;
	if (stat(a->dir, &st) < 0)
		return ft_errf(err, errlen,
			       "arbiter %s: folder %s: %s (it must exist, on storage "
			       "both hosts share)",
			       a->spec, a->dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return ft_errf(err, errlen, "arbiter %s: %s is not a folder", a->spec, a->dir);

	/* Try what a claim does: create a file there and hard-link it. */
	char tok[TOKEN_HEX + 1];
	random_hex(tok, TOKEN_HEX / 2);
	size_t n = strlen(a->path) + 64;
	char *probe = malloc(n), *linked = malloc(n);
	if (!probe || !linked) {
		free(probe);
		free(linked);
		return ft_errf(err, errlen, "arbiter %s: out of memory", a->spec);
	}
	snprintf(probe, n, "%s.probe-%s", a->path, tok);
	snprintf(linked, n, "%s.probe-%s.link", a->path, tok);
	int rc = 0;
	if (write_new(probe, CLAIM_MAGIC, strlen(CLAIM_MAGIC)) < 0) {
		rc = ft_errf(err, errlen,
			     "arbiter %s: cannot create files in %s: %s (the folder must be "
			     "writable by this user)",
			     a->spec, a->dir, strerror(errno));
	} else {
		if (link(probe, linked) < 0)
			rc = ft_errf(err, errlen,
				     "arbiter %s: the file system of %s cannot hard-link files "
				     "(%s); the file arbiter needs link(), use another folder or "
				     "an etcd: arbiter",
				     a->spec, a->dir, strerror(errno));
		unlink(linked);
		unlink(probe);
	}
	free(probe);
	free(linked);
	return rc;
}

/* The claim file's name: PATH.<pair>.<gen>, pair bytes outside [A-Za-z0-9_-] as %XX. */
static char *claim_name(const struct ft_arbiter *a, const char *pair_id, uint64_t gen)
{
	size_t n = strlen(a->path) + 3 * strlen(pair_id) + 32;
	char *name = malloc(n);
	if (!name)
		return NULL;
	size_t o = (size_t)snprintf(name, n, "%s.", a->path);
	for (const char *p = pair_id; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-')
			name[o++] = (char)ch;
		else
			o += (size_t)snprintf(name + o, n - o, "%%%02X", ch);
	}
	snprintf(name + o, n - o, ".%" PRIu64, gen);
	return name;
}

/*
 * Read the claim in name: who (into who, whocap) and token. Returns 0, 1 when the file
 * is there but not a claim, -1 on a read error (errno).
 */
static int read_claim(const char *name, char *who, size_t whocap, char *token)
{
	int fd = open(name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char buf[512];
	size_t got = 0;
	for (;;) {
		ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		if (r == 0 || (got += (size_t)r) == sizeof buf - 1)
			break;
	}
	close(fd);
	buf[got] = 0;
	size_t ml = strlen(CLAIM_MAGIC);
	if (got < ml || memcmp(buf, CLAIM_MAGIC, ml) != 0)
		return 1;
	char *w = strstr(buf + ml, "who=");
	char *t = strstr(buf + ml, "token=");
	if (!w || !t)
		return 1;
	w += 4;
	t += 6;
	char *we = strchr(w, '\n'), *te = strchr(t, '\n');
	if (!we || !te || (size_t)(we - w) >= whocap || te - t != TOKEN_HEX)
		return 1;
	memcpy(who, w, (size_t)(we - w));
	who[we - w] = 0;
	memcpy(token, t, TOKEN_HEX);
	token[TOKEN_HEX] = 0;
	return 0;
}

static enum ft_claim file_claim(struct ft_arbiter *a, const char *pair_id, uint64_t gen,
				const char *who, char *err, size_t errlen)
{
	char tok[TOKEN_HEX + 1];
	random_hex(tok, TOKEN_HEX / 2);
	char *name = claim_name(a, pair_id, gen);
	size_t tn = name ? strlen(name) + TOKEN_HEX + 16 : 0;
	char *tmp = name ? malloc(tn) : NULL;
	char body[64 + MAX_WHO + TOKEN_HEX];
	enum ft_claim res = FT_CLAIM_ERROR;
	if (!tmp) {
		ft_errf(err, errlen, "arbiter %s: out of memory", a->spec);
		goto out;
	}
	snprintf(tmp, tn, "%s.tmp-%s", name, tok);
	int bl = snprintf(body, sizeof body, "%swho=%s\ntoken=%s\n", CLAIM_MAGIC, who, tok);
	if (write_new(tmp, body, (size_t)bl) < 0) {
		ft_errf(err, errlen, "arbiter %s: cannot write a claim in %s: %s", a->spec, a->dir,
			strerror(errno));
		goto out;
	}
	int lr = link(tmp, name);
	int le = errno;
	struct stat st;
	/* Over NFS, a retried link can fail although the first try made the name: then
	 * our temporary file has two links (open(2), "O_EXCL"). */
	bool linked = lr == 0 || (stat(tmp, &st) == 0 && st.st_nlink == 2);
	unlink(tmp);
	if (!linked && le != EEXIST) {
		ft_errf(err, errlen, "arbiter %s: cannot make claim %s: %s", a->spec, name,
			strerror(le));
		goto out;
	}
	if (!linked) {
		char holder[MAX_WHO + 1], htok[TOKEN_HEX + 1];
		int r = read_claim(name, holder, sizeof holder, htok);
		if (r < 0) {
			ft_errf(err, errlen, "arbiter %s: cannot read claim %s: %s", a->spec, name,
				strerror(errno));
			goto out;
		}
		if (r > 0) {
			/* Someone made that name; never let a second side win beside it. */
			ft_errf(err, errlen,
				"generation %" PRIu64 " of pair %s is taken: %s exists but is not "
				"a claim this version understands",
				gen, pair_id, name);
			res = FT_CLAIM_LOST;
			goto out;
		}
		if (strcmp(htok, tok) != 0 && strcmp(holder, who) != 0) {
			ft_errf(err, errlen, "generation %" PRIu64 " of pair %s is held by %s (%s)",
				gen, pair_id, holder, name);
			res = FT_CLAIM_LOST;
			goto out;
		}
	}
	/* Won (now or before): make the name durable before saying so. */
	if (sync_dir(a->dir) < 0) {
		ft_errf(err, errlen, "arbiter %s: cannot sync folder %s: %s", a->spec, a->dir,
			strerror(errno));
		goto out;
	}
	res = FT_CLAIM_WON;
out:
	free(tmp);
	free(name);
	return res;
}

/* ---- etcd: ----------------------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct reply {
	char *data;
	size_t len;
	bool too_long;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct reply *r = arg;
	size_t add = size * n;
	if (r->len + add > MAX_REPLY) {
		r->too_long = true;
		return 0;
	}
	char *nd = realloc(r->data, r->len + add + 1);
	if (!nd)
		return 0;
	memcpy(nd + r->len, p, add);
	r->data = nd;
	r->len += add;
	r->data[r->len] = 0;
	return add;
}

/*
 * POST body to the gateway's path. Returns 0 with the reply (NUL-terminated, caller
 * frees) on HTTP 200, or -1 with a reason in err.
 */
static int etcd_post(const struct ft_arbiter *a, const char *path, const char *body, char **out,
		     char *err, size_t errlen)
{
	*out = NULL;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return ft_errf(err, errlen, "arbiter %s: cannot initialise libcurl: %s", a->spec,
			       curl_easy_strerror(curl_init_rc));
	CURL *h = curl_easy_init();
	if (!h)
		return ft_errf(err, errlen, "arbiter %s: cannot initialise libcurl", a->spec);
	size_t ul = strlen(a->url) + strlen(path) + 1;
	char *url = malloc(ul);
	struct reply r = {0};
	char cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	int rc = -1;
	if (!url || !hdr) {
		ft_errf(err, errlen, "arbiter %s: out of memory", a->spec);
		goto out;
	}
	snprintf(url, ul, "%s%s", a->url, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROXY, ""); /* the store is reached directly */
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
	CURLcode cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		if (r.too_long)
			ft_errf(err, errlen, "arbiter %s: %s answered more than %u bytes to %s",
				a->spec, a->hostport, MAX_REPLY, path);
		else
			ft_errf(err, errlen, "arbiter %s: etcd at %s unreachable: %s", a->spec,
				a->hostport, cerr[0] ? cerr : curl_easy_strerror(cc));
		goto out;
	}
	long code = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200) {
		char snip[121] = "";
		if (r.data) {
			size_t i = 0;
			for (; i < 120 && r.data[i]; i++)
				snip[i] = (r.data[i] >= ' ' && r.data[i] <= '~') ? r.data[i] : ' ';
			snip[i] = 0;
		}
		ft_errf(err, errlen,
			"arbiter %s: %s answered HTTP %ld to %s (is it etcd 3.4 or later, its "
			"client port?): %s",
			a->spec, a->hostport, code, path, snip);
		goto out;
	}
	*out = r.data ? r.data : strdup("");
	r.data = NULL;
	rc = *out ? 0 : ft_errf(err, errlen, "arbiter %s: out of memory", a->spec);
out:
	free(r.data);
	free(url);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	return rc;
}

/* The value of "name" in JSON text j: points after the colon and blanks, or NULL. */
static const char *json_field(const char *j, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = j; (p = strchr(p, '"')); p++) {
		if (strncmp(p + 1, name, n) != 0 || p[1 + n] != '"')
			continue;
		const char *q = p + n + 2;
		while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
			q++;
		if (*q != ':')
			continue;
		q++;
		while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
			q++;
		return q;
	}
	return NULL;
}

static char *b64(const void *bin, size_t n)
{
	size_t len = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
	char *s = malloc(len);
	if (s)
		sodium_bin2base64(s, len, bin, n, sodium_base64_VARIANT_ORIGINAL);
	return s;
}

static int parse_hostport(struct ft_arbiter *a, const char *s, char *err, size_t errlen)
{
	const char *slash = strchr(s, '/');
	const char *usage = "give etcd:HOST:PORT/KEY, e.g. etcd:10.0.0.5:2379/rewind/vm1";
	if (!slash || !slash[1])
		return ft_errf(err, errlen, "arbiter %s: no KEY: %s", a->spec, usage);
	const char *colon = NULL;
	if (s[0] == '[') {
		const char *rb = memchr(s, ']', (size_t)(slash - s));
		if (rb && rb[1] == ':')
			colon = rb + 1;
	} else {
		for (const char *p = s; p < slash; p++)
			if (*p == ':')
				colon = p;
	}
	if (!colon || colon == s || colon + 1 == slash)
		return ft_errf(err, errlen, "arbiter %s: no HOST:PORT: %s", a->spec, usage);
	char *end;
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (end != slash || port == 0 || port > 65535 || colon[1] == '+' || colon[1] == '-')
		return ft_errf(err, errlen, "arbiter %s: bad port: %s", a->spec, usage);
	for (const char *p = s; p < colon; p++)
		if (*p <= ' ' || *p > '~' || *p == '/' || *p == '@' || *p == '?' || *p == '#')
			return ft_errf(err, errlen, "arbiter %s: bad host: %s", a->spec, usage);
	a->hostport = strndup(s, (size_t)(slash - s));
	size_t ul = strlen(a->hostport) + 8;
	a->url = malloc(ul);
	a->key = strdup(slash + 1);
	if (!a->hostport || !a->url || !a->key)
		return ft_errf(err, errlen, "arbiter %s: out of memory", a->spec);
	snprintf(a->url, ul, "http://%s", a->hostport);
	return 0;
}

static int etcd_open(struct ft_arbiter *a, const char *rest, char *err, size_t errlen)
{
	if (parse_hostport(a, rest, err, errlen) < 0)
		return -1;
	char *reply;
	if (etcd_post(a, "/v3/maintenance/status", "{}", &reply, err, errlen) < 0)
		return -1;
	bool ok = json_field(reply, "version") != NULL;
	free(reply);
	if (!ok)
		return ft_errf(err, errlen,
			       "arbiter %s: %s answered /v3/maintenance/status without a version: "
			       "not etcd's v3 gateway?",
			       a->spec, a->hostport);
	return 0;
}

static enum ft_claim etcd_claim(struct ft_arbiter *a, const char *pair_id, uint64_t gen,
				const char *who, char *err, size_t errlen)
{
	size_t kl = strlen(a->key) + strlen(pair_id) + 32;
	char *key = malloc(kl);
	char *k64 = NULL, *v64 = NULL, *body = NULL, *reply = NULL;
	enum ft_claim res = FT_CLAIM_ERROR;
	if (!key)
		goto oom;
	snprintf(key, kl, "%s/%s/%" PRIu64, a->key, pair_id, gen);
	k64 = b64(key, strlen(key));
	v64 = b64(who, strlen(who));
	if (!k64 || !v64)
		goto oom;
	size_t bl = 2 * strlen(k64) + strlen(k64) + strlen(v64) + 256;
	body = malloc(bl);
	if (!body)
		goto oom;
	/* If the key was never created, put who there; else read who is there. */
	snprintf(body, bl,
		 "{\"compare\":[{\"key\":\"%s\",\"target\":\"CREATE\",\"result\":\"EQUAL\","
		 "\"create_revision\":\"0\"}],"
		 "\"success\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}],"
		 "\"failure\":[{\"request_range\":{\"key\":\"%s\"}}]}",
		 k64, k64, v64, k64);
	if (etcd_post(a, "/v3/kv/txn", body, &reply, err, errlen) < 0)
		goto out;
	const char *s = json_field(reply, "succeeded");
	if (s && strncmp(s, "true", 4) == 0) {
		res = FT_CLAIM_WON;
		goto out;
	}
	/* proto3 JSON leaves out a false "succeeded": the range answer must be there. */
	const char *kvs = json_field(reply, "kvs");
	const char *v = kvs ? json_field(kvs, "value") : NULL;
	if (!v || *v != '"') {
		ft_errf(err, errlen,
			"arbiter %s: %s answered the claim of %s with neither success nor the "
			"holder",
			a->spec, a->hostport, key);
		goto out;
	}
	const char *ve = strchr(v + 1, '"');
	uint8_t holder[MAX_WHO + 1];
	size_t hl = 0;
	if (!ve || sodium_base642bin(holder, MAX_WHO, v + 1, (size_t)(ve - v - 1), NULL, &hl, NULL,
				     sodium_base64_VARIANT_ORIGINAL) != 0) {
		/* Taken, by something we cannot read: never a second winner. */
		ft_errf(err, errlen,
			"generation %" PRIu64 " of pair %s is taken: %s holds a value this "
			"version does not understand",
			gen, pair_id, key);
		res = FT_CLAIM_LOST;
		goto out;
	}
	holder[hl] = 0;
	for (size_t i = 0; i < hl; i++)
		if (holder[i] < ' ' || holder[i] > '~')
			holder[i] = '?';
	if (hl == strlen(who) && memcmp(holder, who, hl) == 0) {
		res = FT_CLAIM_WON;
		goto out;
	}
	ft_errf(err, errlen, "generation %" PRIu64 " of pair %s is held by %s (etcd key %s)", gen,
		pair_id, (char *)holder, key);
	res = FT_CLAIM_LOST;
	goto out;
oom:
	ft_errf(err, errlen, "arbiter %s: out of memory", a->spec);
out:
	free(reply);
	free(body);
	free(v64);
	free(k64);
	free(key);
	return res;
}

/* ---- the interface --------------------------------------------------------------------- */

int ft_arbiter_open(const char *spec, struct ft_arbiter **out, char *err, size_t errlen)
{
	*out = NULL;
	if (sodium_init() < 0)
		return ft_errf(err, errlen, "cannot initialise libsodium (no system randomness?)");
	struct ft_arbiter *a = calloc(1, sizeof *a);
	if (!a || !(a->spec = strdup(spec))) {
		free(a);
		return ft_errf(err, errlen, "out of memory");
	}
	int rc;
	if (strncmp(spec, "file:", 5) == 0) {
		a->kind = ARB_FILE;
		rc = file_open(a, spec + 5, err, errlen);
	} else if (strncmp(spec, "etcd:", 5) == 0) {
		a->kind = ARB_ETCD;
		rc = etcd_open(a, spec + 5, err, errlen);
	} else {
		rc = ft_errf(err, errlen,
			     "arbiter '%s': give file:PATH (shared storage) or etcd:HOST:PORT/KEY",
			     spec);
	}
	if (rc < 0) {
		ft_arbiter_close(a);
		return -1;
	}
	*out = a;
	return 0;
}

enum ft_claim ft_arbiter_claim(struct ft_arbiter *a, const char *pair_id, uint64_t gen,
			       const char *who, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = 0;
	if (!printable(pair_id, MAX_PAIR_ID, false)) {
		ft_errf(err, errlen, "internal error: pair id '%s' is not 1 to %d printable bytes",
			pair_id, MAX_PAIR_ID);
		return FT_CLAIM_ERROR;
	}
	if (!printable(who, MAX_WHO, true)) {
		ft_errf(err, errlen, "internal error: claimer '%s' is not 1 to %d printable bytes",
			who, MAX_WHO);
		return FT_CLAIM_ERROR;
	}
	return a->kind == ARB_FILE ? file_claim(a, pair_id, gen, who, err, errlen)
				   : etcd_claim(a, pair_id, gen, who, err, errlen);
}

const char *ft_arbiter_spec(const struct ft_arbiter *a)
{
	return a->spec;
}

void ft_arbiter_close(struct ft_arbiter *a)
{
	if (!a)
		return;
	free(a->spec);
	free(a->path);
	free(a->dir);
	free(a->url);
	free(a->hostport);
	free(a->key);
	free(a);
}

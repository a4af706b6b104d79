/*
 * arbiter.h: split-brain prevention for the ft pair (docs/ft.md, "Arbiters").
 *
 * Before either side of a pair runs its guest alone (a backup going live, a primary
 * whose backup vanished), it must win an atomic test-and-set on a store both hosts
 * reach: the first claim of a (pair, generation) wins, every later claim by another side
 * loses, and a repeated claim by the winner wins again. A pair is named by a random id
 * the primary chooses when it starts; its generation grows by one each time a backup
 * (re)joins, so a claim left from an earlier failover never decides a later one.
 *
 *   file:PATH              a file on storage both hosts share (O_EXCL/link atomicity)
 *   etcd:HOST:PORT/KEY     etcd's v3 JSON gateway, a transaction compare-and-swap
 */
#ifndef REWIND_FT_ARBITER_H
#define REWIND_FT_ARBITER_H

#include <stddef.h>
#include <stdint.h>

struct ft_arbiter;

/* Parse spec and check that the store is usable (the file's folder exists and is
 * writable; etcd answers). Returns 0, or -1 with a one-line reason in err. */
int ft_arbiter_open(const char *spec, struct ft_arbiter **out, char *err, size_t errlen);

enum ft_claim {
	FT_CLAIM_WON = 0,
	FT_CLAIM_LOST = 1,  /* another side holds this generation */
	FT_CLAIM_ERROR = 2, /* the store could not be reached or read: reason in err */
};

/*
 * Claim generation gen of pair pair_id (printable, at most 64 bytes) for side who
 * (printable, e.g. "primary host-a:7000"). On FT_CLAIM_LOST, err says who holds it.
 * pair_id has no spaces and who at most 200 bytes (else FT_CLAIM_ERROR: a caller's bug).
 * A claim whose answer was lost (FT_CLAIM_ERROR after the store took it) is safe to
 * repeat with the same who: it then wins.
 */
enum ft_claim ft_arbiter_claim(struct ft_arbiter *a, const char *pair_id, uint64_t gen,
			       const char *who, char *err, size_t errlen);

/* The spec as given, for messages. */
const char *ft_arbiter_spec(const struct ft_arbiter *a);

void ft_arbiter_close(struct ft_arbiter *a);

#endif

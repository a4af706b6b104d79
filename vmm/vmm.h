/*
 * vmm.h: types and error codes shared by every part of the machine.
 *
 * The machine (vmm/) knows nothing of logs. Every value that enters the guest from the
 * host crosses the input boundary in input.h; devices read time only through the
 * machine clock (machine.h).
 */
#ifndef REWIND_VMM_H
#define REWIND_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMM_WUR __attribute__((warn_unused_result))

/* A guest-physical address. */
typedef uint64_t gpa_t;

/*
 * A position on the timeline (docs/architecture.md). On emu: guest instructions retired since
 * the guest's entry point. On kvm: guest-initiated exits since entry.
 */
typedef uint64_t vmm_pos_t;

/* Error codes: functions return 0 or one of these, negated. */
enum vmm_err {
	VMM_OK = 0,
	VMM_ENOMEM = 1,    /* host allocation failed */
	VMM_EINVAL = 2,    /* bad argument from the user (size, option) */
	VMM_EIO = 3,       /* host I/O failed; errno-based detail in the message */
	VMM_ENOENT = 4,    /* file not found or not readable */
	VMM_EBADELF = 5,   /* not an ELF, wrong class/machine, truncated, bad headers */
	VMM_ENOPVH = 6,    /* ELF without a PVH entry note */
	VMM_ELAYOUT = 7,   /* segments outside RAM or overlapping reserved areas */
	VMM_ENOKVM = 8,    /* /dev/kvm missing or unusable */
	VMM_EBACKEND = 9,  /* backend failure (Unicorn or KVM ioctl failed) */
	VMM_EGUEST = 10,   /* guest did something the machine cannot do */
	VMM_ESTATE = 11,   /* saved state blob is malformed or from another version */
	VMM_EINTERNAL = 12, /* our own bug */
	VMM_EINPUT = 13     /* the input source stopped the run (replay: divergence, log end) */
};

/* A static description of an error code. */
const char *vmm_strerror(int err);

/*
 * A detail message for the last error this thread saw in vmm (file name, offset,
 * errno text); "" if none. Library code records detail here and never prints.
 */
const char *vmm_errdetail(void);
/* Record a detail message for the current thread (printf-style); returns -err. */
int vmm_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse a memory size such as "128M", "1G", "65536" (bytes), "2048K". */
int vmm_parse_size(const char *s, uint64_t *out) VMM_WUR;
/* Parse a TCP port: decimal digits only, 0 to 65535 (strtoul alone takes " 5", "+5" and
 * "-1", getaddrinfo keeps the low 16 bits of any number). */
bool vmm_parse_port(const char *s, uint16_t *out) VMM_WUR;

#endif

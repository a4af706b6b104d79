/*
 * log.h: rewind's log format (logfmt/FORMAT.md is the byte-level spec).
 *
 * A log is a header (format version, an opaque machine-config text, the command line,
 * the guest image or only its hash), then chunks of events, then an index of the chunks
 * and a footer that ends in a magic. Each chunk decodes on its own, is compressed (zstd,
 * lz4 or none) and CRC-checked; so is the header. A log whose writer died still yields
 * every complete chunk.
 *
 * logfmt knows nothing of virtual machines: an event is a kind, a position (an unsigned
 * 64-bit count that never decreases) and a small payload. Bytes move through one byte-I/O
 * table (struct lf_io): a file descriptor, a memory buffer, later a socket.
 *
 * Errors: functions return 0 (or a count) or a negative lf_err; lf_errdetail() gives one
 * line of detail for the last error on this thread.
 */
#ifndef REWIND_LOGFMT_LOG_H
#define REWIND_LOGFMT_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LF_WUR __attribute__((warn_unused_result))

/* 3: landmark events (FORMAT.md, "Versions"). Version 2 logs are read too. */
#define LF_VERSION 4
/* The version a log without an initrd is written in (FORMAT.md "Versions"). */
#define LF_VERSION_NO_INITRD 3
#define LF_VERSION_MIN 2

enum lf_err {
	LF_OK = 0,
	LF_EINVAL = 1,  /* bad argument from the caller */
	LF_EIO,         /* the byte I/O failed (disk full, write error, read error) */
	LF_ENOMEM,
	LF_EFORMAT,     /* not a rewind log (bad magic) */
	LF_EVERSION,    /* a log of another format version */
	LF_ECORRUPT,    /* a CRC mismatch or an impossible field */
	LF_ETRUNC,      /* the data ends in the middle of a structure */
	LF_ESTATE,      /* call out of order (append after finish, ...) */
};

const char *lf_strerror(int err);  /* err: positive or negative */
const char *lf_errdetail(void);    /* detail of the last error on this thread, or "" */

/* ---- byte I/O ---------------------------------------------------------------------- */

/*
 * One byte-I/O table, as Redis' rio: the writer and reader never see where bytes go.
 * Members are called on the thread that uses the writer or reader.
 */
struct lf_io_ops {
	/* Read up to n bytes; returns bytes read, 0 at end, or -1 (errno set). NULL: write-only. */
	ssize_t (*read)(void *opaque, void *buf, size_t n);
	/* Write all n bytes; returns 0 or -1 (errno set). NULL: read-only. */
	int (*write)(void *opaque, const void *buf, size_t n);
	/* Reposition as lseek(2); NULL for streams (then no index, no salvage by seeking). */
	int64_t (*seek)(void *opaque, int64_t off, int whence);
	/* Make written bytes durable (fdatasync); may be NULL. Returns 0 or -1. */
	int (*sync)(void *opaque);
};

struct lf_io {
	const struct lf_io_ops *ops;
	void *opaque;
};

/* A file descriptor the caller opened (and closes). Seekable when lseek works on it. */
struct lf_io_fd {
	int fd;
};
void lf_io_fd_init(struct lf_io *io, struct lf_io_fd *f, int fd);

/* A memory buffer. Reading: data/len given. Writing: grows a malloc'd buffer (free it). */
struct lf_io_mem {
	uint8_t *data;
	size_t len, cap, off;
	bool owned;       /* data is malloc'd by the writer side */
	size_t fail_at;   /* tests: a write that would pass this many bytes fails (0: never) */
};
/* (fail_at: the failing write keeps the bytes that fit, then fails with ENOSPC, as a full
 * disk does. Set it after lf_io_mem_writer, which clears m.) */
void lf_io_mem_reader(struct lf_io *io, struct lf_io_mem *m, const void *data, size_t len);
void lf_io_mem_writer(struct lf_io *io, struct lf_io_mem *m);

/* ---- events -------------------------------------------------------------------------- */

enum lf_kind {
	LF_EV_CLOCK = 1, /* a clock read and the value it returned */
	LF_EV_TIMER = 2, /* a timer expired: its id */
	LF_EV_INPUT = 3, /* host input bytes on a channel (0: serial) */
	LF_EV_HASH = 4,  /* a state check: hashes of registers, memory and output so far */
	LF_EV_END = 5,   /* the run ended: how, and a value */
	LF_EV_LANDMARK = 6, /* the exact point, inside its position, of the events after it */
};
#define LF_KIND_MAX LF_EV_LANDMARK

#define LF_INPUT_MAX 4096 /* most bytes in one input event */

/* Which hashes an LF_EV_HASH event carries (bits of flags). */
#define LF_HASH_REGS 1u
#define LF_HASH_MEM 2u
#define LF_HASH_OUT 4u

struct lf_event {
	uint8_t kind;  /* enum lf_kind */
	uint64_t pos;  /* never less than the previous event's */
	union {
		uint64_t clock; /* LF_EV_CLOCK */
		uint32_t timer; /* LF_EV_TIMER */
		struct {
			uint32_t channel;
			uint32_t len;        /* 1..LF_INPUT_MAX */
			const uint8_t *data; /* reader: valid until the next lf_reader_next */
		} input;
		struct {
			uint32_t flags;     /* LF_HASH_* (unflagged fields are not stored) */
			uint64_t regs, mem; /* present per flags (0 otherwise) */
			uint64_t out;       /* running hash of all output so far */
			uint64_t out_bytes; /* output bytes so far */
		} hash;
		struct {
			uint32_t reason;
			uint64_t value;
		} end;
		/*
		 * LF_EV_LANDMARK: where the events after it (at the same position) happened,
		 * for positions that count something coarser than instructions (kvm: exits).
		 * rip, a hash of the general registers (a quick first check), a hash of all
		 * registers, and a hash of the pages written since the previous landmark and
		 * how many there were (FORMAT.md, "Landmarks").
		 */
		struct {
			uint64_t rip, gprs, regs, mem;
			uint32_t pages;
		} landmark;
	};
};

/* One line describing an event, e.g. "clock 1732350000123456789". */
void lf_event_format(const struct lf_event *ev, char *buf, size_t cap);
/* The kind's name ("clock", "timer", "input", "hash", "end"), NULL if unknown. */
const char *lf_kind_name(unsigned kind);
/* Parse a kind name; returns the kind or -1. */
int lf_kind_parse(const char *name);

/* ---- header ------------------------------------------------------------------------ */

enum lf_codec {
	LF_CODEC_NONE = 0,
	LF_CODEC_LZ4 = 1,
	LF_CODEC_ZSTD = 2,
};
const char *lf_codec_name(unsigned codec);
int lf_codec_parse(const char *name); /* "none", "lz4", "zstd"; -1 if unknown */

struct lf_header {
	uint32_t version;        /* the log's format version (set by the reader; the writer
				  * picks it: LF_VERSION_NO_INITRD unless there is an initrd) */
	uint64_t created_ns;     /* wall clock when recording began */
	const char *tool;        /* who wrote it, e.g. "rewind 0.2" */
	const char *config;      /* machine config, opaque text (key=value lines) */
	const char *cmdline;     /* guest command line ("" if none) */
	const char *image_path;  /* where the image came from, as the user gave it */
	uint64_t image_hash;     /* lf_hash64 of the image bytes (checked if embedded) */
	uint64_t image_len;      /* image bytes */
	const void *image;       /* the image, or NULL when not embedded */
	/* Filled in by the reader: how the image is stored in the file. */
	uint64_t image_stored;   /* bytes in the file (compressed), 0 if not embedded */
	uint32_t image_codec;
	/*
	 * The initrd (--initrd), like the image: initrd_len 0 for none (then the log is
	 * written in version LF_VERSION_NO_INITRD and the other fields are ignored).
	 */
	const char *initrd_path; /* where it came from, as the user gave it */
	uint64_t initrd_hash;    /* lf_hash64 of its bytes (checked if embedded) */
	uint64_t initrd_len;
	const void *initrd;      /* the initrd, or NULL when not embedded */
	uint64_t initrd_stored;  /* reader: bytes in the file (compressed), 0 if not embedded */
	uint32_t initrd_codec;   /* reader */
};

/* ---- writer --------------------------------------------------------------------------- */

struct lf_writer_config {
	uint32_t codec;        /* enum lf_codec (default zstd when config is NULL) */
	int level;             /* codec level; 0: the codec's default */
	uint32_t chunk_events; /* close a chunk after this many events (0: 8192) */
	uint32_t chunk_bytes;  /* ... or this many raw bytes (0: 256 KiB) */
	uint32_t flush_ms;     /* ... or when its first event is this old at an append or
	                        * lf_writer_tick (0: 500 ms) */
	/*
	 * Encode and write the header on a helper thread, so that checking and compressing
	 * an embedded image (0.2 s for a 66 MB kernel) overlaps the caller's work instead of
	 * delaying it. lf_writer_open then returns at once; events are taken meanwhile; the
	 * first call that writes (a chunk, lf_writer_flush, lf_writer_finish) waits for the
	 * header, and a failure of the header (a write error, a wrong image_hash) is
	 * reported by that call rather than by lf_writer_open. The image must stay valid
	 * until such a call or lf_writer_free returns (the strings are copied). The bytes
	 * written are the same either way.
	 */
	bool background_header;
};

struct lf_writer;

/*
 * Write the header (the image compressed with the chosen codec when h->image is set) and
 * get ready for events. io must be writable. The writer never seeks: a stream works.
 * With cfg->background_header the header is written later (see there).
 */
int lf_writer_open(const struct lf_io *io, const struct lf_header *h,
		   const struct lf_writer_config *cfg, struct lf_writer **out) LF_WUR;
/* Append one event; closes and writes a chunk when it is full or old. */
int lf_writer_append(struct lf_writer *w, const struct lf_event *ev) LF_WUR;
/* Write the open chunk now if it holds events older than flush_ms. */
int lf_writer_tick(struct lf_writer *w) LF_WUR;
/* Write the open chunk now (if it holds any events), and the header if not written yet. */
int lf_writer_flush(struct lf_writer *w) LF_WUR;
/* Flush, write the index and the footer, sync. After this only free. */
int lf_writer_finish(struct lf_writer *w) LF_WUR;
/* Without lf_writer_finish, events of the open chunk are dropped (the log stays readable). */
void lf_writer_free(struct lf_writer *w);

struct lf_writer_stats {
	uint64_t events, chunks;
	uint64_t events_by_kind[LF_KIND_MAX + 1];
	uint64_t header_bytes;  /* header including the stored image (0 until written) */
	uint64_t chunk_bytes;   /* chunks as stored */
	uint64_t raw_bytes;     /* chunks before compression */
	uint64_t total_bytes;   /* everything written so far */
};
void lf_writer_stats(const struct lf_writer *w, struct lf_writer_stats *s);

/* ---- reader ----------------------------------------------------------------------------- */

struct lf_reader;

/*
 * Read and check the header. On a seekable io, also look for the footer and index; a
 * log without them (writer killed) is read chunk by chunk up to the first incomplete or
 * corrupt chunk. The header (and image) stay valid until lf_reader_free.
 */
int lf_reader_open(const struct lf_io *io, struct lf_reader **out) LF_WUR;
const struct lf_header *lf_reader_header(const struct lf_reader *r);

/*
 * The next event: returns 1 with *ev filled, 0 at the end of the log, or a negative
 * lf_err when a chunk is corrupt or cut (lf_errdetail says which chunk and where); after
 * an error every later call returns 0 (the events before it stay good).
 */
int lf_reader_next(struct lf_reader *r, struct lf_event *ev) LF_WUR;

/*
 * Continue reading at the first event with position >= pos (uses the index; without one,
 * scans from the start). Returns 0 or a negative lf_err. A stream (no seek member) can
 * only skip forward: seeking to or before an event already returned gives -LF_ESTATE.
 */
int lf_reader_seek(struct lf_reader *r, uint64_t pos) LF_WUR;

struct lf_reader_info {
	bool finalized;       /* footer and index found and consistent */
	uint64_t file_bytes;  /* size of the log (seekable io), else bytes read so far */
	uint64_t chunks;      /* chunks in the index (finalized) */
	uint64_t events;      /* events in the index (finalized) */
	uint64_t last_pos;    /* position of the last event (finalized) */
	uint64_t header_bytes;
};
void lf_reader_info(const struct lf_reader *r, struct lf_reader_info *i);
void lf_reader_free(struct lf_reader *r);

/* ---- verification and repair -------------------------------------------------------- */

struct lf_verify_report {
	bool header_ok;
	bool finalized;          /* index and footer present and consistent with the chunks */
	uint64_t chunks_ok;      /* complete chunks with good CRCs, in file order */
	uint64_t events;         /* events in those chunks */
	uint64_t events_by_kind[LF_KIND_MAX + 1];
	uint64_t first_pos, last_pos;
	uint64_t good_bytes;     /* file offset just past the last good chunk */
	uint64_t file_bytes;
	uint64_t header_bytes, chunk_bytes, raw_bytes, index_bytes;
	uint32_t chunk_codec;    /* codec of the first chunk */
	char problem[256];       /* "" if none, else what is wrong and where */
};

/*
 * Check every chunk of a seekable log. Returns 0 when the log is whole, LF_ETRUNC (negated)
 * when it is cut or has a bad tail (report says how much is good), or another negative
 * lf_err when the header itself is unusable.
 */
int lf_verify(const struct lf_io *io, struct lf_verify_report *rep) LF_WUR;

/*
 * Make a cut log whole: drop everything after the last good chunk, then append a fresh
 * index and footer. fd must be open read-write. Returns 0 or a negative lf_err.
 */
int lf_repair_fd(int fd, struct lf_verify_report *rep) LF_WUR;

/* ---- helpers --------------------------------------------------------------------------- */

/* Whether the first n bytes of a file are those of a rewind log (its magic, or all of
 * them when fewer than the magic, of any format version): a tool asks before it
 * overwrites a file with a new log. */
bool lf_starts_like_log(const void *head, size_t n);
/* The 64-bit hash used for the image (XXH3-64). */
uint64_t lf_hash64(const void *data, size_t len);
/* CRC-32C (Castagnoli) of data, continuing from crc (start with 0). */
uint32_t lf_crc32c(uint32_t crc, const void *data, size_t len);

#endif

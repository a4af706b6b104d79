/*
 * fuzz_gdbproto.c: the libFuzzer target for the gdb protocol layer (`make fuzz-gdb`):
 * debugger/gdbproto.c and debugger/gdbregs.c on whatever gdb (or anyone who can reach the
 * gdb port) might send. The work is in fuzz_gdb_body.h, which test_gdbcorpus.c also runs
 * over the checked-in corpus.
 */
#include "fuzz_gdb_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return gdb_fuzz_one(data, size);
}

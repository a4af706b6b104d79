/*
 * fuzz_reader.c: the libFuzzer target for logfmt's reading side (`make fuzz`). The work
 * is in fuzz_body.h, which test_corpus.c also runs over the checked-in corpus.
 *
 * `make fuzz` builds with FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, which makes logfmt
 * skip checksum comparisons so the fuzzer gets past them into the decoders.
 */
#include "fuzz_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return lf_fuzz_one(data, size);
}

# rewind: one Makefile, no other build system. See README.md.
#   make            build build/rewind and build/guests/*.elf
#   make test       every test (units, integration, conformance, layering)
#   make demo       install what is missing, build, show the main job
#   make test-asan  the tests under AddressSanitizer + UBSan
#   make bench      benchmarks (bench/README.md)
#   make linux      fetch Debian's stock kernel and build a busybox initramfs (docs/linux.md)
#   make linux-kvm  that kernel on --backend kvm to the root fs panic, against emu (slow)

CC      ?= cc
B       ?= build
DEPS    := $(B)/deps
UCLIB   := $(DEPS)/usr/lib/x86_64-linux-gnu
SAN     ?=
OPT     ?= -O2 -g
CFLAGS  := -std=c17 -Wall -Wextra -Wshadow -Werror $(OPT) -D_GNU_SOURCE -I. \
           -isystem $(DEPS)/usr/include $(SAN) -MMD -MP
LDFLAGS := $(SAN) -L$(UCLIB) -Wl,-rpath,'$$ORIGIN/deps/usr/lib/x86_64-linux-gnu' \
           -Wl,-rpath,$(abspath $(UCLIB))
LIBS    := -lunicorn -llz4 -lzstd -lxxhash -lunwind-x86_64 -lsodium -lcurl -lpthread -lm

# Guests: freestanding, 64-bit code with a 32-bit PVH entry stub.
GCFLAGS := -std=c17 -Wall -Wextra -Wshadow -Werror -O2 -g -ffreestanding -fno-pic \
           -fno-stack-protector -mno-red-zone -mgeneral-regs-only -mcmodel=small \
           -fasynchronous-unwind-tables -fno-omit-frame-pointer -I. -Iguests/lib -MMD -MP
GLDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-T,guests/lib/guest.ld \
           -Wl,-z,max-page-size=4096 -Wl,--eh-frame-hdr

VMM_SRC   := $(wildcard vmm/*.c)
LF_SRC    := $(wildcard logfmt/*.c)
REC_SRC   := $(wildcard record/*.c)
RPL_SRC   := $(wildcard replay/*.c)
DBG_SRC   := $(wildcard debugger/*.c)
FT_SRC    := $(wildcard ft/*.c)
TOOL_SRC  := $(wildcard tools/*.c)
GLIB_SRC  := $(wildcard guests/lib/*.c guests/lib/*.S)
GUEST_SRC := $(wildcard guests/*.c)
UNIT_SRC  := $(wildcard tests/vmm/test_*.c tests/logfmt/test_*.c tests/replay/test_*.c \
             tests/debugger/test_*.c tests/ft/test_*.c)
INTEG_SRC := $(wildcard tests/integration/test_*.c)

VMM_OBJ   := $(VMM_SRC:%.c=$(B)/obj/%.o)
LF_OBJ    := $(LF_SRC:%.c=$(B)/obj/%.o)
REC_OBJ   := $(REC_SRC:%.c=$(B)/obj/%.o)
RPL_OBJ   := $(RPL_SRC:%.c=$(B)/obj/%.o)
DBG_OBJ   := $(DBG_SRC:%.c=$(B)/obj/%.o)
FT_OBJ    := $(FT_SRC:%.c=$(B)/obj/%.o)
# Link order: users before what they use (docs/architecture.md, 'Layering').
HOSTLIBS  := $(B)/libdebugger.a $(B)/libft.a $(B)/libreplay.a $(B)/librecord.a $(B)/liblogfmt.a $(B)/libvmm.a
TOOL_OBJ  := $(TOOL_SRC:%.c=$(B)/obj/%.o)
GLIB_OBJ  := $(patsubst %,$(B)/gobj/%.o,$(basename $(GLIB_SRC)))
GUESTS    := $(GUEST_SRC:guests/%.c=$(B)/guests/%.elf)
UNITS     := $(UNIT_SRC:tests/%.c=$(B)/tests/%)
INTEGS    := $(INTEG_SRC:tests/%.c=$(B)/tests/%)

.PHONY: all deps test test-build test-unit test-integ test-layering demo test-asan bench linux linux-kvm clean format fuzz kvm-soak test-linux
all: $(B)/rewind $(GUESTS)

deps: $(DEPS)/.unicorn-2.1.1
$(DEPS)/.unicorn-2.1.1:
	@tools/check-deps.sh
	@tools/fetch-unicorn.sh $(DEPS)

$(B)/obj/%.o: %.c | $(DEPS)/.unicorn-2.1.1
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/libvmm.a: $(VMM_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/liblogfmt.a: $(LF_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/librecord.a: $(REC_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libreplay.a: $(RPL_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libdebugger.a: $(DBG_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libft.a: $(FT_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/rewind: $(TOOL_OBJ) $(HOSTLIBS)
	$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJ) $(HOSTLIBS) $(LIBS)

$(B)/gobj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(GCFLAGS) -c $< -o $@
$(B)/gobj/%.o: %.S
	@mkdir -p $(dir $@)
	$(CC) $(GCFLAGS) -c $< -o $@

$(B)/guests/%.elf: $(B)/gobj/guests/%.o $(GLIB_OBJ) guests/lib/guest.ld
	@mkdir -p $(dir $@)
	$(CC) $(GCFLAGS) $(GLDFLAGS) -o $@ $< $(GLIB_OBJ)

# Tests whose first line is /* standalone */ include the unit under test themselves
# (device tests over a fake machine) and are linked without libvmm.a.
STANDALONE := $(shell grep -l '^/\* standalone \*/' $(UNIT_SRC) 2>/dev/null)
$(B)/tests/%: tests/%.c $(HOSTLIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< \
		$(if $(filter tests/$*.c,$(STANDALONE)),,$(HOSTLIBS)) $(LIBS) -lcriterion

test: test-build test-layering
	@tools/run-tests.sh $(B) $(UNITS) $(INTEGS)

# Builds everything `make test` runs, without running it (tools/kvm-bundle.sh uses it).
test-build: all $(UNITS) $(INTEGS)

test-layering:
	@tools/check-layering.sh

test-asan:
	LSAN_OPTIONS=suppressions=$(abspath tools/lsan.supp):print_suppressions=0 $(MAKE) B=build/asan SAN="-fsanitize=address,undefined -fno-omit-frame-pointer" \
		DEPS=$(abspath $(DEPS)) test

# kvm-soak: every kvm record/replay test (record::*_on_kvm) N times, and how many passed.
N ?= 20
kvm-soak: test-build
	@tools/kvm-soak.sh $(B) $(N)

demo:
	@tools/check-deps.sh --install
	@$(MAKE) --no-print-directory all
	@tools/demo.sh $(B)

bench: all
	@bench/run.sh $(B)

# linux: Debian's kernel (tools/fetch-linux.sh) and a busybox initramfs
# (tools/mkinitrd.sh: build/linux/initrd.cpio.gz), both without root; docs/linux.md.
linux:
	@tools/fetch-linux.sh $(B)/linux
	@tools/mkinitrd.sh $(B)/linux

# test-linux: the Linux acceptance session (docs/linux.md) recorded and replayed 10 times
# (make test records 2); needs make linux.
test-linux: test-build
	@REWIND_LINUX_SESSIONS=10 $(B)/tests/integration/test_linux --filter 'linux_shell/*'

# linux-kvm: Debian's kernel booted on kvm to the root fs panic and compared with the same
# boot on emu (tools/linux-kvm.sh; fetches the kernel first if needed). Not in `make test`:
# on software KVM (PVM) it takes the best part of an hour (docs/kvm-backend.md, "Linux on
# kvm"). RR=1 also records the boot on kvm and replays it.
linux-kvm: all
	@tools/linux-kvm.sh $(B) $(if $(RR),--record)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(B)/obj $(B)/gobj $(B)/guests $(B)/tests $(B)/rewind $(B)/lib*.a $(B)/asan $(B)/fuzz

# fuzz-logfmt: libFuzzer over everything that reads a log (tests/logfmt/fuzz_body.h,
# which test_corpus.c replays in `make test`). Seeds: tests/logfmt/corpus/ and golden/;
# new inputs go to $(B)/fuzz/corpus, crashes to $(B)/fuzz/crash-*. Copy an input that
# broke something into tests/logfmt/corpus/ once fixed. FUZZ_TIME: seconds to run.
FUZZ_TIME ?= 60
$(B)/fuzz/fuzz_reader: tests/logfmt/fuzz_reader.c tests/logfmt/fuzz_body.h $(LF_SRC) \
		$(wildcard logfmt/*.h)
	@mkdir -p $(dir $@)
	clang -std=c17 -Wall -Wextra -Wshadow -Werror -g -O1 -D_GNU_SOURCE -I. \
		-DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -o $@ tests/logfmt/fuzz_reader.c $(LF_SRC) \
		-llz4 -lzstd -lxxhash -lpthread
fuzz: fuzz-logfmt fuzz-gdb
fuzz-logfmt: $(B)/fuzz/fuzz_reader
	@mkdir -p $(B)/fuzz/corpus
	$(B)/fuzz/fuzz_reader -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=2048 \
		-dict=tests/logfmt/fuzz.dict -artifact_prefix=$(B)/fuzz/ \
		$(B)/fuzz/corpus tests/logfmt/corpus tests/logfmt/golden

# fuzz-gdb (debugger): libFuzzer over the gdb remote protocol layer, what a gdb (or anyone
# reaching the gdb port) may send: packet receiver, parser, register decoding
# (tests/debugger/fuzz_gdb_body.h, which test_gdbcorpus.c replays in `make test`). Seeds:
# tests/debugger/corpus/ (streams gdb 13 sent, captured with REWIND_GDB_CAPTURE=DIR
# build/tests/debugger/test_gdbregs, and hand-made ones); new inputs go to
# $(B)/fuzz/gdb-corpus, crashes to $(B)/fuzz/gdb-crash-*. `make fuzz` runs both targets,
# FUZZ_TIME seconds each; `make fuzz-logfmt` or `make fuzz-gdb` runs one.
.PHONY: fuzz-logfmt fuzz-gdb
$(B)/fuzz/fuzz_gdbproto: tests/debugger/fuzz_gdbproto.c tests/debugger/fuzz_gdb_body.h \
		debugger/gdbproto.c debugger/gdbproto.h debugger/gdbregs.c debugger/gdbregs.h \
		vmm/cpu.h vmm/vmm.h
	@mkdir -p $(dir $@)
	clang -std=c17 -Wall -Wextra -Wshadow -Werror -g -O1 -D_GNU_SOURCE -I. \
		-DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -o $@ tests/debugger/fuzz_gdbproto.c
fuzz-gdb: $(B)/fuzz/fuzz_gdbproto
	@mkdir -p $(B)/fuzz/gdb-corpus
	$(B)/fuzz/fuzz_gdbproto -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix=$(B)/fuzz/gdb- $(B)/fuzz/gdb-corpus tests/debugger/corpus

-include $(shell find $(B)/obj $(B)/gobj $(B)/tests -name '*.d' 2>/dev/null)
.SECONDARY:

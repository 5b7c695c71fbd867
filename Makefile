# kurz - build, test, run. `make` builds build/kurz; `make test` installs the
# Debian dependencies, builds with ASan+UBSan and runs every test; `make run`
# installs, builds and starts the service on its embedded defaults.

CC      ?= cc
PKGS    := libuv jansson sqlite3 libcrypto
WARN    := -std=c17 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
CPPFLAGS += -D_GNU_SOURCE -Isrc -I/usr/include/postgresql
LIBS    := -lhttp_parser -luv -ljansson -lsqlite3 -lpq -lhiredis -lqrencode -lpng -lcrypto \
           -lpthread -lm
OPT     := -O2 -g
SAN     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
# ThreadSanitizer build (build/tsan/): gcc's TSan, whose __SANITIZE_THREAD__
# src/util/qsbr.c uses to replace a standalone fence TSan cannot model.
TSAN    := -O1 -g -fno-omit-frame-pointer -fsanitize=thread

SRC      := $(shell find src -name '*.c' | sort)
LIB_SRC  := $(filter-out src/main.c,$(SRC))
UNIT_SRC := $(wildcard tests/unit/test_*.c)

OBJ      := $(SRC:%.c=build/obj/%.o)
TOBJ     := $(SRC:%.c=build/test/obj/%.o)
TLIB_OBJ := $(LIB_SRC:%.c=build/test/obj/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/test/unit/%)
TSOBJ     := $(SRC:%.c=build/tsan/obj/%.o)
TSLIB_OBJ := $(LIB_SRC:%.c=build/tsan/obj/%.o)
TSUNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/tsan/unit/%)
# Allocation-fault build: the ASan objects linked with tests/faults/alloc_wrap.c,
# which can fail the Nth malloc/calloc/realloc/strdup/strndup kurz itself calls.
FAULT_WRAP := -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc -Wl,--wrap=strdup \
              -Wl,--wrap=strndup -Wl,--wrap=aligned_alloc

.PHONY: all run test unit deps clean format check-format test-tsan tsan-unit fuzz fuzz-build fuzz-smoke
all: build/kurz

build/kurz: $(OBJ)
	$(CC) $(OPT) -o $@ $^ $(LIBS)

build/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(OPT) $(CPPFLAGS) -MMD -MP -c -o $@ $<

build/test/kurz: $(TOBJ)
	$(CC) $(SAN) -o $@ $^ $(LIBS)

build/test/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(SAN) $(CPPFLAGS) -MMD -MP -c -o $@ $<

build/test/libkurz.a: $(TLIB_OBJ)
	rm -f $@
	ar rcs $@ $^

build/test/unit/%: tests/unit/%.c tests/unit/test.h tests/unit/sqlite_file.h build/test/libkurz.a
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(SAN) $(CPPFLAGS) -Itests/unit -o $@ $< build/test/libkurz.a $(LIBS)

build/tsan/kurz: $(TSOBJ)
	$(CC) $(TSAN) -o $@ $^ $(LIBS)

build/tsan/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(TSAN) $(CPPFLAGS) -MMD -MP -c -o $@ $<

build/tsan/libkurz.a: $(TSLIB_OBJ)
	rm -f $@
	ar rcs $@ $^

build/tsan/unit/%: tests/unit/%.c tests/unit/test.h tests/unit/sqlite_file.h build/tsan/libkurz.a
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(TSAN) $(CPPFLAGS) -Itests/unit -o $@ $< build/tsan/libkurz.a $(LIBS)

tsan-unit: $(TSUNIT_BIN)

build/faults/kurz: $(TOBJ) tests/faults/alloc_wrap.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(SAN) $(CPPFLAGS) $(FAULT_WRAP) -o $@ $(TOBJ) tests/faults/alloc_wrap.c $(LIBS)

# libFuzzer targets (fuzz/README.md): clang with ASan+UBSan, the product
# objects built again with coverage instrumentation into build/fuzz/.
FUZZ_CC   ?= clang
FUZZ_SAN  := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
             -fno-sanitize-recover=undefined
FUZZ_TIME ?= 60
FUZZ_SRC  := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BIN  := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)
FUZZ_OBJ  := $(LIB_SRC:%.c=build/fuzz/obj/%.o) build/fuzz/obj/fuzz/harness.o \
             build/fuzz/obj/fuzz/memstore.o

build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(WARN) $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(CPPFLAGS) -MMD -MP -c -o $@ $<

build/fuzz/libkurz.a: $(FUZZ_OBJ)
	rm -f $@
	ar rcs $@ $^

build/fuzz/fuzz_%: fuzz/fuzz_%.c build/fuzz/libkurz.a
	$(FUZZ_CC) $(WARN) $(FUZZ_SAN) -fsanitize=fuzzer $(CPPFLAGS) -Ifuzz -o $@ $< \
		build/fuzz/libkurz.a $(LIBS)

fuzz-build: $(FUZZ_BIN)

# FUZZ_TIME seconds per target (default 60); FUZZ_TARGETS=request,url picks
# some; FUZZ_MERGE=1 merges new inputs into the committed corpus.
fuzz: fuzz-build
	FUZZ_TIME=$(FUZZ_TIME) fuzz/run

# CI: replays every committed corpus and fuzzes each target a few seconds.
fuzz-smoke: fuzz-build
	fuzz/run --smoke

# kurz-bench: the load generator of `make bench` (bench/), and its unit test.
BENCH_LIB := bench/hdr.c bench/httpc.c bench/loadgen.c bench/zipf.c
BENCH_HDR := $(wildcard bench/*.h)

build/kurz-bench: bench/kurz_bench.c $(BENCH_LIB) $(BENCH_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(OPT) -D_GNU_SOURCE -o $@ bench/kurz_bench.c $(BENCH_LIB) -lpthread -lm

build/test/unit/test_bench: bench/test_bench.c tests/unit/test.h $(BENCH_LIB) $(BENCH_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(SAN) -D_GNU_SOURCE -Itests/unit -o $@ bench/test_bench.c $(BENCH_LIB) -lpthread -lm

# make bench: kurz against nginx and the targets of issue 3 (bench/run, server on
# core 0, load on core 1); writes docs/BENCHMARKS.md and docs/bench/*.svg. A
# benchmark, not a test: it reports and never fails on its figures; not part of
# `make test`. BENCH_QUICK=1 runs a short smoke version (2-3 minutes).
.PHONY: bench
bench: deps
	$(MAKE) build/kurz build/kurz-bench
	bench/run

deps:
	scripts/install-deps

unit: $(UNIT_BIN) build/test/unit/test_bench

run: deps
	$(MAKE) build/kurz
	./build/kurz serve

test: deps
	$(MAKE) build/kurz build/test/kurz unit build/faults/kurz build/tsan/kurz tsan-unit fuzz-build
	tests/run build/test build/tsan

# The unit tests and the black-box suite again, built with ThreadSanitizer.
test-tsan: deps
	$(MAKE) build/tsan/kurz tsan-unit
	tests/run build/tsan

format:
	clang-format -i $(SRC) $(shell find src -name '*.h') $(UNIT_SRC) tests/unit/test.h tests/unit/sqlite_file.h

check-format:
	clang-format --dry-run --Werror $(SRC) $(shell find src -name '*.h') $(UNIT_SRC) tests/unit/test.h tests/unit/sqlite_file.h

clean:
	rm -rf build

-include $(OBJ:.o=.d) $(TOBJ:.o=.d) $(TSOBJ:.o=.d) $(FUZZ_OBJ:.o=.d)

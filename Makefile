# kurz - build, test, run. `make` builds build/kurz; `make test` installs the
# Debian dependencies, builds with ASan+UBSan and runs every test; `make run`
# installs, builds and starts the service on its embedded defaults.

CC      ?= cc
PKGS    := libuv jansson sqlite3 libcrypto
WARN    := -std=c17 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
CPPFLAGS += -D_GNU_SOURCE -Isrc
LIBS    := -lhttp_parser -luv -ljansson -lsqlite3 -lcrypto -lpthread -lm
OPT     := -O2 -g
SAN     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined

SRC      := $(shell find src -name '*.c' | sort)
LIB_SRC  := $(filter-out src/main.c,$(SRC))
UNIT_SRC := $(wildcard tests/unit/test_*.c)

OBJ      := $(SRC:%.c=build/obj/%.o)
TOBJ     := $(SRC:%.c=build/test/obj/%.o)
TLIB_OBJ := $(LIB_SRC:%.c=build/test/obj/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/test/unit/%)

.PHONY: all run test unit deps clean format check-format
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

build/test/unit/%: tests/unit/%.c tests/unit/test.h build/test/libkurz.a
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(SAN) $(CPPFLAGS) -Itests/unit -o $@ $< build/test/libkurz.a $(LIBS)

deps:
	scripts/install-deps

unit: $(UNIT_BIN)

run: deps
	$(MAKE) build/kurz
	./build/kurz serve

test: deps
	$(MAKE) build/kurz build/test/kurz unit
	tests/run

format:
	clang-format -i $(SRC) $(shell find src -name '*.h') $(UNIT_SRC) tests/unit/test.h

check-format:
	clang-format --dry-run --Werror $(SRC) $(shell find src -name '*.h') $(UNIT_SRC) tests/unit/test.h

clean:
	rm -rf build

-include $(OBJ:.o=.d) $(TOBJ:.o=.d)

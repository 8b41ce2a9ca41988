# slimclr build. `make` = deps + build; `make SKIP_DEPS=1` never touches apt.
# Every tool and flag is overridable for a cluster's modules:
#   make MPICC=/opt/mpi/bin/mpicc BLIS_CFLAGS=-I/opt/blis/include BLIS_LIBS="-L/opt/blis/lib -lblis" \
#        SCALAPACK_LIBS="-lscalapack" LAPACK_LIBS="-llapack -lblas" SKIP_DEPS=1
MPICC      ?= mpicc
MPIRUN     ?= mpirun
OPT        ?= -O3 -march=native -fno-math-errno
CFLAGS     ?= $(OPT) -g -std=gnu11 -Wall -Wextra -Wno-unused-parameter -fopenmp
CPPFLAGS   += -Iinclude -D_GNU_SOURCE
# Debian's BLIS ships no pkg-config file: default to the system blis.h / libblis.so (the alternatives pick the
# OpenMP build). Override BLIS_CFLAGS / BLIS_LIBS for a cluster's BLIS.
BLIS_CFLAGS ?= $(shell pkg-config --cflags blis 2>/dev/null)
BLIS_LIBS   ?= $(or $(shell pkg-config --libs blis 2>/dev/null),-lblis)
# Debian's scalapack-openmpi.pc names a `blas` module that does not exist: do not ask pkg-config.
SCALAPACK_LIBS ?= -lscalapack-openmpi
LAPACK_LIBS    ?= -llapack
YAML_CFLAGS ?= $(shell pkg-config --cflags yaml-0.1 2>/dev/null)
YAML_LIBS   ?= $(or $(shell pkg-config --libs yaml-0.1 2>/dev/null),-lyaml)
ZLIB_LIBS   ?= $(or $(shell pkg-config --libs zlib 2>/dev/null),-lz)
JPEG_LIBS   ?= $(or $(shell pkg-config --libs libjpeg 2>/dev/null),-ljpeg)
CMOCKA_CFLAGS ?= $(shell pkg-config --cflags cmocka 2>/dev/null)
CMOCKA_LIBS   ?= $(or $(shell pkg-config --libs cmocka 2>/dev/null),-lcmocka)
LDLIBS     = $(SCALAPACK_LIBS) $(LAPACK_LIBS) $(BLIS_LIBS) $(YAML_LIBS) $(ZLIB_LIBS) $(JPEG_LIBS) -lpthread -lm
ALL_CPPFLAGS = $(CPPFLAGS) $(BLIS_CFLAGS) $(YAML_CFLAGS)

# Debian packages the project needs (make deps installs the missing ones).
DEB_PKGS = libopenmpi-dev openmpi-bin libblis-dev libscalapack-openmpi-dev liblapack-dev libyaml-dev zlib1g-dev \
           libcmocka-dev libjpeg62-turbo-dev gnuplot-nox dataset-fashion-mnist pkg-config
BUILD   ?= build
PREFIX  ?= /usr/local

SRC      = $(filter-out src/cli/main.c,$(wildcard src/*/*.c))
OBJ      = $(SRC:%.c=$(BUILD)/%.o)
LIB      = $(BUILD)/libslimclr.a
BIN      = $(BUILD)/slimclr
TEST_SRC = $(wildcard tests/test_*.c)
TEST_BIN = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
MPITEST_SRC = $(wildcard tests/mpi/*.c)
MPITEST_BIN = $(MPITEST_SRC:tests/mpi/%.c=$(BUILD)/tests/mpi/%)
PROF_SRC = $(wildcard profiling/*.c)
PROF_BIN = $(PROF_SRC:profiling/%.c=$(BUILD)/profiling/%)

ifeq ($(SKIP_DEPS),1)
DEPS_STAMP =
else
DEPS_STAMP = $(BUILD)/.deps-ok
endif

.PHONY: all deps test test-unit test-mpi demo bench bench-data experiment test-faults asan install clean
all: $(BIN) $(TEST_BIN) $(MPITEST_BIN) $(PROF_BIN)
	@ln -sf $(BIN) slimclr

deps: $(DEPS_STAMP)
$(BUILD)/.deps-ok: Makefile
	@mkdir -p $(BUILD)
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing \
	    || { echo "make deps: apt-get failed; install:$$missing (or build with SKIP_DEPS=1 and your modules)"; exit 1; }; \
	fi
	@touch $@

$(BUILD)/%.o: %.c $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(MPICC) $(ALL_CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(OBJ)
	@rm -f $@
	ar rcs $@ $^

GIT_COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
$(BUILD)/src/cli/main.o: CPPFLAGS += -DSLIMCLR_COMMIT='"$(GIT_COMMIT)"' -DSLIMCLR_SCALAPACK='"$(SCALAPACK_LIBS)"'
$(BUILD)/src/cli/main.o: .FORCE
.PHONY: .FORCE

$(BIN): $(BUILD)/src/cli/main.o $(LIB)
	$(MPICC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(LIB) $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(MPICC) $(ALL_CPPFLAGS) $(CMOCKA_CFLAGS) $(CFLAGS) $< -o $@ $(LIB) $(CMOCKA_LIBS) $(LDLIBS)

# multi-rank test programs: run by tests/sh/*.sh under mpirun with 1-4 ranks
$(BUILD)/tests/mpi/%: tests/mpi/%.c $(LIB) $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(MPICC) $(ALL_CPPFLAGS) $(CFLAGS) $< -o $@ $(LIB) $(LDLIBS)

$(BUILD)/profiling/%: profiling/%.c $(LIB) $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(MPICC) $(ALL_CPPFLAGS) $(CFLAGS) $< -o $@ $(LIB) $(LDLIBS)

# Every test: unit tests (cmocka, one binary per module) then the multi-rank and end-to-end scripts.
test: all
	@BUILD=$(BUILD) MPIRUN=$(MPIRUN) bash tests/run_all.sh

demo: all
	@bash tools/demo.sh

# make install PREFIX=... [DESTDIR=...]: the binary, the configs, the job files, the PyTorch loader, the man page
# and the docs (slimclr needs nothing else at run time besides its shared libraries).
SHARE = $(DESTDIR)$(PREFIX)/share
install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(SHARE)/slimclr/yaml $(SHARE)/slimclr/jobs $(SHARE)/slimclr/tools \
	  $(SHARE)/man/man1 $(SHARE)/doc/slimclr
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/slimclr
	install -m 644 yaml/*.yaml $(SHARE)/slimclr/yaml/
	install -m 755 jobs/* $(SHARE)/slimclr/jobs/
	install -m 644 tools/slimclr_torch.py $(SHARE)/slimclr/tools/
	install -m 644 docs/slimclr.1 $(SHARE)/man/man1/slimclr.1
	install -m 644 README.md docs/*.md $(SHARE)/doc/slimclr/
	@echo "installed $(DESTDIR)$(PREFIX)/bin/slimclr; configs and job files in $(SHARE)/slimclr; man slimclr"

clean:
	rm -rf $(BUILD) slimclr

-include $(OBJ:.o=.d)

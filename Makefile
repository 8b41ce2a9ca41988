# slimclr build. `make` = deps + build; `make SKIP_DEPS=1` never touches apt.
# Every tool and flag is overridable for a cluster's modules:
#   make MPICC=/opt/mpi/bin/mpicc BLIS_CFLAGS=-I/opt/blis/include BLIS_LIBS="-L/opt/blis/lib -lblis" \
#        SCALAPACK_LIBS="-lscalapack" LAPACK_LIBS="-llapack -lblas" SKIP_DEPS=1
MPICC      ?= mpicc
MPIRUN     ?= mpirun
# ARCH: the baseline every object is compiled for. x86-64-v3 (AVX2 + FMA, Haswell / Zen 1 and later) runs on any
# compute node of such a cluster whatever the login node was; the AVX-512 code is compiled per function (target
# attributes) and chosen at run time (core/cpu.c). `make ARCH=native` tunes for this machine only.
ARCH       ?= x86-64-v3
OPT        ?= -O3 -march=$(ARCH) -fno-math-errno
CFLAGS     ?= $(OPT) -g -Wall -Wextra -Wno-unused-parameter
# what the build needs, kept when CFLAGS or CPPFLAGS are given on the command line
override CFLAGS   += -std=gnu11 -fopenmp
override CPPFLAGS += -Iinclude -D_GNU_SOURCE
# Debian's BLIS ships no pkg-config file: default to the system blis.h and Debian's static libblis.a (the
# alternatives pick the OpenMP build), which, unlike libblis.so, exports bli_cntx_init_skx: blas/ uses it for the
# AVX-512 kernels when BLIS 0.9 does not recognise the CPU (docs/performance-isa.md). Without it (-lblis, a
# cluster's BLIS) every GEMM runs on the context BLIS chose. Override BLIS_CFLAGS / BLIS_LIBS for a cluster's BLIS.
BLIS_CFLAGS ?= $(shell pkg-config --cflags blis 2>/dev/null)
BLIS_STATIC ?= $(wildcard /usr/lib/$(shell $(CC) -dumpmachine 2>/dev/null)/libblis.a)
BLIS_LIBS   ?= $(or $(shell pkg-config --libs blis 2>/dev/null),$(BLIS_STATIC),-lblis)
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
           libcmocka-dev libjpeg62-turbo-dev gnuplot-nox dataset-fashion-mnist pkg-config python3
BUILD   ?= build
PREFIX  ?= /usr/local
# `make` and `make test` compile one job per core unless -j is given (on a clean tree the compile is most of the
# wait before the tests start); other goals (clean, install, ...) keep make's one job at a time
ifeq ($(filter -j%,$(MAKEFLAGS)),)
ifeq ($(filter-out all test slimclr,$(MAKECMDGOALS)),)
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)
endif
endif

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

.PHONY: all deps test demo bench bench-data test-faults asan install clean
FAULT_BIN   = $(BUILD)/tests/faults/ckpt_verify
FUZZ_NAMES  = config data ckpt safetensors
FUZZ_REPLAY = $(FUZZ_NAMES:%=$(BUILD)/tests/fuzz/replay_%)
all: slimclr $(TEST_BIN) $(MPITEST_BIN) $(PROF_BIN) $(FAULT_BIN) $(FUZZ_REPLAY)
slimclr: $(BIN)
	ln -sf $(BIN) slimclr

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

# the deps check is order-only: an edited Makefile re-checks the packages but recompiles nothing
$(BUILD)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(MPICC) $(ALL_CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# The CPU check and main run before any AVX2 instruction may: baseline x86-64, so an older CPU gets a message.
BASE_ARCH ?= -march=x86-64 -mtune=generic
$(BUILD)/src/core/cpu.o $(BUILD)/src/cli/main.o: CFLAGS += $(BASE_ARCH)
# The avx512 path's kernels (nn/kern, nn/conv_thin): the same sources compiled a second time for AVX-512 at 512
# bits, their tables chosen at run time by core/cpu (docs/performance-isa.md).
AVX512_FLAGS ?= -mavx512f -mavx512bw -mavx512dq -mavx512vl -mprefer-vector-width=512
$(BUILD)/src/nn/%_avx512.o: CFLAGS += $(AVX512_FLAGS)
# Winograd's transforms copy rows of 2-14 tiles: GCC would call memcpy for each (a call per few floats)
$(BUILD)/src/nn/conv_wino.o $(BUILD)/src/nn/conv_wino4.o: CFLAGS += -fno-tree-loop-distribute-patterns

$(LIB): $(OBJ)
	@rm -f $@
	ar rcs $@ $^

# -dirty: tracked files changed since HEAD. main.o is recompiled only when this string changes (commit.txt).
GIT_COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD -- . 2>/dev/null || echo -dirty)
$(BUILD)/src/cli/main.o: CPPFLAGS += -DSLIMCLR_COMMIT='"$(GIT_COMMIT)"' -DSLIMCLR_SCALAPACK='"$(SCALAPACK_LIBS)"'
COMMIT_ID := $(GIT_COMMIT) $(SCALAPACK_LIBS)
$(shell mkdir -p $(BUILD) && { echo '$(COMMIT_ID)' | cmp -s - $(BUILD)/commit.txt || echo '$(COMMIT_ID)' > $(BUILD)/commit.txt; })
$(BUILD)/src/cli/main.o: $(BUILD)/commit.txt

$(BIN): $(BUILD)/src/cli/main.o $(LIB)
	$(MPICC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(LIB) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(MPICC) $(ALL_CPPFLAGS) $(CMOCKA_CFLAGS) $(CFLAGS) -MMD -MP -MF $@.d $< -o $@ $(LIB) $(CMOCKA_LIBS) $(LDLIBS)

# multi-rank test programs: run by tests/sh/*.sh under mpirun with 1-4 ranks
$(BUILD)/tests/mpi/%: tests/mpi/%.c $(LIB) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(MPICC) $(ALL_CPPFLAGS) $(CFLAGS) -MMD -MP -MF $@.d $< -o $@ $(LIB) $(LDLIBS)

$(BUILD)/profiling/%: profiling/%.c $(LIB) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(MPICC) $(ALL_CPPFLAGS) $(CFLAGS) -MMD -MP -MF $@.d $< -o $@ $(LIB) $(LDLIBS)

# Every test: unit tests (cmocka, one binary per module) then the multi-rank and end-to-end scripts.
test: all
	@BUILD=$(BUILD) MPIRUN=$(MPIRUN) bash tests/run_all.sh

demo: all
	@bash tools/demo.sh

# make install PREFIX=... [DESTDIR=...]: what a user runs, all of it working from the install: the binary, the
# configs, the SLURM/PBS job files (+ their shared jobs/slimclr-job.sh), the PyTorch loader and the metrics plotter,
# the man page, the docs, and a modulefile (Tcl: Lmod and Environment Modules) that sets PATH, MANPATH and
# SLIMCLR_SHARE / SLIMCLR_JOBS:  module use $(PREFIX)/share/modulefiles; module load slimclr
VERSION ?= $(shell sed -n 's/^\#define SLIMCLR_VERSION "\(.*\)"/\1/p' src/cli/main.c)
SHARE = $(DESTDIR)$(PREFIX)/share
MODULEFILE = $(SHARE)/modulefiles/slimclr/$(VERSION)
JOB_FILES = $(wildcard jobs/*.sbatch jobs/*.pbs) jobs/slimclr-job.sh
install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(SHARE)/slimclr/yaml $(SHARE)/slimclr/jobs $(SHARE)/slimclr/tools \
	  $(SHARE)/man/man1 $(SHARE)/doc/slimclr $(SHARE)/modulefiles/slimclr
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/slimclr
	install -m 644 yaml/*.yaml $(SHARE)/slimclr/yaml/
	install -m 755 $(JOB_FILES) $(SHARE)/slimclr/jobs/
	install -m 644 tools/slimclr_torch.py $(SHARE)/slimclr/tools/
	install -m 755 tools/plot_metrics.sh $(SHARE)/slimclr/tools/
	install -m 644 docs/slimclr.1 $(SHARE)/man/man1/slimclr.1
	install -m 644 README.md docs/*.md $(SHARE)/doc/slimclr/
	@{ echo '#%Module1.0'; \
	  echo '## slimclr $(VERSION): SlimCLR pre-training of slimmable ResNets on CPU clusters (written by make install)'; \
	  echo 'proc ModulesHelp { } { puts stderr "slimclr $(VERSION): slimclr --help, man slimclr; configs and job files in $(PREFIX)/share/slimclr" }'; \
	  echo 'module-whatis "slimclr $(VERSION): SlimCLR pre-training of slimmable ResNets (MPI, BLIS, ScaLAPACK)"'; \
	  echo 'set prefix $(PREFIX)'; \
	  echo 'prepend-path PATH $$prefix/bin'; \
	  echo 'prepend-path MANPATH $$prefix/share/man'; \
	  echo 'setenv SLIMCLR_SHARE $$prefix/share/slimclr'; \
	  echo 'setenv SLIMCLR_JOBS $$prefix/share/slimclr/jobs'; } >$(MODULEFILE)
	@echo "installed $(DESTDIR)$(PREFIX)/bin/slimclr; configs and job files in $(SHARE)/slimclr; man slimclr"
	@echo "module: module use $(PREFIX)/share/modulefiles; module load slimclr"

# `make test-slurm` (not part of `make test`: 5-8 minutes, as root): a real SLURM (Debian's slurm-wlm + munge, installed
# when missing) on this machine with a one-node configuration in a temporary directory, Lmod for the modulefile;
# tests/slurm/run_slurm.sh says what it checks.
SLURM_PKGS = slurm-wlm munge lmod
test-slurm: all
	@missing=""; for p in $(SLURM_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "make test-slurm: installing$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get \
	    -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends $$missing \
	    || { echo "make test-slurm: apt-get failed; install:$$missing"; exit 1; }; \
	fi
	@BUILD=$(BUILD) bash tests/slurm/run_slurm.sh
.PHONY: test-slurm

clean:
	rm -rf $(BUILD) slimclr

-include $(OBJ:.o=.d) $(BUILD)/src/cli/main.d
# test programs too: an edited shared fixture (tests/model_fixtures.h) rebuilds the tests that include it
-include $(TEST_BIN:=.d) $(MPITEST_BIN:=.d) $(PROF_BIN:=.d)

# ---- reliability (tests/README.md): fault-injection tests, fuzzing, sanitizers -----------------------------------
# `make test-faults`: every fault scenario (kill -9 + resume, corrupt checkpoints, full disk, a dead rank, signals,
# bad inputs); it rewrites no tracked file. The short ones also run in `make test`
# (tests/sh/faults_*.sh), with the corpus replay below.
# (FAULT_BIN, FUZZ_REPLAY: built by `all`, defined above)

$(BUILD)/tests/faults/%: tests/faults/%.c $(LIB) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(MPICC) $(ALL_CPPFLAGS) $(CFLAGS) $< -o $@ $(LIB) $(LDLIBS)

# the harnesses without libFuzzer, with ASan + UBSan (gcc): replay tests/fuzz/corpus/<name>/ (seeds + every crash
# found) in `make test`, so an out-of-bounds read or undefined behaviour fails, not only a crash. Only the readers
# are instrumented (no MPI, no OpenMP), as for `make fuzz`.
# the readers of untrusted input (also `make fuzz`'s)
FUZZ_LIB_SRC = $(wildcard src/core/*.c src/io/*.c) src/data/dataset.c src/data/shard.c src/eval/safetensors.c
REPLAY_CC    ?= gcc
REPLAY_FLAGS ?= -O1 -g -std=gnu11 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
REPLAY_OBJ = $(FUZZ_LIB_SRC:%.c=$(BUILD)/replay-obj/%.o)
$(REPLAY_OBJ): $(BUILD)/replay-obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(REPLAY_CC) $(CPPFLAGS) $(YAML_CFLAGS) $(REPLAY_FLAGS) -MMD -MP -c $< -o $@
$(BUILD)/tests/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay_main.c tests/fuzz/fuzz_common.h $(REPLAY_OBJ)
	@mkdir -p $(dir $@)
	$(REPLAY_CC) $(CPPFLAGS) $(YAML_CFLAGS) $(REPLAY_FLAGS) -Itests/fuzz $< tests/fuzz/replay_main.c $(REPLAY_OBJ) -o $@ \
	  $(YAML_LIBS) $(ZLIB_LIBS) -lpthread -lm
-include $(REPLAY_OBJ:.o=.d)

test-faults: all
	@BUILD=$(BUILD) MPIRUN=$(MPIRUN) bash tests/faults/run_faults.sh

# `make fuzz` (or fuzz-config, fuzz-data, fuzz-ckpt, fuzz-safetensors): libFuzzer + ASan/UBSan, FUZZ_TIME seconds
# each; the working corpus grows in $(FUZZ_BUILD)/corpus-<name>, crashes land in $(FUZZ_BUILD)/crash-<name>-*.
# Only the readers are instrumented (no MPI, no OpenMP), so clang needs nothing else.
FUZZ_CC    ?= clang
FUZZ_TIME  ?= 60
FUZZ_BUILD ?= build-fuzz
FUZZ_FLAGS ?= -O1 -g -std=gnu11 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_OBJ = $(FUZZ_LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(YAML_CFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) $(CPPFLAGS) $(YAML_CFLAGS) -Itests/fuzz $(FUZZ_FLAGS) -fsanitize=fuzzer $< $(FUZZ_LIB_OBJ) -o $@ \
	  $(YAML_LIBS) $(ZLIB_LIBS) -lpthread -lm
$(FUZZ_NAMES:%=fuzz-%): fuzz-%: $(FUZZ_BUILD)/fuzz_%
	@mkdir -p $(FUZZ_BUILD)/corpus-$*
	UBSAN_OPTIONS=print_stacktrace=1 $< -max_total_time=$(FUZZ_TIME) -rss_limit_mb=2048 -malloc_limit_mb=1024 \
	  -timeout=10 -artifact_prefix=$(FUZZ_BUILD)/crash-$*- $(FUZZ_BUILD)/corpus-$* tests/fuzz/corpus/$*
fuzz: $(FUZZ_NAMES:%=fuzz-%)
.PHONY: fuzz $(FUZZ_NAMES:%=fuzz-%) valgrind

# `make asan`: the library and the unit tests with ASan + UBSan in $(ASAN_BUILD)/, then every cmocka binary
# (Open MPI's own leaks suppressed by tests/lsan.supp).
ASAN_BUILD ?= build-asan
ASAN_OPT   ?= -O1 -g -march=$(ARCH) -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
asan:
	$(MAKE) SKIP_DEPS=1 BUILD=$(ASAN_BUILD) OPT="$(ASAN_OPT)" $(TEST_SRC:tests/%.c=$(ASAN_BUILD)/tests/%)
	@BUILD=$(ASAN_BUILD) bash tests/faults/run_asan.sh

# `make valgrind`: a 2-step single-rank training run under valgrind (Open MPI's suppressions + tests/valgrind.supp)
valgrind: all
	@BUILD=$(BUILD) MPIRUN=$(MPIRUN) bash tests/faults/run_valgrind.sh

# ---- performance (docs/benchmarks.md B1): `make bench`, `make bench-data`; numbers appended to profiling/results/ ----
BENCH_CSV  ?= profiling/results/bench-$(shell date +%Y-%m-%d).csv
BENCH_ENV  ?=
BENCH_RUN  ?= $(BENCH_ENV) OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 $(MPIRUN) --bind-to none -np 1
bench: $(BIN)
	@mkdir -p profiling/results
	$(BENCH_RUN) $(BIN) bench yaml/bench-step.yaml --label B1 --csv $(BENCH_CSV) --commit $(GIT_COMMIT)
	$(BENCH_RUN) $(BIN) bench yaml/bench-step.yaml --set model.base=16 --set optim.batch=256 \
	  --label B1-small --csv $(BENCH_CSV) --commit $(GIT_COMMIT)

bench-data: $(BUILD)/profiling/bench_data
	@mkdir -p profiling/results
	$(BUILD)/profiling/bench_data --workers 1,2 --seconds 5 --out profiling/results/bench-data-$(shell date +%Y-%m-%d).txt
	@echo "compare with the step's images/s of 'make bench' (profiling/results/bench-*.csv, key images_per_s)"

# ---- B3 (docs/benchmarks.md): `make experiment` = jobs/experiment-fmnist.sh (4 x 60 min of pre-training + probes, resumable:
# rerun to continue; EXP_DIR, BUDGET_MIN, RUNS... are passed through), fills docs/results-fmnist.md and its PNGs.
# `make experiment-smoke`: the whole pipeline at a tiny scale in a few minutes (report under /tmp; its summary goes
# to the "smoke test" block of docs/results-fmnist.md).
EXP_DIR ?= profiling/results/experiment-fmnist
EXP_SMOKE_DIR ?= /tmp/slimclr-experiment-smoke
experiment: $(BIN)
	SLIMCLR_BIN=$(BIN) MPIRUN=$(MPIRUN) EXP_DIR=$(EXP_DIR) bash jobs/experiment-fmnist.sh
experiment-smoke: $(BIN)
	rm -rf $(EXP_SMOKE_DIR)
	SLIMCLR_BIN=$(BIN) MPIRUN=$(MPIRUN) EXP_DIR=$(EXP_SMOKE_DIR) SMOKE=1 SMOKE_DOC=docs/results-fmnist.md \
	  bash jobs/experiment-fmnist.sh
# `make recipe-trials` = jobs/recipe-trials.sh: short runs of the recipe with --set overrides from
# jobs/recipe-trials.txt (TRIALS_FILE, ONLY="names" to run some), each probed; table in
# profiling/results/recipe-trials/summary.md. Resumable like the experiment.
recipe-trials: $(BIN)
	SLIMCLR_BIN=$(BIN) MPIRUN=$(MPIRUN) bash jobs/recipe-trials.sh
.PHONY: experiment experiment-smoke recipe-trials

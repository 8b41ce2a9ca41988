#!/usr/bin/env bash
# `make install PREFIX=...` puts the binary, the configs, the job files, the man page and the docs in place, and
# the installed binary runs from elsewhere (help, version, info on an installed config).
set -u
BUILD=${BUILD:-build}
T=$(mktemp -d /tmp/slimclr-iface-install.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }
make -s SKIP_DEPS=1 BUILD="$BUILD" PREFIX="$T/p" install >"$T/log" 2>&1 || { echo "FAIL: make install"; tail "$T/log"; exit 1; }
P=$T/p
for f in bin/slimclr share/slimclr/yaml/fmnist-slimclr-mocov2.yaml share/slimclr/yaml/imagenet-slimclr-mocov2-r50.yaml \
         share/slimclr/jobs/slurm-pretrain.sbatch share/slimclr/jobs/pbs-pretrain.pbs share/man/man1/slimclr.1 \
         share/doc/slimclr/README.md share/doc/slimclr/config.md share/doc/slimclr/cli.md share/slimclr/tools/slimclr_torch.py \
         share/slimclr/jobs/slimclr-job.sh share/slimclr/tools/plot_metrics.sh share/modulefiles/slimclr/0.1.0; do
  [ -s "$P/$f" ] || bad "not installed: $f"
done
[ -x "$P/bin/slimclr" ] && [ -x "$P/share/slimclr/jobs/slurm-pretrain.sbatch" ] || bad "binary / job files not executable"
cd "$T" || exit 1
"$P/bin/slimclr" --help | grep -q "usage: slimclr COMMAND" || bad "installed --help"
"$P/bin/slimclr" --version | grep -q "^slimclr " || bad "installed --version"
"$P/bin/slimclr" info "$P/share/slimclr/yaml/fmnist-slimclr-mocov2.yaml" --ranks 2 | grep -q "memory per rank" || bad "installed info"
if command -v man >/dev/null; then
  MANPATH="$P/share/man" man -P cat slimclr 2>/dev/null | grep -q "STOPPED_BY_SIGNAL" || bad "man slimclr"
fi
# only what a user runs: the job files (and their shared logic), not the repository's experiment scripts
extra=$(ls "$P/share/slimclr/jobs" | grep -vE '\.(sbatch|pbs)$|^slimclr-job\.sh$')
[ -z "$extra" ] || bad "developer scripts installed: $extra"
grep -q "^set prefix $P$" "$P/share/modulefiles/slimclr/0.1.0" && grep -q "prepend-path PATH \$prefix/bin" "$P/share/modulefiles/slimclr/0.1.0" || bad "modulefile: no PATH"
# the modulefile under Lmod (when installed; make test-slurm installs it and runs the job files through it)
if [ -f /usr/share/lmod/lmod/init/bash ]; then
  out=$(env -i HOME="$HOME" PATH=/usr/bin:/bin bash -c ". /usr/share/lmod/lmod/init/bash; module use $P/share/modulefiles; module load slimclr; command -v slimclr; slimclr --version | head -1; echo \$SLIMCLR_JOBS" 2>&1)
  echo "$out" | grep -q "^$P/bin/slimclr$" && echo "$out" | grep -q "^slimclr " && echo "$out" | grep -q "^$P/share/slimclr/jobs$" \
    && echo "ok: module load slimclr (Lmod): $(echo "$out" | sed -n 2p)" || bad "module load slimclr: $out"
else
  echo "skip: Lmod not installed (make test-slurm installs it): the modulefile is not loaded here"
fi
[ $fail -eq 0 ] && echo "ok: make install PREFIX=$P: binary, $(ls "$P/share/slimclr/yaml" | wc -l) configs, $(ls "$P/share/slimclr/jobs" | wc -l) job files, man page, docs; installed binary runs"
exit $fail

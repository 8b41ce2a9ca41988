#!/usr/bin/env bash
# Lists every #include that points up the layer order of README "Architecture"
#   core -> blas -> comm | data | optim -> nn -> model -> io -> eval -> ssl -> cli
# (a module includes its own headers and those of the layers below; comm, data and optim not each other's).
# Exit 1 when an include points up or sideways.
cd "$(dirname "$0")/../.."
rank() {
  case $1 in
    core) echo 0 ;; blas) echo 1 ;; comm|data|optim) echo 2 ;; nn) echo 3 ;; model) echo 4 ;; io) echo 5 ;;
    eval) echo 6 ;; ssl) echo 7 ;; cli) echo 8 ;; *) echo -1 ;;
  esac
}
bad=0
for f in src/*/*.c src/*/*.h include/*/*.h; do
  [ -f "$f" ] || continue
  mod=$(echo "$f" | cut -d/ -f2); rm_=$(rank "$mod")
  while IFS= read -r inc; do
    to=${inc%%/*}; rt=$(rank "$to")
    [ "$rt" -ge 0 ] || continue
    if [ "$to" != "$mod" ] && { [ "$rt" -gt "$rm_" ] || { [ "$rt" -eq "$rm_" ] && [ "$rt" -eq 2 ]; }; }; then
      echo "$f includes $inc ($mod -> $to)"; bad=1
    fi
  done < <(sed -n 's/^#include "\([a-z]*\/[^"]*\)".*/\1/p' "$f")
done
# each external library has one home (STYLE.md)
home() { # header, the one folder allowed
  local hits; hits=$(grep -l "#include <$1>" src/*/*.c src/*/*.h include/*/*.h 2>/dev/null | grep -v "^src/$2/\|^include/$2/")
  [ -z "$hits" ] || { echo "$1 outside $2/: $hits"; bad=1; }
}
home mpi.h comm; home blis.h blas; home yaml.h io; home zlib.h data; home jpeglib.h data
sl=$(grep -l "Cblacs_\|p[sd][a-z]*_(" src/*/*.c | grep -v "^src/eval/")
[ -z "$sl" ] || { echo "ScaLAPACK called outside eval/: $sl"; bad=1; }
[ $bad -eq 0 ] && echo "check_layers: no include points up or sideways; each external library in its one home"
exit $bad

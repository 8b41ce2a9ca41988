#!/usr/bin/env bash
# STYLE.md "Layout": functions stay under ~100 lines. Lists every function of src/ and include/ longer than LIMIT
# lines (tools/func_lengths.py: signature to closing brace) that the allow-list below does not name with a reason.
# Exit 1 when there is one.
set -u
cd "$(dirname "$0")/../.."
LIMIT=100
# "file function": kept whole, each with its reason
allow=(
)
over=$(python3 tools/func_lengths.py --over $LIMIT) && { echo "lint_functions: no function over $LIMIT lines"; exit 0; }
bad=0
while read -r n loc name; do
  f=${loc%%:*}
  ok=0
  for a in "${allow[@]}"; do [ "$a" = "$f $name" ] && ok=1; done
  if [ $ok -eq 1 ]; then echo "allowed: $name ($loc, $n lines)"
  else echo "over $LIMIT lines: $name ($loc, $n lines)"; bad=1; fi
done <<<"$over"
[ $bad -eq 0 ] && echo "lint_functions: no function over $LIMIT lines but the allowed"
exit $bad

#!/usr/bin/env bash
# Prints the shape of a run's results folder: the section headings of report.md and
# report.html, and every key path of run.json (array indices collapsed to []), so two runs —
# e.g. before and after a change to the orchestrator — can be compared with diff:
#
#   scripts/report-shape.sh results/simple-discovery/<old-run> > old.txt
#   scripts/report-shape.sh results/simple-discovery/<new-run> > new.txt
#   diff old.txt new.txt
#
# Values (timestamps, measured figures) are left out; only the structure is printed.
set -euo pipefail
dir=${1:?usage: scripts/report-shape.sh RESULTS_DIR}
command -v jq >/dev/null || { echo "report-shape.sh needs jq" >&2; exit 127; }

echo "== report.md headings"
grep '^#' "$dir/report.md"
if [[ -f $dir/report.html ]]; then
  echo "== report.html headings"
  grep -o '<h[1-3][^>]*>[^<]*</h[1-3]>' "$dir/report.html" | sed -E 's/<h([1-3])[^>]*>([^<]*)<\/h[1-3]>/\1 \2/' |
    awk '{ n=$1; $1=""; printf "%s%s\n", substr("###", 1, n), $0 }' | sed 's/&amp;/\&/g; s/&lt;/</g; s/&gt;/>/g'
fi
echo "== run.json keys"
jq -r '[paths | map(if type == "number" then "[]" else tostring end) | join(".")] | unique[]' "$dir/run.json"

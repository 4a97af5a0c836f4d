#!/usr/bin/env bash
# Performance estimation without labels: modelmonitor vs NannyML's CBPE on identical
# seeded data (bench/performance_data.py). Results: bench/results/performance-<time>.jsonl
# and .md (see README.md). SKIP_NANNYML=1 runs ours only. Then the timing, both tools
# interleaved over TIMING_ROUNDS rounds (default 5; bench/performance_timing.py, results in
# bench/results/performance-timing-<time>.{jsonl,md}); SKIP_TIMING=1 skips it, BEFORE=DIR
# adds our script run against DIR/operator (another checkout) as "before".
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
DATA=${BENCH_DATA:-bench/data}/perf
NANNYML=bench/.venvs/nannyml/bin/python
mkdir -p "$DATA" bench/results
if [[ -z "${SKIP_NANNYML:-}" && ! -x $NANNYML ]]; then
  python3 -m venv bench/.venvs/nannyml
  # NannyML 0.13.1 imports statsmodels without declaring it
  bench/.venvs/nannyml/bin/pip install -q 'nannyml==0.13.*' statsmodels
fi
[[ -f $DATA/windows.npz ]] || $PY bench/performance_data.py --out "$DATA"
out="bench/results/performance-$(date -u +%Y%m%dT%H%M%SZ)"
$PY bench/performance_ours.py --data "$DATA" >"$out.jsonl"
[[ -n "${SKIP_NANNYML:-}" ]] || $NANNYML bench/rival_nannyml.py --data "$DATA" >>"$out.jsonl"
$PY bench/performance_summary.py <"$out.jsonl" | tee "$out.md"
if [[ -z "${SKIP_TIMING:-}" ]]; then
  $PY bench/performance_timing.py --data "$DATA" --rounds "${TIMING_ROUNDS:-5}" \
    ${BEFORE:+--before "$BEFORE"}
fi

#!/usr/bin/env bash
# Drift benchmarks: modelmonitor vs Evidently vs Alibi Detect on identical data.
# `make bench` runs this. Results: bench/results/run-<time>.jsonl and .md (see README.md).
#
# Environment knobs: REF_ROWS (1000000), CUR_ROWS (100000), REPEAT (3 rounds of ours and
# Alibi Detect), EVIDENTLY_REPEAT (1), SCALING_ROWS (1000,...,10000000), SKIP_RIVALS=1,
# SKIP_EVIDENTLY=1, SKIP_SCALING=1, SKIP_PROCESSES=1.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
DATA=${BENCH_DATA:-bench/data}
RESULTS=bench/results
REF_ROWS=${REF_ROWS:-1000000}
CUR_ROWS=${CUR_ROWS:-100000}
REPEAT=${REPEAT:-3}
EVIDENTLY_REPEAT=${EVIDENTLY_REPEAT:-1}  # Evidently takes minutes per run at 1M rows
SCALING_ROWS=${SCALING_ROWS:-1000,10000,100000,1000000,10000000}
EVIDENTLY=bench/.venvs/evidently/bin/python
ALIBI=bench/.venvs/alibi/bin/python

mkdir -p "$DATA" "$RESULTS"

# --- rivals, each in its own virtual environment (gitignored) -----------------------------
if [[ -z "${SKIP_RIVALS:-}" ]]; then
  if [[ ! -x $EVIDENTLY ]]; then
    python3 -m venv bench/.venvs/evidently
    bench/.venvs/evidently/bin/pip install -q 'evidently==0.7.*' 'pandas<3' pyarrow
  fi
  if [[ ! -x $ALIBI ]]; then
    python3 -m venv bench/.venvs/alibi
    # Alibi Detect needs numpy < 2, and so does the pyarrow it reads Parquet with
    bench/.venvs/alibi/bin/pip install -q alibi-detect 'numpy<2' 'pyarrow<18'
  fi
fi

# --- data, written once ------------------------------------------------------------------
stamp="$DATA/.rows-$REF_ROWS-$CUR_ROWS"
if [[ ! -f $stamp ]]; then
  rm -f "$DATA"/.rows-* "$DATA"/*.parquet "$DATA"/*.profile.json
  $PY bench/generate.py --out "$DATA" --reference-rows "$REF_ROWS" --current-rows "$CUR_ROWS"
  touch "$stamp"
fi
REF=$DATA/reference.parquet
CUR=$DATA/current.parquet
PROFILE=$DATA/reference.profile.json
cat "$REF" "$CUR" >/dev/null  # same warm page cache for every tool

out="$RESULTS/run-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
$PY - >"$out" <<'PY'
import json, os, platform, subprocess, sys
import numpy, pyarrow, scipy
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
print(json.dumps({"machine": {
    "nproc": int(subprocess.check_output(["nproc"]).decode()),
    "cpu": cpu, "ram_gib": round(mem / 2**20, 1), "kernel": platform.release(),
    "python": platform.python_version(), "numpy": numpy.__version__,
    "pyarrow": pyarrow.__version__, "scipy": scipy.__version__,
    "loadavg_at_start": os.getloadavg()}}))
PY
echo "results: $out" >&2

run() { echo "+ $*" >&2; "$@" | tee -a "$out" >&2; }

# Rounds interleave the tools, so that each round's tools see about the same machine load.
for i in $(seq "$REPEAT"); do
  run $PY bench/ours.py e2e --setup auto --reference "$REF" --current "$CUR"
  run $PY bench/ours.py e2e --setup tests --reference "$REF" --current "$CUR"
  if [[ -z "${SKIP_RIVALS:-}" ]]; then
    run $ALIBI bench/rival_alibi.py --reference "$REF" --current "$CUR" 2> >(grep -v PyTorch >&2)
    if [[ -z "${SKIP_EVIDENTLY:-}" && $i -le $EVIDENTLY_REPEAT ]]; then
      run $EVIDENTLY bench/rival_evidently.py --reference "$REF" --current "$CUR"
    fi
  fi
done
run $PY bench/ours.py baseline --reference "$REF" --profile "$PROFILE"
run $PY bench/ours.py profile-run --profile "$PROFILE" --current "$CUR"
run $PY bench/ours.py cli --profile "$PROFILE" --current "$CUR"
if [[ -z "${SKIP_SCALING:-}" ]]; then
  run $PY bench/ours.py scaling --profile "$PROFILE" --rows "$SCALING_ROWS"
fi
$PY bench/summarize.py "$out" | tee "${out%.jsonl}.md"

# Whole processes side by side (interpreter start and imports included), at a small size
# and at the size above: bench/results/processes-<time>.{jsonl,md}.
if [[ -z "${SKIP_PROCESSES:-}" ]]; then
  skip=()
  [[ -n "${SKIP_RIVALS:-}" ]] && skip=(--skip-alibi --skip-evidently)
  [[ -n "${SKIP_EVIDENTLY:-}" ]] && skip+=(--skip-evidently)
  $PY bench/processes.py --reference-rows 200000 --current-rows 50000 \
    --numerical 16 --categorical 4 --repeat "$REPEAT" "${skip[@]}"
  $PY bench/processes.py --reference-rows 1000000 --current-rows 100000 \
    --numerical 40 --categorical 10 --repeat "$REPEAT" --evidently-repeat "$EVIDENTLY_REPEAT" \
    "${skip[@]}"
fi

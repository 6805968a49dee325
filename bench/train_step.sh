#!/usr/bin/env bash
# Training step side by side: PyTorch running mmseg 1.2.2's own SegNeXt with torch.optim.AdamW
# (bench/train_step_torch.py) vs the project's trainer step (bench/train_step.py), alternating the two
# per workload and round so that host drift hits both; each process runs alone under
# `/usr/bin/time -v`, so its peak RSS is the workload's. Run from the project root after
# `bash ../shared/bench/setup.sh` (.bench-ref/).
#   bash bench/train_step.sh                                   # the four workloads below, 2 rounds
#   WORKLOADS="t:8:step" ROUNDS=1 RES=256 bash bench/train_step.sh
#   CONTEND=1 bash bench/train_step.sh                         # beside one busy-loop process
# A workload is size:batch:mode, mode `step` (forward, loss, backward, AdamW) or `fwdbwd` (no optimizer).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
TORCH_PY="${TORCH_PY:-.bench-ref/venv/bin/python}"
PROJ_PY="${PROJ_PY:-.venv/bin/python}"
WORKLOADS="${WORKLOADS:-t:8:step l:2:step t:1:fwdbwd l:1:fwdbwd}"
ROUNDS="${ROUNDS:-2}"; RUNS="${RUNS:-3}"; RES="${RES:-512}"
export SEGNEXT_REF_MMSEG="${SEGNEXT_REF_MMSEG:-$PWD/.bench-ref/mmseg}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT="$(mktemp)"; TV="$(mktemp)"
trap 'rm -f "$OUT" "$TV"' EXIT
BURNER=""
if [ "${CONTEND:-0}" = 1 ]; then
  python3 -c "while True: pass" & BURNER=$!
  echo "contention: busy-loop pid $BURNER"
fi
run_one() {  # python script size batch mode -> one RESULT line with peak_rss_kb added
  local py="$1" script="$2" size="$3" batch="$4" mode="$5" line rss
  line="$(/usr/bin/time -v -o "$TV" "$py" "$script" --size "$size" --batch "$batch" --mode "$mode" \
          --res "$RES" --runs "$RUNS" 2>/dev/null | grep '^RESULT')"
  rss="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$TV")"
  [ -n "$line" ] && echo "${line%\}}, \"peak_rss_kb\": ${rss:-0}}" | tee -a "$OUT"
}
for r in $(seq 1 "$ROUNDS"); do
  for w in $WORKLOADS; do
    IFS=: read -r size batch mode <<< "$w"
    run_one "$TORCH_PY" "$HERE/train_step_torch.py" "$size" "$batch" "$mode"
    run_one "$PROJ_PY" "$HERE/train_step.py" "$size" "$batch" "$mode"
  done
done
[ -n "$BURNER" ] && kill "$BURNER"
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l.split(" ", 1)[1]) for l in open(sys.argv[1]) if l.startswith("RESULT")]
pairs, last = {}, {}
for r in rows:
    key = (r["size"], r["batch"], r["mode"], r["res"])
    if r["impl"] == "torch":
        last[key] = r
    elif key in last:
        pairs.setdefault(key, []).append((last.pop(key), r))
gib = lambda kb: kb / 2**20
print("| workload | PyTorch s | project s | project/PyTorch per pair | median ratio | peak RSS PyTorch | peak RSS project | RSS ratio |")
print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
for (s, b, m, res), ps in pairs.items():
    ratios = [p["s"] / t["s"] for t, p in ps]
    rt, rp = max(t["peak_rss_kb"] for t, _ in ps), max(p["peak_rss_kb"] for _, p in ps)
    what = "step (fwd, loss, bwd, AdamW)" if m == "step" else "fwd+bwd"
    print(f"| SegNeXt-{s.upper()} batch {b} {res}² {what} | {statistics.median(t['s'] for t, _ in ps):.2f} | "
          f"{statistics.median(p['s'] for _, p in ps):.2f} | " + ", ".join(f"{x:.2f}" for x in ratios)
          + f" | {statistics.median(ratios):.2f} | {gib(rt):.2f} GiB | {gib(rp):.2f} GiB | {rp / max(rt, 1):.2f} |")
PY

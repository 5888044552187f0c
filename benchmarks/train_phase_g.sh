#!/usr/bin/env bash
# Phase G of the demo pair (issue 20), on one lent GPU in one prepared run of about 9 minutes.
#
# Four fine-tuning runs side by side on the one GPU, all from the bundled weights: `demo` (the
# hmmn read with sigma 1.5 and temperature 10, the read its manifest entry carries) and
# `demo-stm` (the stm read), each with the r4 attention loss at two weights (A1, A2). The runs of
# one weight are identical except for the read. Before them: benchmarks/gpu_check.py in the
# background, the DAVIS training frames unpacked from the carried .gdata/davis (WebP and 1-bit
# PNG, to fit the transfer; rewritten as DAVIS JPEG / PNG), the synthetic and look-alike caches
# written on every core (benchmarks/train_cache.py), and a 14-step probe of the four runs that
# sets the number of steps so that training and its validations end within BUDGET seconds.
#
#   OUT=runs/G bash benchmarks/train_phase_g.sh                      # on the GPU machine
#   SMOKE=1 DEVICE=cpu OUT=/tmp/G bash benchmarks/train_phase_g.sh   # the whole script, tiny, CPU
#
# Writes into $OUT: gpu_check.json, one <run>.tar per run (best.pth, log.csv, train.log) and
# phase_g.log. Run from the repository root. The bundled pair is run 2's W = 0 pair:
#   OUT=$OUT BUDGET=250 A1=0.5 A2=0 LR=3e-5 CHECK_GPU=0 bash benchmarks/train_phase_g.sh
# (runs demo-a2 and demo-stm-a2, 433 steps; run 1 was the defaults, BUDGET=360).
set -u
OUT=${OUT:?set OUT}
DEVICE=${DEVICE:-cuda}
BUDGET=${BUDGET:-330}  # seconds for the four runs, their validations included
WORKERS=${WORKERS:-14}
SMOKE=${SMOKE:-0}
A1=${A1:-0.3}
A2=${A2:-1.0}
LOADER=${LOADER:-0}  # DataLoader workers per run drawing its clips (0 for the bundled pair)
WORK=${WORK:-/tmp/phase_g}
PY=${PY:-python3}
mkdir -p "$OUT" "$WORK"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/phase_g.log") 2>&1
log() { echo "[$(date +%T)] $*"; }

if [ "$SMOKE" = 1 ]; then
    SYN=2; SYN_VAL=1; LOOK=2; LOOK_VAL=1; PROBE=6; MAXSTEPS=6; BATCH=2; VAL_FRAMES=4
else
    SYN=100; SYN_VAL=3; LOOK=120; LOOK_VAL=4; PROBE=14; MAXSTEPS=4000; BATCH=8; VAL_FRAMES=30
fi

log "machine"
nvidia-smi -L 2>/dev/null
$PY -c "import torch, timm; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

if [ "$DEVICE" = cuda ] && [ "${CHECK_GPU:-1}" = 1 ]; then
    log "gpu_check in the background"
    timeout 300 $PY benchmarks/gpu_check.py --out "$OUT/gpu_check.json" --budget-s 200 \
        > "$WORK/gpu_check.log" 2>&1 &
    CHECK=$!
fi

log "data"
$PY - "$WORK/davis" <<'EOF'
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from PIL import Image
src, dst = Path(".gdata/davis"), Path(sys.argv[1])
def convert(f):
    out = dst / f.relative_to(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    if f.suffix == ".webp":
        Image.open(f).convert("RGB").save(out.with_suffix(".jpg"), quality=90, subsampling=2)
    elif f.suffix == ".png":
        Image.open(f).convert("L").save(out)  # {0, 255}, as DAVIS 2016
    else:
        out.write_bytes(f.read_bytes())
files = [f for f in src.rglob("*") if f.is_file()]
with ProcessPoolExecutor(14) as pool:
    list(pool.map(convert, files, chunksize=32))
print(len(files), "files")
EOF
$PY benchmarks/train_cache.py --cache "$WORK/cache" --synthetic $SYN --synthetic-val $SYN_VAL \
    --lookalikes $LOOK --lookalikes-val $LOOK_VAL --workers "$WORKERS"

COMMON="--synthetic $SYN --synthetic-val $SYN_VAL --lookalikes $LOOK --lookalikes-val $LOOK_VAL
  --synthetic-cache $WORK/cache --davis $WORK/davis --hold-out bear,car-turn,hockey --preset demo
  --device $DEVICE --set imagenet_init=false --set batch_size=$BATCH --set lookalike_prob=0.5
  --set real_fraction=0.35 --set mask_lr_mult=50 --set lr=${LR:-4e-5} --set skip_start=4
  --set skip_end=10 --set crop_size=192 --set freeze_stages=3 --set shift=0.25 --set shift_prob=0.5
  --set static_prob=0.05 --set threads=3 --set val_max_frames=$VAL_FRAMES --set loader_workers=$LOADER"
HMMN_READ="--init data_samples/weights/demo.pth --set variant=hmmn --set read.sigma=1.5 --set read.temperature=10"
STM_READ="--init data_samples/weights/demo-stm.pth --set variant=stm"
RUNS="demo-a1 demo-stm-a1 demo-a2 demo-stm-a2"
args_of() {  # the run-specific arguments
    case $1 in
        demo-a1) echo "$HMMN_READ --set attention_loss=$A1" ;;
        demo-stm-a1) echo "$STM_READ --set attention_loss=$A1" ;;
        demo-a2) echo "$HMMN_READ --set attention_loss=$A2" ;;
        demo-stm-a2) echo "$STM_READ --set attention_loss=$A2" ;;
    esac
}

log "probe: $PROBE steps of each run, side by side"
START=$(date +%s)
PIDS=()
for run in $RUNS; do
    # shellcheck disable=SC2046,SC2086
    $PY -m hmmnlab train $COMMON $(args_of $run) --set steps=$PROBE --set warmup_steps=2 \
        --set log_every=2 --set val_every=$PROBE --set ckpt_every=100000 \
        --out "$WORK/probe-$run" > "$WORK/probe-$run.log" 2>&1 &
    PIDS+=($!)
done
wait "${PIDS[@]}"
for run in $RUNS; do tail -2 "$WORK/probe-$run.log"; done
WALL=$(( $(date +%s) - START ))
STEPS=$($PY - "$WORK" "$WALL" "$BUDGET" "$MAXSTEPS" $RUNS <<'EOF'
import csv, sys
work, wall, budget, most, runs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
per_step = []
for run in runs:
    rows = [r for r in csv.DictReader(open(f"{work}/probe-{run}/log.csv")) if r.get("loss")]
    first, last = rows[1], rows[-1]  # the first logged steps carry the start-up
    per_step.append((float(last["elapsed_s"]) - float(first["elapsed_s"]))
                    / (int(last["step"]) - int(first["step"])))
    trained = float(last["elapsed_s"])
overhead = max(wall - trained, 1.0)  # start-up and one validation of the slowest run
seconds = max(per_step)
steps = int((budget - 3 * overhead) / seconds)
print(f"probe: {seconds:.3f} s/step, start-up + validation {overhead:.0f} s", file=sys.stderr)
print(max(min(steps, most), 3))
EOF
)
STEPS=${STEPS:-600}  # the probe failed: a guess
log "training $STEPS steps per run"
PIDS=()
for run in $RUNS; do
    # shellcheck disable=SC2046,SC2086
    $PY -m hmmnlab train $COMMON $(args_of $run) --set steps=$STEPS --set warmup_steps=20 \
        --set log_every=10 --set val_every=$(( (STEPS + 2) / 3 )) --set ckpt_every=200 \
        --out "$WORK/$run" > "$WORK/$run.log" 2>&1 &
    PIDS+=($!)
done
wait "${PIDS[@]}"
log "runs done"
for run in $RUNS; do
    tail -3 "$WORK/$run.log"
    cp "$WORK/$run.log" "$WORK/$run/train.log"
    tar -C "$WORK/$run" -cf "$OUT/$run.tar" best.pth log.csv train.log
done
if [ -n "${CHECK:-}" ]; then
    wait "$CHECK"; log "gpu_check rc $?"; tail -20 "$WORK/gpu_check.log"
fi
log "end"

#!/usr/bin/env bash
# The main job, on a fresh CPU machine with no data and no weights:
# set-up -> synthetic PSG dataset -> train a small model -> evaluate (both protocols, PQ)
# -> draw the scene graphs of a few test images -> work_dirs/demo/REPORT.md.
# Environment overrides: CONFIG (default PSGTR tiny), EPOCHS, DATA, OUT.
set -euo pipefail
source "$(dirname "$0")/setup_env.sh"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

DATA="${DATA:-data/psg_synth}"
OUT="${OUT:-work_dirs/demo}"
CONFIG="${CONFIG:-configs/psgtr/psgtr_tiny_synth.py}"
mkdir -p "$OUT"
step() { printf '\n[demo] %s\n' "$*"; }

if [ ! -f "$DATA/psg.json" ]; then
  step "1/6 generating the synthetic PSG dataset in $DATA"
  python tools/make_synth_psg.py --out "$DATA" --num-train 900 --num-test 100 --seed 0 --size 128
else
  step "1/6 synthetic PSG dataset already in $DATA"
fi
python tools/check_dataset.py "$DATA/psg.json" --data-root "$DATA"

step "2/6 drawing annotated training samples into $OUT/samples"
python tools/browse_dataset.py "$CONFIG" --out "$OUT/samples" --num 4

step "3/6 training $CONFIG (resumes if interrupted)"
train_args=(--work-dir "$OUT/train" --seed 0 --resume)
[ -n "${EPOCHS:-}" ] && train_args+=(--cfg-options "runner.max_epochs=$EPOCHS")
python tools/train.py "$CONFIG" "${train_args[@]}"

step "4/6 evaluating on the test split (openpsg and fair protocols, PQ)"
rm -f "$OUT"/eval_*.json
python tools/test.py "$CONFIG" "$OUT/train/latest.pth" --eval sgdet PQ --protocol both \
  --work-dir "$OUT" --out "$OUT/predictions.pth"

step "5/6 scene graphs of a few test images"
rm -rf "$OUT/inputs" "$OUT/graphs"
python - "$DATA" "$OUT/inputs" <<'PY'
import json, os, shutil, sys
data, out = sys.argv[1], sys.argv[2]
ann = json.load(open(os.path.join(data, 'psg.json')))
test = set(ann['test_image_ids'])
os.makedirs(out, exist_ok=True)
for entry in [d for d in ann['data'] if d['image_id'] in test and d['relations']][:4]:
    shutil.copy(os.path.join(data, entry['file_name']), out)
PY
python tools/demo.py "$OUT/inputs" --config "$CONFIG" --checkpoint "$OUT/train/latest.pth" \
  --out "$OUT/graphs" --topk 10

step "6/6 writing the report"
python tools/make_report.py --eval "$(ls -t "$OUT"/eval_*.json | head -n 1)" \
  --pictures "$OUT/graphs" --out "$OUT/REPORT.md"
echo "[demo] done: open $OUT/REPORT.md"

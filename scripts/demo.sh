#!/usr/bin/env bash
# The main job, on a fresh CPU machine with no data and no weights:
# set-up -> synthetic PSG dataset -> train a small two-stage model (Panoptic FPN, then MOTIFS in
# SGDet) -> evaluate (both protocols, PQ) -> draw the scene graphs of a few test images
# -> work_dirs/demo/REPORT.md. Every step resumes/reuses what an earlier run left.
# Environment overrides: DATA, OUT, NUM_TRAIN, NUM_TEST, SEG_EPOCHS, REL_EPOCHS.
set -euo pipefail
source "$(dirname "$0")/setup_env.sh"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

DATA="${DATA:-data/psg_synth}"
OUT="${OUT:-work_dirs/demo}"
SEGMENTER=configs/panoptic_fpn/panoptic_fpn_tiny_synth.py
RELATIONS=configs/motifs/motifs_tiny_sgdet_synth.py
data_opts=(data_root="$DATA/")  # the synthetic configs derive every split's files from it
SEG_EPOCHS="${SEG_EPOCHS:-10}"
REL_EPOCHS="${REL_EPOCHS:-3}"
last_but_one() { echo $(( $1 > 1 ? $1 - 1 : 1 )); }  # lr step: x0.1 for the last epoch
mkdir -p "$OUT"
step() { printf '\n[demo] %s\n' "$*"; }

if [ ! -f "$DATA/psg.json" ]; then
  step "1/7 generating the synthetic PSG dataset in $DATA"
  python tools/make_synth_psg.py --out "$DATA" --num-train "${NUM_TRAIN:-300}" \
    --num-test "${NUM_TEST:-60}" --seed 0 --size 128
else
  step "1/7 synthetic PSG dataset already in $DATA"
fi
python tools/check_dataset.py "$DATA/psg.json" --data-root "$DATA"

step "2/7 drawing annotated training samples into $OUT/samples"
python tools/browse_dataset.py "$RELATIONS" --out "$OUT/samples" --num 4 --cfg-options "${data_opts[@]}"

step "3/7 training the segmenter ($SEGMENTER)"
python tools/train.py "$SEGMENTER" --work-dir "$OUT/segmenter" --seed 0 --resume --no-validate \
  --cfg-options "${data_opts[@]}" runner.max_epochs="$SEG_EPOCHS" \
  lr_config.step="[$(last_but_one "$SEG_EPOCHS")]"

step "4/7 training the relation head on the frozen segmenter ($RELATIONS)"
rel_opts=("${data_opts[@]}" model.segmenter_checkpoint="$OUT/segmenter/latest.pth"
          runner.max_epochs="$REL_EPOCHS" lr_config.step="[$(last_but_one "$REL_EPOCHS")]")
python tools/train.py "$RELATIONS" --work-dir "$OUT/relations" --seed 0 --resume --no-validate \
  --cfg-options "${rel_opts[@]}"

step "5/7 evaluating on the test split (openpsg and fair protocols, PQ)"
rm -f "$OUT"/eval_*.json
python tools/test.py "$RELATIONS" "$OUT/relations/latest.pth" --eval sgdet PQ --protocol both \
  --work-dir "$OUT" --out "$OUT/predictions.pth" --cfg-options "${rel_opts[@]}"

step "6/7 scene graphs of a few test images"
rm -rf "$OUT/inputs" "$OUT/graphs"
python - "$DATA" "$OUT/inputs" <<'PY'
import json, os, shutil, sys
data, out = sys.argv[1], sys.argv[2]
with open(os.path.join(data, 'psg.json')) as f:
    ann = json.load(f)
test = set(ann['test_image_ids'])
os.makedirs(out, exist_ok=True)
for entry in [d for d in ann['data'] if d['image_id'] in test and d['relations']][:4]:
    shutil.copy(os.path.join(data, entry['file_name']), out)
PY
python tools/demo.py "$OUT/inputs" --config "$RELATIONS" --checkpoint "$OUT/relations/latest.pth" \
  --out "$OUT/graphs" --topk 10 --cfg-options "${rel_opts[@]}"

step "7/7 writing the report"
python tools/make_report.py --eval "$(ls -t "$OUT"/eval_*.json | head -n 1)" \
  --pictures "$OUT/graphs" --out "$OUT/REPORT.md"
echo "[demo] done: open $OUT/REPORT.md"

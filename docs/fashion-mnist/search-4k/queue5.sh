#!/bin/bash
# Issue 40 item 2: the conditioning recipe search, on the train split only. The shipped recipe (fashion-mnist-cpu)
# cut to 4,000 steps, one variant per run, one run at a time; FID5k against 5,000 train images with the bf16
# Inception pass (a search, not a figure to publish: every variant is scored the same way). Code frozen at the
# commit checked out in /tmp/w/frozen, so that edits in /work/main cannot change these runs.
cd /work/main; . .venv/bin/activate
export PYTHONPATH=/tmp/w/frozen/src
export SAGAN_SHARED_DATA=$HOME/.cache/sagan-shared-data
P=$SAGAN_SHARED_DATA/inception/default_1.pt
ROOT=/tmp/w/fmroot
R=runs/q40s
OUT=docs/fashion-mnist/search-4k
mkdir -p $R
log() { echo "$(date -u +%FT%TZ) $*" >> $R/queue.log; }
run() {  # name seed extra-args...
  name=$1; seed=$2; shift 2
  d=$R/$name-seed$seed
  log "$d start: $*"
  sagan train --preset fashion-mnist-cpu --data-root $ROOT --seed $seed --set steps=4000 --set checkpoint_every=1000 \
    --set snapshot_every=0 --eval-every 0 --device cpu --run-dir $d "$@" >> $d.out 2>&1; log "$d train rc=$?"
  sagan evaluate --checkpoint $d --split train --num 5000 --metrics fid,kid --inception $P --inception-precision bf16 \
    --data-root $ROOT --device cpu --out $d/fid5k-train-bf16.json --overwrite > /dev/null 2>> $d.out; log "$d eval rc=$?"
  mkdir -p $OUT/$name-seed$seed
  cp $d/config.json $d/metrics.jsonl $d/log.txt $d/fid5k-train-bf16.json $OUT/$name-seed$seed/ 2>> $d.out
}
run cond 0
run uncond 0 --unconditional
run ramp0-2k 0 --set class_ramp_start=0 --set class_ramp_end=2000
run cond 1
run uncond 1 --unconditional
run ramp0-2k 1 --set class_ramp_start=0 --set class_ramp_end=2000
run lrd4e-4 0 --set lr_d=4e-4
run lrd4e-4 1 --set lr_d=4e-4
log done

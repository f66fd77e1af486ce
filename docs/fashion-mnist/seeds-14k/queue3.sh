#!/bin/bash
# Background queue (issue 40 item 1): the shipped recipe, one more seed each, conditional and unconditional, 14,000 steps.
cd /work/main; . .venv/bin/activate
export SAGAN_SHARED_DATA=$HOME/.cache/sagan-shared-data
P=$SAGAN_SHARED_DATA/inception/default_1.pt
ROOT=/tmp/w/fmroot
R=runs/q40
mkdir -p $R
log() { echo "$(date -u +%FT%TZ) $*" >> $R/queue.log; }
for cfg in cond uncond; do
  if [ $cfg = uncond ]; then extra="--unconditional"; else extra=""; fi
  d=$R/fm-$cfg-seed1
  log "$d start"
  sagan train --preset fashion-mnist-cpu --data-root $ROOT --seed 1 $extra --set checkpoint_every=1000 --set snapshot_every=0 --eval-every 0 --device cpu --run-dir $d > $d.out 2>&1; log "$d train rc=$?"
  sagan evaluate --checkpoint $d --split test --num 10000 --num-real 10000 --metrics fid,kid --inception $P --data-root $ROOT --device cpu --out $d/fid10k-test.json --overwrite > /dev/null 2>> $d.out; log "$d eval rc=$?"
done
log done

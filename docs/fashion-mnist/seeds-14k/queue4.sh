#!/bin/bash
# Continues queue3 (issue 40 item 1) with the code of commit 605aff2 (a frozen worktree), so that edits in
# /work/main cannot change these runs: evaluation of the conditional seed-1 run, then the unconditional seed 1.
cd /work/main; . .venv/bin/activate
export PYTHONPATH=/tmp/w/frozen/src
export SAGAN_SHARED_DATA=$HOME/.cache/sagan-shared-data
P=$SAGAN_SHARED_DATA/inception/default_1.pt
ROOT=/tmp/w/fmroot
R=runs/q40
log() { echo "$(date -u +%FT%TZ) $*" >> $R/queue.log; }
while kill -0 31965 2>/dev/null; do sleep 10; done
for cfg in cond uncond; do
  if [ $cfg = uncond ]; then extra="--unconditional"; else extra=""; fi
  d=$R/fm-$cfg-seed1
  log "$d train (frozen code 605aff2)"
  # for cond this finds the finished run and exits 0 (or continues it from its last checkpoint if it was cut)
  sagan train --preset fashion-mnist-cpu --data-root $ROOT --seed 1 $extra --set checkpoint_every=1000 --set snapshot_every=0 --eval-every 0 --device cpu --run-dir $d >> $d.out 2>&1; log "$d train rc=$?"
  sagan evaluate --checkpoint $d --split test --num 10000 --num-real 10000 --metrics fid,kid --inception $P --data-root $ROOT --device cpu --out $d/fid10k-test.json --overwrite > /dev/null 2>> $d.out; log "$d eval rc=$?"
done
log done

#!/bin/bash
# Issue 40 item 2, after the 28 px generators resized to 32 px scored FID10k 10.08 (conditional) / 13.90
# (unconditional) at the 32 px protocol: the 32 px recipe with the 28 px G inside (`g_start=7`: stages 7-14-28,
# attention at 14 x 14, its images resized 28 -> 32 bilinearly), the 32 px D unchanged. The conditional run is the
# 14,000-step run of docs/fashion-mnist/g7r-32/queue.sh, whose step-4,000 snapshot was scored by this protocol
# (g7r-cond-seed0 here, metrics cut at step 4,000); this queue adds its unconditional twin, seed 0, the search
# protocol of queue5.sh (4,000 steps, FID5k against train images with the bf16 Inception pass), after that run.
cd /work/main; . .venv/bin/activate
export PYTHONPATH=/tmp/w/frozen/src
export SAGAN_SHARED_DATA=$HOME/.cache/sagan-shared-data
P=$SAGAN_SHARED_DATA/inception/default_1.pt
ROOT=/tmp/w/fmroot
R=runs/q40s
OUT=docs/fashion-mnist/search-4k
log() { echo "$(date -u +%FT%TZ) $(git -C /tmp/w/frozen rev-parse --short HEAD) $*" >> $R/queue.log; }
until grep -q "done" runs/q40r/queue.log; do sleep 15; done
run() {  # name seed extra-args...
  name=$1; seed=$2; shift 2
  d=$R/$name-seed$seed
  log "$d start: $*"
  sagan train --preset fashion-mnist-cpu --data-root $ROOT --seed $seed --set steps=4000 --set checkpoint_every=1000 \
    --set snapshot_every=0 --eval-every 0 --device cpu --run-dir $d "$@" >> $d.out 2>&1; log "$d train rc=$?"
  mkdir -p $OUT/$name-seed$seed
  cp $d/config.json $d/metrics.jsonl $d/log.txt $OUT/$name-seed$seed/ 2>> $d.out
  sagan evaluate --checkpoint $d --split train --num 5000 --metrics fid,kid --inception $P --inception-precision bf16 \
    --data-root $ROOT --device cpu --out $d/fid5k-train-bf16.json --overwrite > /dev/null 2>> $d.out; log "$d eval rc=$?"
  cp $d/fid5k-train-bf16.json $OUT/$name-seed$seed/ 2>> $d.out
}
run g7r-uncond 0 --unconditional --set g_start=7 --set g_attn_resolutions=14
log "queue9 done"

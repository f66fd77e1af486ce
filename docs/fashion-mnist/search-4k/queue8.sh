#!/bin/bash
# Issue 40 item 2, after the 28 px models: the conditional 28 px model beat its unconditional twin while its D ends
# at 7 x 7 without a third down-sampling (0.44M parameters, margin 0.76) where the 32 px preset's D goes to 4 x 4
# (0.66M, margin 1.03). One variant at 32 px: D's last stage not down-sampled (32 -> 16 -> 8, 0.44M), conditional,
# seed 0, the search protocol of queue5.sh (4,000 steps, FID5k against train images with the bf16 Inception pass).
cd /work/main; . .venv/bin/activate
export PYTHONPATH=/tmp/w/frozen/src
export SAGAN_SHARED_DATA=$HOME/.cache/sagan-shared-data
P=$SAGAN_SHARED_DATA/inception/default_1.pt
ROOT=/tmp/w/fmroot
R=runs/q40s
OUT=docs/fashion-mnist/search-4k
log() { echo "$(date -u +%FT%TZ) $*" >> $R/queue.log; }
until grep -q "after done" runs/q40n/queue.log; do sleep 15; done
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
run d8x8 0 --set d_downsample=true,true,false
log "queue8 done"

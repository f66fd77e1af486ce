#!/bin/bash
# Issue 40 items 2-3: the shipped 32 px recipe (`--preset fashion-mnist-cpu`, 14,000 steps of 64, bf16 training by
# `--amp auto`) with the 28 px G inside: G starts at 7 x 7 (`g_start=7`: stages 7-14-28, 128-64-32 channels,
# attention at 14 x 14) and resizes its 28 px images to 32 px bilinearly, as the data is resized; D (32 px,
# attention at 16 x 16) and everything else unchanged. Prompted by the 28 px generators resized to 32 px scoring
# FID10k 10.08 (conditional) and 13.90 (unconditional), bf16 Inception, where the 32 px conditional model scores
# 17.15. Scored by FID10k / KID10k at 32 px against the 10,000 test images (fp32 Inception). One run at a time,
# code frozen at the commit checked out in /tmp/w/frozen.
cd /work/main; . .venv/bin/activate
export PYTHONPATH=/tmp/w/frozen/src
export SAGAN_SHARED_DATA=$HOME/.cache/sagan-shared-data
P=$SAGAN_SHARED_DATA/inception/default_1.pt
ROOT=/tmp/w/fmroot
R=runs/q40r
OUT=docs/fashion-mnist/g7r-32
mkdir -p $R
log() { echo "$(date -u +%FT%TZ) $(git -C /tmp/w/frozen rev-parse --short HEAD) $*" >> $R/queue.log; }
run() {  # name seed extra-args...
  name=$1; seed=$2; shift 2
  d=$R/$name-seed$seed
  log "$d start: $*"
  sagan train --preset fashion-mnist-cpu --data-root $ROOT --seed $seed --set g_start=7 --set g_attn_resolutions=14 \
    --set checkpoint_every=1000 --eval-every 0 --device cpu --run-dir $d "$@" >> $d.out 2>&1; log "$d train rc=$?"
  mkdir -p $OUT/$name-seed$seed
  cp $d/config.json $d/metrics.jsonl $d/log.txt $OUT/$name-seed$seed/ 2>> $d.out
  sagan evaluate --checkpoint $d --split test --num 10000 --metrics fid,kid --inception $P \
    --data-root $ROOT --device cpu --out $d/fid10k-test.json --overwrite > /dev/null 2>> $d.out; log "$d eval rc=$?"
  cp $d/fid10k-test.json $OUT/$name-seed$seed/ 2>> $d.out
}
run cond 0
log done

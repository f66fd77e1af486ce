#!/bin/bash
# Issue 40 item 4: models that generate 28 x 28 directly (`--preset fashion-mnist-28`: G from 7 x 7, D down to 7 x 7,
# attention at 14 x 14), trained on the native 28 x 28 images (no resize), the shipped recipe's 14,000 steps with
# bf16 training (`--amp auto`), scored by FID10k / KID10k at 28 x 28 against the 10,000 native test images with the
# fp32 Inception pass (Inception's own resize to 299 only). One run at a time, code frozen at the commit checked
# out in /tmp/w/frozen (src/ identical to main's when started; moved to 15db539, which adds FID's terms, while the
# first run trained, so the second run and both evaluations ran 15db539).
cd /work/main; . .venv/bin/activate
export PYTHONPATH=/tmp/w/frozen/src
export SAGAN_SHARED_DATA=$HOME/.cache/sagan-shared-data
P=$SAGAN_SHARED_DATA/inception/default_1.pt
ROOT=/tmp/w/fmroot
R=runs/q40n
OUT=docs/fashion-mnist/native-28
mkdir -p $R
log() { echo "$(date -u +%FT%TZ) $*" >> $R/queue.log; }
run() {  # name seed extra-args...
  name=$1; seed=$2; shift 2
  d=$R/$name-seed$seed
  log "$d start: $*"
  sagan train --preset fashion-mnist-28 --data-root $ROOT --seed $seed --set checkpoint_every=1000 \
    --eval-every 0 --device cpu --run-dir $d "$@" >> $d.out 2>&1; log "$d train rc=$?"
  mkdir -p $OUT/$name-seed$seed
  cp $d/config.json $d/metrics.jsonl $d/log.txt $OUT/$name-seed$seed/ 2>> $d.out
  sagan evaluate --checkpoint $d --split test --num 10000 --metrics fid,kid --inception $P \
    --data-root $ROOT --device cpu --out $d/fid10k-test.json --overwrite > /dev/null 2>> $d.out; log "$d eval rc=$?"
  cp $d/fid10k-test.json $OUT/$name-seed$seed/ 2>> $d.out
}
run uncond 0 --unconditional
run cond 0
log done

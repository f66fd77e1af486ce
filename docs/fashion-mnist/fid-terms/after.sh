#!/bin/bash
# After the 28 px queue: (1) the shipped generators' FID10k split into its mean and covariance terms (bf16 Inception,
# test split, 32 px protocol); (2) issue 35 item 5's attention benchmark cases not run before (bf16 at 64 x 64,
# fp32 and bf16 at 128 x 128). One job at a time, nothing else on the CPU.
cd /work/main; . .venv/bin/activate
export PYTHONPATH=/tmp/w/frozen/src
export SAGAN_SHARED_DATA=$HOME/.cache/sagan-shared-data
P=$SAGAN_SHARED_DATA/inception/default_1.pt
R=runs/q40n
log() { echo "$(date -u +%FT%TZ) $*" >> $R/queue.log; }
until grep -q " done$" $R/queue.log; do sleep 20; done
OUT=docs/fashion-mnist/fid-terms
for g in fashion-mnist fashion-mnist-uncond; do
  log "terms $g start"
  sagan evaluate --pretrained $g --split test --num 10000 --metrics fid --inception $P --inception-precision bf16 \
    --data-root /tmp/w/fmroot --device cpu --out $OUT/$g-fid10k-test-bf16.json --overwrite > /dev/null 2>> $R/terms.err
  log "terms $g rc=$?"
done
log "bench start"
python benchmarks/attention.py --channels 256 --batches 8 --sizes 64 --dtypes bf16 \
  --impls fast-official reference-official naive --rounds 3 --max-seconds 60 > $R/bench64bf16.md 2> $R/bench64bf16.err
log "bench64 rc=$?"
python benchmarks/attention.py --channels 256 --batches 8 --sizes 128 --dtypes fp32 bf16 \
  --impls fast-official reference-official naive --rounds 1 --repeats 1 --max-seconds 240 > $R/bench128.md 2> $R/bench128.err
log "bench128 rc=$?"
log "after done"

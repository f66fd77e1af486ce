"""FID/KID of one generator against Fashion-MNIST's test split under two real-image sizes, and the real-data floor.

    python docs/fashion-mnist/protocols.py CHECKPOINT OUT.json [--floor]

The generated images' Inception features are computed once (10,000 class-balanced samples, noise seed 0, the
`sagan evaluate` protocol) and scored against
- the 10,000 test images resized 28 -> 32 px (PIL bilinear, as training sees them; what `sagan evaluate --split
  test` reports), and
- the 10,000 test images at their native 28 x 28 (`--resolution 28`): the size papers that generate 28 x 28
  images compare at; our 32 px samples go to Inception as they are,
and with --floor also 10,000 train images (at 32 px) against the test images at 32 px: what FID10k a perfect
generator of the training distribution would get under this protocol. Real features are cached as `sagan
evaluate` caches them, so the same call of `sagan evaluate` gives the same numbers.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from sagan.distributed import DistInfo
from sagan.loading import load_generator
from sagan.metrics.evaluate import METRIC_FNS, _collect, _reference_features, count_tag, reference_key
from sagan.metrics.inception import Inception
from sagan.metrics.sources import generated_batches, real_batches


def reference(inception, split: str, resolution: int, n: int) -> dict:
    key = reference_key("fashion-mnist", split, resolution, 1, n, 0, inception.id)
    batches = real_batches("fashion-mnist", resolution, 1, n, split=split, seed=0)
    return dict(_reference_features(key, batches, inception, n, DistInfo()))


def scores(fake: dict, real: dict, tag: str) -> dict:
    return {**METRIC_FNS["fid"](fake, real, tag), **METRIC_FNS["kid"](fake, real, tag)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--floor", action="store_true", help="also 10k train images against the 10k test images")
    ap.add_argument("--num", type=int, default=10_000, help="generated and real images (10,000: the protocol)")
    args = ap.parse_args()
    t0 = time.time()
    inception = Inception("", torch.device("cpu"))
    G = load_generator(args.checkpoint)
    n, tag = args.num, count_tag(args.num)
    fake, _ = _collect(generated_batches(G, n, 50, seed=0), inception, n, "generated images", False)
    test32, test28 = reference(inception, "test", 32, n), reference(inception, "test", 28, n)
    out = {
        "checkpoint": args.checkpoint,
        "num_fake": n,
        "feature_extractor": inception.id,
        "test_32px": scores(fake, test32, tag),
        "test_native_28px": scores(fake, test28, tag),
    }
    if args.floor:
        out["floor_train_vs_test_32px"] = scores(reference(inception, "train", 32, n), test32, tag)
    out["wall_minutes"] = round((time.time() - t0) / 60, 1)
    text = json.dumps(out, indent=2)
    print(text)
    with open(args.out, "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()

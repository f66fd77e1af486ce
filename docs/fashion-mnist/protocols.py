"""FID/KID of one generator against Fashion-MNIST's test split under two real-image sizes, and the real-data floor.

    python docs/fashion-mnist/protocols.py CHECKPOINT OUT.json [--parts test32,test28,floor]

The generated images' Inception features are computed once (10,000 class-balanced samples, noise seed 0, the
`sagan evaluate` protocol) and scored against
- test32: the 10,000 test images resized 28 -> 32 px (PIL bilinear, as training sees them; what `sagan evaluate
  --split test` reports),
- test28: the 10,000 test images at their native 28 x 28 (`--resolution 28`): the size papers that generate
  28 x 28 images compare at; our 32 px samples go to Inception as they are,
- floor: 10,000 train images (at 32 px) against the test images at 32 px: what FID10k a perfect generator of
  the training distribution would get under this protocol,
in that order (`--parts`, default all three; each real set costs as much Inception time as the fakes, 14-28
minutes per 10,000 images on 2 CPU cores; `--parts floor` alone generates nothing). OUT.json is rewritten
after each part, so an interrupted call keeps what it finished. Real features are cached as `sagan evaluate`
caches them, so the same call of `sagan evaluate` gives the same numbers.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from sagan.distributed import DistInfo
from sagan.metrics.evaluate import METRIC_FNS, _collect, _reference_features, count_tag, reference_key
from sagan.metrics.inception import Inception
from sagan.metrics.sources import generated_batches, real_batches
from sagan.model_files.loading import load_generator

PARTS = ("test32", "test28", "floor")


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
    ap.add_argument("--parts", default="test32,test28,floor", help="comma-separated: test32, test28, floor")
    ap.add_argument("--num", type=int, default=10_000, help="generated and real images (10,000: the protocol)")
    args = ap.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        ap.error(f"--parts takes some of {', '.join(PARTS)}, got {args.parts!r}")
    t0 = time.time()
    inception = Inception("", torch.device("cpu"))
    G = load_generator(args.checkpoint)
    n, tag = args.num, count_tag(args.num)
    fake = None
    if {"test32", "test28"} & set(parts):  # the floor needs no generated images
        fake, _ = _collect(generated_batches(G, n, 50, seed=0), inception, n, "generated images", False)
    out = {"checkpoint": args.checkpoint, "num_fake": n if fake else 0, "feature_extractor": inception.id}
    for part in PARTS:
        if part not in parts:
            continue
        if part == "test32":
            out["test_32px"] = scores(fake, reference(inception, "test", 32, n), tag)
        elif part == "test28":
            out["test_native_28px"] = scores(fake, reference(inception, "test", 28, n), tag)
        else:
            train32 = reference(inception, "train", 32, n)
            out["floor_train_vs_test_32px"] = scores(train32, reference(inception, "test", 32, n), tag)
        out["wall_minutes"] = round((time.time() - t0) / 60, 1)
        write(out, args.out)


def write(out: dict, path: str) -> None:
    text = json.dumps(out, indent=2)
    print(text, flush=True)
    with open(path, "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()

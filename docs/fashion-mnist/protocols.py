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
- roundtrip28: the generated 32 px images resized to 28 x 28 (PIL bilinear, the data pipeline's transform)
  against the native test images: a 32 px model scored as the 28 px papers score,
- floor28: 10,000 train images against the test images, both native 28 x 28: the floor under the 28 px protocol,
- floor_roundtrip28: 10,000 train images resized 28 -> 32 -> 28 (PIL bilinear both ways) against the native test
  images: what resizing alone costs a perfect 32 px generator under the 28 px protocol,
- up32: a 28 px generator's images resized 28 -> 32 by the transform that makes the 32 px training and test
  images (`sagan.metrics.sources.resized_batches`, as `sagan evaluate --resolution 32` scores a 28 px generator)
  against the test images at 32 px: a 28 px model scored by the 32 px protocol,
in that order (`--parts`, default the first three; each real set costs as much Inception time as the fakes, 14-28
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
from sagan.metrics.sources import generated_batches, real_batches, resized_batches
from sagan.model_files.loading import load_generator

PARTS = ("test32", "test28", "floor", "roundtrip28", "floor28", "floor_roundtrip28", "up32")
FAKE_PARTS = {"test32", "test28", "roundtrip28", "up32"}


def reference(inception, split: str, resolution: int, n: int) -> dict:
    key = reference_key("fashion-mnist", split, resolution, 1, n, 0, inception.id)
    batches = real_batches("fashion-mnist", resolution, 1, n, split=split, seed=0)
    return dict(_reference_features(key, batches, inception, n, DistInfo()))


def reference_28px_from_32(inception, split: str, n: int) -> dict:
    """Features of `n` real images of `split` as training sees them (28 -> 32 px), resized back to 28 px."""
    batches = resized_batches(real_batches("fashion-mnist", 32, 1, n, split=split, seed=0), 28, 1)
    return _collect(batches, inception, n, f"{split} images 28 -> 32 -> 28", False)[0]


def scores(fake: dict, real: dict, tag: str) -> dict:
    return {**METRIC_FNS["fid"](fake, real, tag), **METRIC_FNS["kid"](fake, real, tag)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="the generator (unused, e.g. '-', when only floor parts are asked)")
    ap.add_argument("out")
    ap.add_argument("--parts", default="test32,test28,floor", help=f"comma-separated, some of: {', '.join(PARTS)}")
    ap.add_argument("--num", type=int, default=10_000, help="generated and real images (10,000: the protocol)")
    ap.add_argument("--inception-precision", default="fp32", choices=["fp32", "bf16"])
    args = ap.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        ap.error(f"--parts takes some of {', '.join(PARTS)}, got {args.parts!r}")
    t0 = time.time()
    inception = Inception("", torch.device("cpu"), precision=args.inception_precision)
    n, tag = args.num, count_tag(args.num)
    fake = fake28 = fake32 = None
    if FAKE_PARTS & set(parts):  # the floors need no generated images
        G = load_generator(args.checkpoint)
        if {"test32", "test28"} & set(parts):
            fake, _ = _collect(generated_batches(G, n, 50, seed=0), inception, n, "generated images", False)
        if "roundtrip28" in parts:
            batches = resized_batches(generated_batches(G, n, 50, seed=0), 28, 1)
            fake28, _ = _collect(batches, inception, n, "generated images 32 -> 28", False)
        if "up32" in parts:
            batches = resized_batches(generated_batches(G, n, 50, seed=0), 32, 1)
            fake32, _ = _collect(batches, inception, n, "generated images 28 -> 32", False)
    out = {
        "checkpoint": args.checkpoint,
        "num_fake": n if fake or fake28 or fake32 else 0,
        "feature_extractor": inception.id,
        "inception_precision": inception.precision,
    }
    for part in PARTS:
        if part not in parts:
            continue
        if part == "test32":
            out["test_32px"] = scores(fake, reference(inception, "test", 32, n), tag)
        elif part == "test28":
            out["test_native_28px"] = scores(fake, reference(inception, "test", 28, n), tag)
        elif part == "floor":
            train32 = reference(inception, "train", 32, n)
            out["floor_train_vs_test_32px"] = scores(train32, reference(inception, "test", 32, n), tag)
        elif part == "roundtrip28":
            out["roundtrip_32_to_28px_vs_native_test"] = scores(fake28, reference(inception, "test", 28, n), tag)
        elif part == "up32":
            out["up_28_to_32px_vs_test_32px"] = scores(fake32, reference(inception, "test", 32, n), tag)
        elif part == "floor28":
            train28 = reference(inception, "train", 28, n)
            out["floor_native_28px"] = scores(train28, reference(inception, "test", 28, n), tag)
        else:
            train_rt = reference_28px_from_32(inception, "train", n)
            out["floor_roundtrip_28_32_28px"] = scores(train_rt, reference(inception, "test", 28, n), tag)
        out["wall_minutes"] = round((time.time() - t0) / 60, 1)
        write(out, args.out)


def write(out: dict, path: str) -> None:
    text = json.dumps(out, indent=2)
    print(text, flush=True)
    with open(path, "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()

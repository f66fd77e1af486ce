"""The recipe search's table (issue 40 item 2) from the run folders beside this file.

    python docs/fashion-mnist/search-4k/table.py

One row per run: FID5k / KID5k on the train split (bf16 Inception), D's hinge loss and real-fake gap over the last
1,000 steps, and training minutes; then mean +- std per variant over its seeds.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

HERE = Path(__file__).parent


def last(rows: list[dict], key: str, since: int) -> float:
    return statistics.mean(r[key] for r in rows if r["step"] > since and key in r)


def main() -> None:
    runs = {}
    for d in sorted(p for p in HERE.iterdir() if (p / "fid5k-train-bf16.json").exists()):
        m = json.loads((d / "fid5k-train-bf16.json").read_text())["metrics"]
        rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if line.strip()]
        rows = [r for r in rows if "loss_d" in r]
        end = rows[-1]["step"]
        gap = last(rows, "d_real", end - 1000) - last(rows, "d_fake", end - 1000)
        runs[d.name] = (m["fid5k"], m["kid5k"], last(rows, "loss_d", end - 1000), gap, rows[-1]["train_minutes"])
    print("| run | FID5k (train) | KID5k | loss_D, last 1k steps | D(real) - D(fake), last 1k | train min |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (fid, kid, loss, gap, minutes) in runs.items():
        print(f"| {name} | {fid:.2f} | {kid:.4f} | {loss:.2f} | {gap:.2f} | {minutes:.1f} |")
    variants: dict[str, list[float]] = {}
    for name, row in runs.items():
        variants.setdefault(name.rsplit("-seed", 1)[0], []).append(row[0])
    print("\n| variant | seeds | FID5k mean | std |")
    print("| --- | --- | --- | --- |")
    for v, fids in variants.items():
        std = f"{statistics.stdev(fids):.2f}" if len(fids) > 1 else "-"
        print(f"| {v} | {len(fids)} | {statistics.mean(fids):.2f} | {std} |")


if __name__ == "__main__":
    main()

"""The 28 px models' table (issue 40 item 4) from the run folders beside this file, or of another folder of runs
scored the same way (e.g. docs/fashion-mnist/g8-32, whose FID10k is at 32 px).

    python docs/fashion-mnist/native-28/table.py [FOLDER]

One row per run: FID10k against the test images (fp32 Inception; at the runs' resolution) with its mean and
covariance terms, KID10k, D's hinge loss and real-fake gap over the last 4,000 steps (as round four's table),
training minutes.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).parent


def mean_since(rows: list[dict], key: str, since: int) -> float:
    return statistics.mean(r[key] for r in rows if r["step"] > since and key in r)


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    print("| run | FID10k (test) | mean term | covariance term | KID10k | loss_D, last 4k steps", end=" ")
    print("| D(real) - D(fake), last 4k steps | train min |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for d in sorted(p for p in folder.iterdir() if (p / "fid10k-test.json").exists()):
        m = json.loads((d / "fid10k-test.json").read_text())["metrics"]
        rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if line.strip()]
        rows = [r for r in rows if "loss_d" in r]
        since = rows[-1]["step"] - 4000
        gap = mean_since(rows, "d_real", since) - mean_since(rows, "d_fake", since)
        print(
            f"| {d.name} | {m['fid10k']:.2f} | {m['fid10k_mean_term']:.2f} | {m['fid10k_cov_term']:.2f} | "
            f"{m['kid10k']:.4f} ± {m['kid10k_std']:.4f} | {mean_since(rows, 'loss_d', since):.2f} | {gap:.2f} | "
            f"{rows[-1]['train_minutes']:.1f} |"
        )


if __name__ == "__main__":
    main()

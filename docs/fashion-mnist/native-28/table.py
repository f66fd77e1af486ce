"""The 28 px models' table (issue 40 item 4) from the run folders beside this file.

    python docs/fashion-mnist/native-28/table.py

One row per run: FID10k at 28 px against the native test images (fp32 Inception) with its mean and covariance
terms, KID10k, D's hinge loss and real-fake gap over steps 10,000-14,000 (as round four's table), training minutes.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

HERE = Path(__file__).parent


def mean_since(rows: list[dict], key: str, since: int) -> float:
    return statistics.mean(r[key] for r in rows if r["step"] > since and key in r)


def main() -> None:
    print("| run | FID10k (test, 28 px) | mean term | covariance term | KID10k | loss_D, 10k-14k", end=" ")
    print("| D(real) - D(fake), 10k-14k | train min |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for d in sorted(p for p in HERE.iterdir() if (p / "fid10k-test.json").exists()):
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

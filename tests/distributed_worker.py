"""Run by tests/test_distributed.py under torchrun (gloo, CPU), or as one plain process for the reference:

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/distributed_worker.py MODE OUT
    python tests/distributed_worker.py MODE OUT

MODE "train-syncbn": 3 training steps of a tiny conditional model, global batch 8, SyncBN; "d-steps": 3 D steps
with G's BatchNorm in eval mode, no SyncBN; "fid": FID/KID of a tiny generator with a cheap feature extractor.
Rank 0 writes its result (state dicts or metrics) to OUT with torch.save.
"""

import sys

import torch

from sagan import distributed as dist_utils
from sagan.config import ModelConfig, TrainConfig
from sagan.training.trainer import Trainer

MODEL = ModelConfig(
    num_classes=3, z_dim=8, g_channels=4, d_channels=4, g_attn_resolutions=(16,), d_attn_resolutions=(16,)
)
STEPS, BATCH = 3, 8


def real_batch(step: int, info) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch of real images of `step` (the same on every rank), and this rank's share of it: the
    positions [rank::world], as the InfiniteSampler deals them."""
    g = torch.Generator().manual_seed(100 + step)
    x = torch.rand(BATCH, 3, 32, 32, generator=g) * 2 - 1
    y = torch.randint(0, 3, (BATCH,), generator=g)
    return x[info.rank :: info.world_size], y[info.rank :: info.world_size]


class PlainSGD(torch.optim.SGD):
    """Stands in for Adam, whose normalisation turns rounding noise on parameters with a zero gradient (biases
    before a BatchNorm; attention's out conv while gamma is 0) into whole learning-rate steps of either sign, so
    that two correct computations of one gradient end up lr apart. SGD keeps rounding at rounding size."""

    def __init__(self, params, lr, betas=None, foreach=None):
        super().__init__(params, lr=lr, foreach=foreach)


def train(sync_bn: bool, g_steps: bool, info) -> dict:
    torch.optim.Adam = PlainSGD  # the Trainer's optimisers (see PlainSGD)
    # fp32 (not the default auto, bf16 on an AMX CPU): one process and two agree to float rounding
    cfg = TrainConfig(batch_size=BATCH, sync_bn=sync_bn, ema_start_step=1, ema_decay=0.5, seed=3, amp="none")
    t = Trainer(MODEL, cfg, torch.device("cpu"), info)
    t.wrap()
    if not g_steps:
        t.G.eval()  # G's BatchNorm from running statistics: D's inputs do not depend on how the batch is split
    for step in range(STEPS):
        x, y = real_batch(step, info)
        t.d_step(x, y)
        if g_steps:
            t.g_step()
            t.update_ema(step)
    return {k: v for k, v in t.state_dict().items() if k in ("G", "D", "G_ema")}


class PixelFeatures:
    """A cheap, deterministic stand-in for Inception: 16 fixed random projections of the 8 x 8 mean image."""

    id, precision = "pixel-features", "fp64"

    def __init__(self):
        self.w = torch.randn(3 * 64, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def features(self, batches):
        out = []
        for x in batches:
            small = torch.nn.functional.adaptive_avg_pool2d(x.double().expand(-1, 3, -1, -1), 8)
            out.append(small.flatten(1) @ self.w)
        return {"2048": torch.cat(out)}


def fid(info) -> dict:
    from sagan.metrics.evaluate import Protocol, evaluate
    from sagan.models import Generator

    torch.manual_seed(0)
    G = Generator(MODEL).eval()
    return evaluate(G, Protocol("shapes", 32, 3, ("fid", "kid"), 70, batch_size=10), PixelFeatures(), info)


def main() -> None:
    mode, out = sys.argv[1], sys.argv[2]
    info, _ = dist_utils.init("cpu")
    try:
        if mode == "train-syncbn":
            result = train(sync_bn=True, g_steps=True, info=info)
        elif mode == "d-steps":
            result = train(sync_bn=False, g_steps=False, info=info)
        else:
            result = fid(info)
        if info.is_main:
            torch.save(result, out)
    finally:
        dist_utils.shutdown()


if __name__ == "__main__":
    main()

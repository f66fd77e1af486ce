"""Process-group setup for `torchrun` launches (nccl on GPU, gloo on CPU) and small collective helpers."""

from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


STORE_TIMEOUT = datetime.timedelta(minutes=30)  # torch's default for gloo


def local_batch(batch_size: int, world_size: int) -> int:
    """Each process's share of the global batch; ValueError when it does not divide over the processes."""
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} (the global batch) does not divide over {world_size} processes")
    return batch_size // world_size


def launched_by_torchrun() -> bool:
    """True when RANK, LOCAL_RANK and WORLD_SIZE are set, as torchrun does."""
    return all(k in os.environ for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))


def device_type(name: str) -> str:
    """The kind of device ("cpu", "cuda", "mps") a --device name means here, without checking it further."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name.partition(":")[0]


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """ "auto" -> cuda:<local_rank> if available, else cpu. "cuda" under torchrun -> cuda:<local_rank>.

    Accepts auto, cpu, cuda, cuda:N and mps; anything else, or a device this machine lacks, is a ValueError.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} requested but this machine has {torch.cuda.device_count()} GPU(s)")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' requested but MPS is not available; use --device cpu")
    if name == "cuda":
        name = f"cuda:{local_rank}"
    return torch.device(name)


def init(device_name: str) -> tuple[DistInfo, torch.device]:
    """Join the process group when launched by torchrun; return rank info and this process's device."""
    if not launched_by_torchrun():
        return DistInfo(), resolve_device(device_name)
    info = DistInfo(int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]))
    device = resolve_device(device_name, info.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if info.world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        store = _restart_safe_store(info.world_size)
        if store is None:
            dist.init_process_group(backend)
        else:
            dist.init_process_group(backend, store=store, rank=info.rank, world_size=info.world_size)
    return info, device


def _restart_safe_store(world_size: int):
    """The store of torchrun's agent under a prefix of this restart (`TORCHELASTIC_RESTART_COUNT`), where torchrun
    shares its rendezvous store with the workers; None elsewhere (the default env:// store is then fine).

    torch's env:// rendezvous connects to the agent's store without a per-attempt prefix ("we create a new
    TCPStore for every retry"), but the agent keeps one store for the whole job: after `torchrun --max-restarts`
    restarts the workers, gloo finds the dead workers' addresses of the last attempt there and waits for them
    forever (seen with torch 2.14: init_process_group never returned; pytorch issue 135712 reports the same for
    nccl). Keys under a prefix per attempt keep the attempts apart. TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 (the
    agent does not share its store) avoids it too."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or "MASTER_PORT" not in os.environ:
        return None
    agent = dist.TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size, is_master=False, timeout=STORE_TIMEOUT
    )
    return dist.PrefixStore(f"sagan/attempt-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", agent)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_gather_objects(obj, info: DistInfo) -> list:
    """[obj of rank 0, obj of rank 1, ...]; just [obj] when not distributed."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True if `flag` is true on any rank (a collective: every rank must call it)."""
    if not info.enabled:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def parameter_digest(module: torch.nn.Module) -> str:
    """SHA-256 of the bytes of all parameters: equal exactly when the weights are bit-identical.

    Buffers are left out: BatchNorm running statistics are per-rank under DDP (rank 0's are saved).
    """
    h = hashlib.sha256()
    for t in module.parameters():
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()

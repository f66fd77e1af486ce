"""The real-image stream of a training run (`sagan.training.real_images`): in-memory batches equal the DataLoader's, and
`data_limit` keeps every batch within the first images."""

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from sagan.data.datasets import ImageFolderDataset, InfiniteSampler, TensorImages, first_images
from sagan.data.shapes import ShapesDataset
from sagan.distributed import DistInfo
from sagan.run_config import resolve
from sagan.training.real_images import make_loader, memory_batches


def test_memory_batches_follow_the_sampler_like_the_data_loader():
    """Training batches an in-memory set by indexing; the batches equal a DataLoader's over the same sampler
    stream (so resuming either way continues the same data order), also after a resume at `start`."""
    torch.manual_seed(0)
    ds = TensorImages(torch.randint(0, 256, (23, 1, 4, 4), dtype=torch.uint8), torch.randint(0, 10, (23,)))
    for start in (0, 17):
        fast = memory_batches(ds, InfiniteSampler(23, seed=3, start=start), 5)
        slow = iter(DataLoader(ds, batch_size=5, sampler=InfiniteSampler(23, seed=3, start=start), drop_last=True))
        for _ in range(7):  # crosses epoch boundaries
            (x, y), (x_ref, y_ref) = next(fast), next(slow)
            assert torch.equal(x, x_ref) and torch.equal(y, y_ref)
    with pytest.raises(ValueError, match="uint8"):
        TensorImages(torch.zeros(2, 1, 4, 4), torch.zeros(2))


def test_data_limit_trains_on_the_first_images_only(tmp_path):
    """`data_limit=N`: every training batch comes from the dataset's first N images, for the in-memory sets,
    shapes and image folders alike; a limit beyond the data is a clear error."""
    resolved = resolve("demo", {"device": "cpu", "batch_size": 4}, ["data_limit=6"])
    loader = make_loader(resolved, DistInfo(), torch.device("cpu"), consumed=0)
    first = ShapesDataset(32, seed=0)
    allowed = torch.stack([first[i][0] for i in range(6)])
    batches = iter(loader)
    seen = torch.cat([next(batches)[0] for _ in range(6)])  # 24 images: four passes over the 6
    assert all((allowed == x).flatten(1).all(1).any() for x in seen)  # each image is one of the first 6
    assert len({tuple(x.flatten()[:64].tolist()) for x in seen}) == 6  # and over 3+ epochs all 6 appear

    memory = TensorImages(torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).repeat(1, 1, 2, 2), torch.arange(10))
    assert first_images(memory, 3).labels.tolist() == [0, 1, 2]
    folder = tmp_path / "flat"
    folder.mkdir()
    for i in range(5):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(folder / f"{i}.png")
    limited = first_images(ImageFolderDataset(folder, 8), 2)
    assert len(limited) == 2 and torch.equal(limited[1][0], ImageFolderDataset(folder, 8)[1][0])
    with pytest.raises(ValueError, match="data_limit 11 needs a dataset of at least that many images; this one has 10"):
        first_images(memory, 11)
    with pytest.raises(ValueError, match="data_limit must be >= 0"):
        resolve("demo", {}, ["data_limit=-1"])

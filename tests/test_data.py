"""Datasets: shapes, torchvision (real Fashion-MNIST), image folders, the infinite sampler."""

import logging
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from sagan.data.datasets import ImageFolderDataset, InfiniteSampler, TensorImages, dataset_info, load_dataset


def test_sampler_resumes_exactly_and_shards_are_disjoint():
    full = InfiniteSampler(10, seed=1)
    stream = [i for i, _ in zip(full, range(35), strict=False)]
    assert sorted(stream[:10]) == list(range(10))  # each epoch is a permutation
    resumed = [i for i, _ in zip(InfiniteSampler(10, seed=1, start=13), range(22), strict=False)]
    assert resumed == stream[13:]
    r0 = [i for i, _ in zip(InfiniteSampler(10, 0, 2, seed=1), range(5), strict=False)]
    r1 = [i for i, _ in zip(InfiniteSampler(10, 1, 2, seed=1), range(5), strict=False)]
    assert not set(r0) & set(r1) and len(set(r0) | set(r1)) == 10


def test_real_fashion_mnist(fashion_mnist_root):
    ds = load_dataset("fashion-mnist", 32, 1, str(fashion_mnist_root))
    assert len(ds) == 60_000
    x, y = ds[0]
    assert x.shape == (1, 32, 32) and -1 <= x.min() < x.max() <= 1 and 0 <= y < 10
    assert y == 9  # the first training image of Fashion-MNIST is an ankle boot
    rgb = load_dataset("fashion-mnist", 32, 3, str(fashion_mnist_root))
    x3, _ = rgb[0]
    assert x3.shape == (3, 32, 32) and torch.equal(x3[0], x3[2])
    assert len(load_dataset("fashion-mnist", 32, 1, str(fashion_mnist_root), train=False)) == 10_000


def test_fashion_mnist_at_28_px_is_the_native_images(fashion_mnist_root):
    """At 28 px (the native size, `--set resolution=28`) the images are the dataset's own bytes: no resize."""
    import torchvision

    native = torchvision.datasets.FashionMNIST(str(fashion_mnist_root), train=False).data  # (10000, 28, 28) uint8
    ds = load_dataset("fashion-mnist", 28, 1, str(fashion_mnist_root), train=False)
    assert ds.images.shape == (10_000, 1, 28, 28) and torch.equal(ds.images[:, 0], native)


def test_missing_dataset_says_where(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)) as e:
        load_dataset("mnist", 32, 1, str(tmp_path))
    assert "--download" in str(e.value)


def test_colour_data_needs_three_channels():
    with pytest.raises(ValueError, match="3 image channels"):
        load_dataset("shapes", 32, 1)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset"):
        dataset_info("imagenet")


def _write_images(folder, n, size=(20, 12)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_image_folder_with_classes_and_corrupt_files(tmp_path, caplog):
    _write_images(tmp_path / "cats", 3)
    _write_images(tmp_path / "dogs", 4)
    (tmp_path / "dogs" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "dogs" / "notes.txt").write_text("ignored")
    with caplog.at_level(logging.WARNING):
        ds = ImageFolderDataset(tmp_path, resolution=8)
    assert "skipped 1 unreadable of 8" in caplog.text
    assert ds.classes == ["cats", "dogs"] and len(ds) == 7
    assert dataset_info(str(tmp_path)).num_classes == 2
    x, y = ds[6]
    assert x.shape == (3, 8, 8) and y == 1 and -1 <= x.min() and x.max() <= 1


def test_flat_image_folder_is_unconditional(tmp_path):
    _write_images(tmp_path, 3)
    ds = ImageFolderDataset(tmp_path, resolution=8, channels=1)
    assert dataset_info(str(tmp_path)).num_classes == 0
    assert ds[0][0].shape == (1, 8, 8) and ds[0][1] == 0


def test_empty_or_mostly_corrupt_folder_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no images"):
        ImageFolderDataset(tmp_path, 8)
    _write_images(tmp_path, 1)
    for i in range(3):
        (tmp_path / f"bad{i}.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(ValueError, match="3 of 4 image files .* unreadable"):
        ImageFolderDataset(tmp_path, 8)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as im:
        assert im.mode.startswith("I")  # PIL's convert("L") would clip all but the darkest pixels to white
    for channels in (1, 3):
        x, _ = ImageFolderDataset(tmp_path, resolution=16, channels=channels)[0]
        expected = torch.from_numpy(np.round(ramp / 257.0)).float() / 127.5 - 1
        torch.testing.assert_close(x[0], expected, atol=1e-5, rtol=0)


def _jpeg_bytes(size=(32, 32)):
    import io

    buf = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def test_truncated_jpeg_and_decompression_bomb_are_skipped_at_the_scan(tmp_path, caplog, monkeypatch):
    _write_images(tmp_path, 4)
    (tmp_path / "cut.jpg").write_bytes(_jpeg_bytes()[:400])  # Image.verify() accepts this file
    Image.new("L", (64, 64)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # so that 64 x 64 = 4096 pixels counts as a bomb
    with caplog.at_level(logging.WARNING):
        ds = ImageFolderDataset(tmp_path, resolution=8)
    assert len(ds) == 4 and "skipped 2 unreadable of 6" in caplog.text
    assert {p.name for p, _ in ds.samples} == {f"{i}.png" for i in range(4)}


def test_a_file_that_breaks_after_the_scan_is_skipped_with_a_count(tmp_path, caplog):
    _write_images(tmp_path, 3)
    ds = ImageFolderDataset(tmp_path, resolution=8)
    (tmp_path / "1.png").write_bytes(b"broken later")
    with caplog.at_level(logging.WARNING):
        x, _ = ds[1]
    assert torch.equal(x, ds[2][0])  # the next image stands in
    assert ds.failures == 1 and "1 skipped in this process" in caplog.text


def test_torchvision_sets_are_held_in_memory_as_the_pil_path_gives_them(fashion_mnist_root):
    """Fashion-MNIST is decoded once into one uint8 tensor; every image equals what torchvision's own dataset
    with the PIL transform (resize 28 -> 32, ToTensor, Normalize) gives, bit for bit, in 1 and 3 channels."""
    import torchvision

    from sagan.data.datasets import _transform

    for channels in (1, 3):
        ds = load_dataset("fashion-mnist", 32, channels, str(fashion_mnist_root), train=False)
        assert isinstance(ds, TensorImages) and ds.images.dtype == torch.uint8
        assert ds.images.shape == (10_000, channels, 32, 32)
        ref = torchvision.datasets.FashionMNIST(
            str(fashion_mnist_root), train=False, transform=_transform(32, channels)
        )
        for i in (0, 1, 4321, 9999):
            x, y = ds[i]
            x_ref, y_ref = ref[i]
            assert torch.equal(x, x_ref) and y == y_ref, i
        xb, yb = ds.batch([9999, 0])
        assert torch.equal(xb[0], ref[9999][0]) and yb.tolist() == [ref[9999][1], ref[0][1]]


def test_hostile_processed_file_of_a_torchvision_set_is_one_line_and_never_runs(tmp_path):
    """torchvision's MNIST classes load legacy processed/*.pt files (weights_only=True): a pickle planted there
    is refused with one line naming the folder, and its code never runs."""
    import pickle

    from sagan.errors import SaganError

    marker = tmp_path / "PWNED"

    class WritesMarker:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    processed = tmp_path / "FashionMNIST" / "processed"
    processed.mkdir(parents=True)
    for name in ("training.pt", "test.pt"):
        (processed / name).write_bytes(pickle.dumps(WritesMarker()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing printed beside the one-line error
        with pytest.raises(SaganError) as e:
            load_dataset("fashion-mnist", 32, 1, str(tmp_path))
    assert "\n" not in str(e.value) and "FashionMNIST" in str(e.value) and not marker.exists()

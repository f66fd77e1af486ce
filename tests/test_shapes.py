"""The built-in shapes dataset (`sagan.data.shapes`): deterministic, exactly mirror-symmetric, labelled by
kind."""

import pytest
import torch

from sagan.data.shapes import SHAPE_NAMES, ShapesDataset, shape_label


@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_shapes_are_deterministic_symmetric_and_labelled(resolution):
    a, b = ShapesDataset(resolution, seed=3), ShapesDataset(resolution, seed=3)
    labels = set()
    for i in range(40):
        x, y = a[i]
        assert x.shape == (3, resolution, resolution) and x.min() >= -1 and x.max() <= 1
        assert torch.equal(x, x.flip(-1))  # exactly mirror symmetric
        assert torch.equal(x, b[i][0]) and y == b[i][1]
        labels.add(y)
    assert labels == set(range(len(SHAPE_NAMES)))
    assert not torch.equal(a[0][0], ShapesDataset(resolution, seed=4)[0][0])
    assert not torch.equal(a[0][0], a[1][0])
    # The left half is not constant: there is a shape on a background.
    assert a[0][0][:, :, : resolution // 2].std() > 0.05


def test_shapes_reject_odd_resolution():
    with pytest.raises(ValueError):
        ShapesDataset(15)


def test_shapes_batches_render_like_single_images():
    ds = ShapesDataset(32, seed=5)
    idx = [7, 3, 11, 0, 42, 9]
    batch = ds.__getitems__(idx)
    for i, (x, y) in zip(idx, batch, strict=True):
        single_x, single_y = ds[i]
        assert torch.equal(x, single_x) and y == single_y
    loader = torch.utils.data.DataLoader(ds, batch_size=4, sampler=idx[:4])  # the DataLoader batches through it
    xb, yb = next(iter(loader))
    assert torch.equal(xb, torch.stack([ds[i][0] for i in idx[:4]])) and yb.tolist() == [ds[i][1] for i in idx[:4]]


def test_shape_label_is_the_rendered_label_without_rendering():
    ds = ShapesDataset(16, seed=2)
    assert [shape_label(2, i) for i in range(30)] == [ds[i][1] for i in range(30)]

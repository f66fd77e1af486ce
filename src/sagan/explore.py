"""`sagan explore`: one self-contained HTML page (no server, no network) for exploring attention maps.

The page embeds generated images and, for every attention layer of G and D, the full attention map of every
query position (float16, base64). Hovering over a pixel shows the map of the query cell under the pointer;
a click pins it. Controls pick the layer, the class and the sample. `window.sagan.state()` returns what is
shown (sample, layer, query, map) so that tests can check it against the model.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sagan.safe_files import write_text
from sagan.sampling import fixed_noise, make_labels
from sagan.visualize import generate_with_attention


def _png_data_uri(img: torch.Tensor) -> str:
    """(C, H, W) in [-1, 1] -> data:image/png;base64,..."""
    arr = img.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).squeeze(-1).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def explore_data(G, D, num: int, seed: int, batch_size: int = 16) -> dict:
    """Everything the page shows: images, classes, layers and their per-query maps (float16, base64)."""
    z = fixed_noise(num, G.cfg.z_dim, seed)
    y = make_labels(num, G.cfg.num_classes)
    samples, layers = [], None
    for i in range(0, num, batch_size):
        yb = None if y is None else y[i : i + batch_size]
        x, maps = generate_with_attention(G, D, z[i : i + batch_size], yb)
        if layers is None:
            layers = [
                {
                    "name": n,
                    "gamma": g,
                    "grid": list(m.shape[1:3]),
                    "keys": list(m.shape[3:5]),
                    "model": "G" if n.startswith("g") else "D",
                }
                for n, (m, g) in maps.items()
            ]
        for b in range(x.shape[0]):
            encoded = {
                n: base64.b64encode(m[b].numpy().astype(np.float16).tobytes()).decode() for n, (m, _) in maps.items()
            }  # (H, W, Hk, Wk) row-major
            samples.append({"image": _png_data_uri(x[b]), "label": None if yb is None else int(yb[b]), "maps": encoded})
    return {
        "resolution": G.cfg.resolution,
        "num_classes": G.cfg.num_classes,
        "layers": layers,
        "samples": samples,
        "seed": seed,
    }


def write_explorer(data: dict, out: str | Path, overwrite: bool = False) -> Path:
    """Write the page (atomically; an existing file only with `overwrite`)."""
    template = (Path(__file__).parent / "explorer.html").read_text()
    return write_text(out, template.replace("/*DATA*/null", json.dumps(data)), overwrite)

"""Matplotlib figures without pyplot's global state: each figure has its own Agg canvas (no `matplotlib.use`, no
backend switch in the user's process), and PNGs are written atomically with a "Software: sagan" text chunk, so
that a command may replace a figure it made earlier and never one it did not."""

from __future__ import annotations

from pathlib import Path

SOFTWARE = "sagan"


def new_figure(rows: int = 1, cols: int = 1, figsize: tuple[float, float] = (6.4, 4.8), squeeze: bool = True):
    """(figure, axes) as `pyplot.subplots` gives them, on a figure of its own with an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=squeeze)


def made_by_sagan(path: Path) -> bool:
    """True for a PNG that this module wrote (its "Software" text chunk says sagan)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.format == "PNG" and img.info.get("Software") == SOFTWARE
    except (OSError, UnidentifiedImageError):
        return False


def save_png(fig, out: str | Path, overwrite: bool = False, dpi: int = 100, only_our_own: bool = False) -> Path:
    """Write `fig` to `out` as PNG atomically (sagan.safe_files.atomic_output); an existing `out` is replaced only with
    `overwrite`, and with `only_our_own` (a default file name the user did not ask for) only if sagan made it."""
    from sagan.safe_files import atomic_output

    with atomic_output(out, overwrite, may_replace=made_by_sagan if only_our_own else None) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", metadata={"Software": SOFTWARE})
    return Path(out).expanduser()

"""Ablation grids: the paper's claims measured with one command each (`sagan ablate GRID`).

- `grids`: the grid definitions, as data;
- `runner`: training, resuming and evaluating a grid's runs;
- `summary`: the tables, significance tests and figures.
"""

from sagan.ablation.grids import GRIDS, Grid
from sagan.ablation.runner import run_grid
from sagan.ablation.summary import welch_significant

__all__ = ["GRIDS", "Grid", "run_grid", "welch_significant"]

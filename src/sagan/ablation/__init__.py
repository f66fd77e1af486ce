"""Ablation grids: the paper's claims measured with one command each (`sagan ablate GRID`).

- `grids`: the grid definitions, as data;
- `runner`: training, resuming and evaluating a grid's runs;
- `summary`: the tables and figures;
- `stats`: Welch's t-test with its p-value.
"""

from sagan.ablation.grids import GRIDS, Grid
from sagan.ablation.runner import run_grid
from sagan.ablation.stats import welch_significant, welch_test

__all__ = ["GRIDS", "Grid", "run_grid", "welch_significant", "welch_test"]

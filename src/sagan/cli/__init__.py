"""The `sagan` command line, one module per group of commands:

- `training`: train
- `sampling`: sample, interpolate, export
- `evaluation`: evaluate
- `views`: attention, explore
- `experiments`: info, plot, ablate

`app` holds the group and its one-line errors, `options` what several commands share.
"""

from sagan.cli.app import USER_ERRORS, main
from sagan.cli.evaluation import evaluate
from sagan.cli.experiments import ablate, info, plot
from sagan.cli.sampling import export, interpolate, sample
from sagan.cli.training import train
from sagan.cli.views import attention, explore

for _command in (info, train, sample, interpolate, evaluate, attention, explore, plot, ablate, export):
    main.add_command(_command)

__all__ = ["USER_ERRORS", "main"]

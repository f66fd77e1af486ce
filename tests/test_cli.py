"""The `sagan` command line: its commands and their options (a snapshot of the interface as it was before the
commands were split into modules, so a move or refactor cannot change what users type), and `info`."""

import json

import click
import pytest
from click.testing import CliRunner

from sagan.cli import main
from sagan.config import PRESETS


def test_help_lists_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "info" in result.output


def test_info_prints_config_and_parameter_counts():
    for preset, resolution in [("demo", 32), ("imagenet64", 64), ("imagenet128-official", 128)]:
        result = CliRunner().invoke(main, ["info", "--preset", preset])
        assert result.exit_code == 0, result.output
        config = json.loads(result.output[: result.output.rindex("}") + 1])
        assert config["model"]["resolution"] == resolution
        assert "G: " in result.output and "D: " in result.output and "parameters" in result.output


@pytest.mark.parametrize(
    "preset,g_millions,d_millions",
    [
        ("fashion-mnist-cpu", "0.93M", "0.66M"),
        ("fashion-mnist-28", "0.91M", "0.44M"),
        ("fashion-mnist-g28", "0.91M", "0.66M"),
        ("fashion-mnist", "1.24M", "1.07M"),
        ("cifar10", "4.39M", "1.08M"),
    ],
)
def test_info_prints_the_parameter_counts_the_readme_gives(preset, g_millions, d_millions):
    """`sagan info` counts G's and D's parameters as built from the preset (its data's classes and channels), and
    those are the counts the README's preset table states."""
    import re
    from pathlib import Path

    result = CliRunner().invoke(main, ["info", "--preset", preset])
    assert result.exit_code == 0, result.output
    counts = {k: int(v.replace(",", "")) for k, v in re.findall(r"^([GD]): ([\d,]+) parameters", result.output, re.M)}
    assert f"{counts['G'] / 1e6:.2f}M" == g_millions and f"{counts['D'] / 1e6:.2f}M" == d_millions, counts
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `") and f"`{preset}`" in line)
    assert g_millions in row and d_millions in row


def test_info_unknown_preset_is_a_one_line_error():
    result = CliRunner().invoke(main, ["info", "--preset", "nope"])
    assert result.exit_code == 2
    assert "Invalid value for '--preset'" in result.output and "Traceback" not in result.output


def _describe(param: click.Parameter) -> str:
    """One line per option or argument: its names, type (choices, range bounds), default and flags."""
    kind = param.type
    if isinstance(kind, click.Choice):
        text = "choice:" + "|".join(kind.choices)
    elif isinstance(kind, click.IntRange | click.FloatRange):
        text = f"{kind.name}:{kind.min}..{kind.max}"
    else:
        text = kind.name
    # The default as click resolves it (newer clicks keep an UNSET sentinel in param.default): "-" where there is
    # none, a plain value otherwise, so the snapshot reads the same under click 8.1 to 8.5 (each tried).
    default = param.get_default(click.Context(click.Command("snapshot")), call=False)
    default = default if isinstance(default, int | float | str | type(None)) else "-"
    if default in (None, ()) and (param.required or getattr(param, "multiple", False)):
        default = "-"  # no default: click 8.1/8.2 say None there, later ones a sentinel or ()
    flags = [
        name
        for name, on in (
            ("required", param.required),
            ("multiple", getattr(param, "multiple", False)),
            ("flag", getattr(param, "is_flag", False)),
        )
        if on
    ]
    return " ".join(["/".join(param.opts), text, f"default={default!r}", *flags])


# Written from the single-module CLI of 748f798 (before the split into sagan/cli/): the interface users rely on.
PRESET_OPTION = "--preset choice:" + "|".join(PRESETS) + " default='demo'"  # presets come and go
EXPECTED = {
    "ablate": [
        "grid choice:attention|sn-ttur|diffaugment|fm-attention default='-' required",
        "--outdir text default=None",
        "--seeds text default='0,1,2'",
        "--device text default='auto'",
        "--sym-num integer range:2..None default=1000",
        "--fid-num integer range:0..None default=500",
        "--inception text default=''",
        "--set text default='-' multiple",
    ],
    "attention": [
        "--checkpoint text default=None",
        "--pretrained text default=None",
        "--out text default='-' required",
        "--num integer range:1..16 default=4",
        "--seed integer range:0..9223372036854775807 default=0",
        "--class integer default=None",
        "--layer text default=None",
        "--d-layer text default=None",
        "--queries text default=None",
        "--device text default='auto'",
        "--overwrite boolean default=False flag",
    ],
    "evaluate": [
        "--checkpoint text default=None",
        "--pretrained text default=None",
        "--fake text default=None",
        "--data text default=None",
        "--data-root text default=''",
        "--split choice:train|test default='train'",
        "--num integer range:2..None default=10000",
        "--num-real integer range:2..None default=None",
        "--metrics text default='fid,kid'",
        "--inception text default=''",
        "--inception-precision choice:fp32|bf16 default='fp32'",  # added by issue 35 (bf16 Inception)
        "--resolution integer range:1..None default=None",
        "--seed integer range:0..9223372036854775807 default=0",
        "--device text default='auto'",
        "--out text default=None",
        "--ref-stats text default=None",
        "--save-ref-stats text default=None",
        "--overwrite boolean default=False flag",
    ],
    "explore": [
        "--checkpoint text default=None",
        "--pretrained text default=None",
        "--out text default='attention.html'",
        "--num integer range:1..256 default=16",
        "--seed integer range:0..9223372036854775807 default=0",
        "--device text default='auto'",
        "--overwrite boolean default=False flag",
    ],
    "export": [
        "--checkpoint text default='-' required",
        "--out text default='-' required",
        "--format choice:safetensors|pretrained default='safetensors'",
        "--no-discriminator boolean default=False flag",
        "--overwrite boolean default=False flag",
    ],
    "info": [
        PRESET_OPTION,
    ],
    "interpolate": [
        "--checkpoint text default=None",
        "--pretrained text default=None",
        "--out text default='-' required",
        "--mode choice:z|class default='z'",
        "--steps integer range:2..None default=8",
        "--rows integer range:1..None default=4",
        "--classes text default='0,1'",
        "--seed integer range:0..9223372036854775807 default=0",
        "--truncation float range:0..None default=None",
        "--device text default='auto'",
        "--overwrite boolean default=False flag",
    ],
    "plot": [
        "run_dirs directory default='-' required",
        "--out text default=None",
        "--metric text default='fid'",
        "--overwrite boolean default=False flag",
    ],
    "sample": [
        "--checkpoint text default=None",
        "--pretrained text default=None",
        "--num integer range:1..None default=64",
        "--out text default='-' required",
        "--class integer default=None",
        "--seed integer range:0..9223372036854775807 default=0",
        "--device text default='auto'",
        "--batch-size integer range:1..None default=64",
        "--truncation float range:0..None default=None",
        "--overwrite boolean default=False flag",
    ],
    "train": [
        PRESET_OPTION,
        "--data text default=None",
        "--data-root text default=None",
        "--download boolean default=False flag",
        "--channels choice:1|3 default=None",
        "--unconditional boolean default=False flag",
        "--outdir text default=None",
        "--steps integer default=None",
        "--batch-size integer default=None",
        "--seed integer default=None",
        "--device text default=None",
        "--amp choice:none|bf16|fp16|auto default=None",
        "--resume text default=None",
        "--run-dir text default=None",  # added by issue 37 (start, continue or skip a run in one folder)
        "--force boolean default=False flag",
        "--eval-every integer default=None",
        "--eval-num integer default=None",
        "--inception text default=None",
        "--set text default='-' multiple",
        "--dry-run boolean default=False flag",
    ],
}


def test_commands_and_options_are_unchanged():
    assert sorted(main.commands) == sorted(EXPECTED)
    for name, expected in EXPECTED.items():
        assert [_describe(p) for p in main.commands[name].params] == expected, name


def test_every_command_has_help_text():
    for name, command in main.commands.items():
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert command.help and all(p.help for p in command.params if isinstance(p, click.Option)), name

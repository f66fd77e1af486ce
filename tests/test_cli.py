"""The `sagan` command line."""

import json

from click.testing import CliRunner

from sagan.cli import main


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


def test_info_unknown_preset_is_a_one_line_error():
    result = CliRunner().invoke(main, ["info", "--preset", "nope"])
    assert result.exit_code == 2
    assert "Invalid value for '--preset'" in result.output and "Traceback" not in result.output

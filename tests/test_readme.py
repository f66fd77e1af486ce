"""The README's Python section runs as it is written: every ```python block under "## Python", in order, in one
namespace, in a fresh working folder."""

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def python_section_blocks() -> list[str]:
    text = README.read_text()
    start = text.index("\n## Python\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end > 0 else len(text)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_python_section_runs(tmp_path, monkeypatch):
    blocks = python_section_blocks()
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102  (our own README)
    assert any(tmp_path.iterdir())  # the snippets wrote what they say they write


def test_readme_code_map_names_every_module():
    """The README's map of the code ("## The code") names every module of src/sagan, so a newcomer finds each file
    there and a new module cannot be left out."""
    text = README.read_text()
    start = text.index("\n## The code\n")
    section = text[start : text.find("\n## ", start + 1)]
    src = README.parent / "src" / "sagan"
    missing = []
    for path in src.rglob("*.py"):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        rel = path.relative_to(src)
        named = f"`{path.name}`" in section or f"`{rel.as_posix()}`" in section or f"`{path.stem}`" in section
        if not named:
            missing.append(rel.as_posix())
    assert not missing, f"not in the README's code map: {missing}"


def shell_commands() -> list[str]:
    """Every command of the README's ```bash blocks: continuation lines joined, comments dropped, `a && b` split."""
    text = README.read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()  # a comment after the command
            if line and not line.startswith("#"):
                commands += [c.strip() for c in line.split("&&")]
    return commands


def _sagan_args(command: str) -> list[str] | None:
    """The arguments of the `sagan` command inside a README command (plain, under torchrun, or Slurm's --wrap)."""
    import shlex

    wrapped = re.search(r'--wrap "([^"]+)"', command)
    command = wrapped.group(1) if wrapped else command.replace("$(which sagan)", "sagan")
    tokens = shlex.split(command)
    return tokens[tokens.index("sagan") + 1 :] if "sagan" in tokens else None


def test_every_readme_command_parses():
    """Every `sagan` command the README shows exists with the options it is given (each run with --help, which
    click reaches only after parsing the options before it; `--set KEY=VALUE` items name real config fields), and
    every benchmark script's options are ones it defines. The others (pip, pytest, tensorboard) are left out."""
    from click.testing import CliRunner

    from sagan.cli import main
    from sagan.run_config import parse_set

    checked = 0
    for command in shell_commands():
        args = _sagan_args(command)
        if args is not None:
            result = CliRunner().invoke(main, [*args, "--help"])
            assert result.exit_code == 0, f"{command}\n{result.output}"
            for i, token in enumerate(args):
                if token == "--set":
                    parse_set(args[i + 1])
            checked += 1
        elif command.startswith("python benchmarks/"):
            script, *options = command.split()[1:]
            source = (README.parent / script).read_text()
            for option in (o for o in options if o.startswith("--")):
                assert f'"{option}"' in source, f"{script} has no option {option}"
            checked += 1
    assert checked >= 25


def test_readme_counts_the_bad_input_cases():
    """The README's count of the bad-input table is the table's size."""
    from tests.test_errors import CASES

    assert f"a table of {len(CASES)} bad inputs" in README.read_text()

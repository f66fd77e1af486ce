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

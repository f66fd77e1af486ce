"""The `sagan` group and its error handling: user errors anywhere below a command end as one line.

Errors meant for users (the project's `SaganError`, `ValueError` from config checks, any `OSError`: a file that
cannot be read or written, and running out of memory) end as one line `Error: ...` on stderr and exit status 1,
wherever they are raised; `--debug` or SAGAN_DEBUG=1 shows the traceback instead.
"""

from __future__ import annotations

import os

import click

from sagan.errors import SaganError

USER_ERRORS = (SaganError, ValueError, OSError)


def _debug(ctx: click.Context) -> bool:
    return bool(ctx.find_root().params.get("debug")) or os.environ.get("SAGAN_DEBUG", "") not in ("", "0")


class _Group(click.Group):
    """Turns user errors raised anywhere below a command into one line `Error: <message>` and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as e:
            if _debug(ctx) or not (isinstance(e, USER_ERRORS) or _out_of_memory(e)):
                raise  # a bug: the traceback is what a report needs
            message = " ".join(str(e).split()) or type(e).__name__  # one line
            if _out_of_memory(e):
                message = f"out of memory; lower --batch-size or --num (or use --amp bf16 on a GPU): {message[:200]}"
            filename = getattr(e, "filename", None)
            if filename and str(filename) not in message:
                message += f": {filename}"
            raise click.ClickException(message) from None


def _out_of_memory(e: BaseException) -> bool:
    """CUDA's OutOfMemoryError, Python's MemoryError, and the CPU allocator's RuntimeError (torch raises that
    for a tensor it cannot allocate: "DefaultCPUAllocator: can't allocate memory")."""
    if type(e).__name__ == "OutOfMemoryError" or isinstance(e, MemoryError):  # without importing torch here
        return True
    return isinstance(e, RuntimeError) and any(
        s in str(e) for s in ("DefaultCPUAllocator: can't allocate memory", "not enough memory")
    )


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="sagan")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors (also: SAGAN_DEBUG=1).")
def main(debug: bool) -> None:
    """SAGAN: Self-Attention Generative Adversarial Networks in PyTorch.

    Start with `sagan train` (the demo preset: built-in shapes data, 32 px, about 5 minutes on 2 CPU cores).
    """

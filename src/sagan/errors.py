"""The errors meant for users. The CLI prints them (and ValueError, OSError, out-of-memory) as one line
`Error: ...` with exit status 1; `--debug` or SAGAN_DEBUG=1 shows the traceback instead."""

import pickle

# What torch.load(weights_only=True) raises on a file that is not a torch file, is cut short, or holds a pickle
# that wants to run code (its zip reader's RuntimeError, the unpickler's errors, end of file).
TORCH_LOAD_ERRORS = (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError, KeyError, TypeError)


class SaganError(Exception):
    """An error the user can act on (bad input, unusable file, diverged run); the CLI prints it as one line."""


class DivergedError(SaganError):
    """Training produced non-finite losses or weights, or losses that kept exploding."""


def first_line(e: BaseException) -> str:
    """`Type: first line of the message` (at most 200 characters of it), for one-line errors that wrap another."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:200]}" if lines else type(e).__name__

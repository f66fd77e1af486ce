"""The errors meant for users. The CLI prints them (and ValueError, OSError, out-of-memory) as one line
`Error: ...` with exit status 1; `--debug` or SAGAN_DEBUG=1 shows the traceback instead."""


class SaganError(Exception):
    """An error the user can act on (bad input, unusable file, diverged run); the CLI prints it as one line."""


class DivergedError(SaganError):
    """Training produced non-finite losses or weights, or losses that kept exploding."""

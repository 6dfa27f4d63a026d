"""The one exception of analysis/: bad input from the user, naming the option at fault."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from the user; names the option at fault and what was expected (the CLI exits 2)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option

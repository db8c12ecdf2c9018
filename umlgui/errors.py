"""Errors a user sees: each names the problem and, where there is one, the fix."""


class UmlguiError(Exception):
    """A problem the user can act on.

    `problem` says what went wrong, `fix` says what to do about it. str() joins them, so
    the CLI and the GUI show the same text.
    """

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem}\n  fix: {fix}")


class ConfigError(UmlguiError):
    """A machine, lab or template definition is invalid."""


class NotFoundError(UmlguiError):
    """A named machine, file, template or binary does not exist."""


class StateError(UmlguiError):
    """The action does not fit the machine's state (e.g. removing a running machine)."""

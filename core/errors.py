"""Errors whose message is shown to the user as-is: one line naming the problem."""


class RiskdeskError(Exception):
    """A problem with the user's input or request; the message is one line for the user."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class NotFound(RiskdeskError):
    """The named dataset, model, transaction or user does not exist (HTTP 404)."""


class WorkspaceBusy(RiskdeskError):
    """Another process holds the workspace's database (the command line then goes through the
    server: core.localserver)."""

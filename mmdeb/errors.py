"""The one exception type for anything the user can fix."""


class MmdebError(Exception):
    """A failure with a one-line explanation and the remedy."""

    def __init__(self, message: str, remedy: str = ""):
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        return f"{self.message}. Fix: {self.remedy}" if self.remedy else self.message

"""The one error a job spec can raise."""

from __future__ import annotations


class JobSpecError(ValueError):
    """A job spec is invalid; ``path`` locates the field, ``message`` says why."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}

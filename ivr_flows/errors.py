"""The flow layer's errors; they derive from the one root, :class:`dialtone_errors.DialtoneError`."""

from __future__ import annotations

from dialtone_errors import DialtoneError


class FlowError(DialtoneError):
    """Anything that went wrong with an IVR flow."""


class FlowValidationError(FlowError):
    """A flow file with problems; ``problems`` lists every one (file, line, node, message)."""

    def __init__(self, problems: list[FlowProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class FlowProblem:
    """One problem in a flow file, located by file, line and node."""

    __slots__ = ("file", "line", "message", "node")

    def __init__(self, file: str, line: int | None, node: str | None, message: str) -> None:
        self.file = file
        self.line = line
        self.node = node
        self.message = message

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        node = f" [node {self.node}]" if self.node else ""
        return f"{where}{node}: {self.message}"

    def __repr__(self) -> str:
        return f"FlowProblem({self.file!r}, {self.line!r}, {self.node!r}, {self.message!r})"

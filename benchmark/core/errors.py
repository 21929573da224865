"""Error types and the exit codes they map to (DESIGN.md: 0 ok, 1 samples failed, 2 bad input)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_SAMPLES_FAILED = 1
EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """Bad usage or bad input, found before or outside any sample (a task file, a model argument, a
    dataset folder): `wmbench.evaluate` raises it and the CLI exits 2 with its text."""


class SpecError(BadInput):
    """A YAML file (task spec or model card) is malformed; the message names the file and the field."""

    def __init__(self, path: object, field: str | None, message: str):
        self.path = str(path)
        self.field = field
        where = f"{self.path}: field '{field}'" if field else self.path
        super().__init__(f"{where}: {message}")


class SampleError(Exception):
    """One sample cannot be evaluated (missing frame, corrupt image, bad model output).

    The runner records the sample as failed with this text and goes on.
    """

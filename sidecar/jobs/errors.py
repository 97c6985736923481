"""The jobs API's errors: a status, the field at fault and why, in the engines' error format."""

from __future__ import annotations

from pydantic import ValidationError


class JobError(Exception):
    """A request the jobs API refuses. ``field`` names the spec key (``queries.path``), or the
    line of an uploaded file (``queries[line 3]``)."""

    status = 400
    kind = "illegal_argument_exception"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"[{field}] {reason}" if field else reason)
        self.field = field
        self.reason = reason


class JobNotFound(JobError):
    status = 404
    kind = "resource_not_found_exception"


class JobConflict(JobError):
    status = 409
    kind = "status_exception"


class JobForbidden(JobError):
    status = 403
    kind = "security_exception"


def from_validation(exc: ValidationError, prefix: str = "") -> JobError:
    """The first error of a pydantic validation as a JobError naming its key path."""
    first = exc.errors()[0]
    path = ".".join(str(part) for part in first["loc"])
    where = ".".join(part for part in (prefix, path) if part)
    reason = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    return JobError(where, reason)

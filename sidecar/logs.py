"""Log lines that a request cannot forge.

Messages often carry values from requests (field names, index names, reasons from workers);
one holding a newline could start a line that looks like the sidecar's own. Every message is
written with its control characters escaped (``\\n`` as ``\\\\n``, others as ``\\\\xNN``), by
the formatter of every handler the sidecar's and the workers' commands install. Tracebacks keep
their lines: they come from the code, not from callers.
"""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
_ESCAPES.update({0x2028: "\\u2028", 0x2029: "\\u2029", 0x85: "\\x85"})


def escape(text: str) -> str:
    """``text`` with every control character (and Unicode line separator) escaped."""
    return text.translate(_ESCAPES)


class EscapingFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        original = record.message
        record.message = escape(original)
        try:
            return super().formatMessage(record)
        finally:
            record.message = original


def use_escaping_formatter(logger: logging.Logger, fmt: str = FORMAT) -> None:
    """Give every handler of ``logger`` the escaping formatter."""
    for handler in logger.handlers:
        handler.setFormatter(EscapingFormatter(fmt))


def configure_logging(level: int | str = logging.INFO) -> None:
    """Root logging on stderr, every message escaped."""
    logging.basicConfig(level=level, format=FORMAT)
    use_escaping_formatter(logging.getLogger())


__all__ = ["EscapingFormatter", "configure_logging", "escape", "use_escaping_formatter"]

"""Log lines cannot be forged through values that come from requests."""

from __future__ import annotations

import io
import logging

from sidecar.logs import EscapingFormatter, escape


def test_control_characters_and_line_separators_are_escaped() -> None:
    assert escape("a\nb\rc\td\x00e\x1b[31m\u2028") == "a\\nb\\rc\\td\\x00e\\x1b[31m\\u2028"
    assert escape("Schuhe für Läufer") == "Schuhe für Läufer"


def test_a_field_name_with_a_newline_stays_on_one_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(EscapingFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("test_logs.forgery")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("unknown fields: %s", "x\nERROR forged line")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue() == "WARNING unknown fields: x\\nERROR forged line\n"

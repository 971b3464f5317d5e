"""Table cells a spreadsheet will not run: OWASP's CSV-injection rule for every table the
app shows with a "Download as CSV" button (Streamlit's dataframe toolbar exports the cells
as shown).

A text cell that starts with =, +, -, @, a tab or a carriage return (or their full-width
forms, which some spreadsheets fold) gets a leading apostrophe, so Excel, LibreOffice and
Google Sheets read it as text; numbers and other cells are left as they are.
See https://owasp.org/www-community/attacks/CSV_Injection
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def formula_safe(value: Any) -> Any:
    """`value` with a leading apostrophe when it is text a spreadsheet would run."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def safe_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every cell (and column name) of a table passed through formula_safe."""
    return [{formula_safe(k): formula_safe(v) for k, v in row.items()} for row in rows]

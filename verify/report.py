"""Plain Markdown rendering: the one table writer and the text escaper.

Every Markdown table of the package comes from ``markdown_table``: the claims table (``verify.claims.to_markdown``),
the run summaries (``verify.summary.runs_table``), the demo report and the book's pages. Cells are ``str()``-ed with
``|`` escaped and line breaks flattened; free text that may hold Markdown syntax (``k*``, ``$``) goes through
``escape_markdown`` first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["escape_markdown", "markdown_table"]


def escape_markdown(text: Any) -> str:
    """Plain text safe inside Markdown: ``*``, ``_``, ``$``, backticks, ``<`` and ``[`` are escaped (``k* ≤ 3 …
    k*`` must not turn into emphasis, a ``$`` must not open math)."""
    out = str(text)
    for ch in ("\\", "*", "_", "$", "`", "<", "["):
        out = out.replace(ch, "\\" + ch)
    return out


def _cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (no trailing newline); cells are ``str()``-ed with ``|`` escaped and newlines flattened
    (escape free text with ``escape_markdown`` first)."""
    out = ["| " + " | ".join(map(_cell, header)) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(map(_cell, r)) + " |" for r in rows]
    return "\n".join(out)

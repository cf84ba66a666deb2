"""Plain-text tables for the command line and the demo (no dependencies)."""

from __future__ import annotations

from collections.abc import Sequence


def print_table(rows: list[dict], columns: Sequence[str]) -> None:
    """Print ``rows`` as a plain-text table of ``columns`` (floats with 4 significant digits)."""

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
        return "" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [
        max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
        for i, c in enumerate(columns)
    ]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))

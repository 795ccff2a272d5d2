"""Long names in narrow columns: file names and paths that wrap instead of widening a dock."""

from __future__ import annotations

import re

#: a zero-width space: a place a line may break, drawn as nothing
BREAK = "\u200b"

_AFTER = re.compile(r"([_\-./\\])")


def breakable(text: str) -> str:
    """``text`` with a line-break opportunity after each ``_ - . / \\``.

    A word-wrapped label breaks only at spaces, so a long file name or path sets its
    minimum width, and a dock column grows to fit it. For shown text only: text copied
    from a label carries the invisible breaks (keep the real text in a tooltip).
    """
    return _AFTER.sub(lambda m: m.group(1) + BREAK, text)

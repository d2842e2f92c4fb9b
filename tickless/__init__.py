"""tickless: the pieces both tools stand on (configuration toolkit, clock).

``scheduler`` and ``catalog`` each import from here and never from each
other, so either can be used, tested and read without the other.
"""

from __future__ import annotations

__version__ = "0.1.0"

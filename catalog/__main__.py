"""``python -m catalog``: the same command line as the ``catalog`` console script."""

from __future__ import annotations

from catalog.cli import main

raise SystemExit(main())

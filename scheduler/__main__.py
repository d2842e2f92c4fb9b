"""`python -m scheduler`: the same command line as the `scheduler` console script."""

from __future__ import annotations

from scheduler.cli import main

raise SystemExit(main())

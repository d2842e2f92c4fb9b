from __future__ import annotations

from catalog.cli import main

raise SystemExit(main())

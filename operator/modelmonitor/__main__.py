"""Allow ``python -m modelmonitor``."""

from modelmonitor.edge.cli import main

raise SystemExit(main())

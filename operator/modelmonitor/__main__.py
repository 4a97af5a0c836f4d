"""Allow ``python -m modelmonitor``."""

from modelmonitor.cli import main

raise SystemExit(main())

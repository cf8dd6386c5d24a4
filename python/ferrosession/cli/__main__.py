"""``python -m ferrosession.cli``."""

from ferrosession.cli import main

raise SystemExit(main())

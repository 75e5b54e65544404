"""``python -m claimsengine``: the same as the ``claimsengine`` command."""

from claimsengine.adapters.cli import main

raise SystemExit(main())

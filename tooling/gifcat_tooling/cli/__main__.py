"""`python -m gifcat_tooling.cli`: the `gifcat` command."""

from gifcat_tooling.cli import main

raise SystemExit(main())

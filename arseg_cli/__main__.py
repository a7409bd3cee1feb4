"""`python -m arseg_cli` runs the `arseg` command line."""

from arseg_cli.cli import main

raise SystemExit(main())

"""`python -m datahub.cli`: the `datahub` command, for processes started without the script."""

import sys

from datahub.cli import main

sys.exit(main())

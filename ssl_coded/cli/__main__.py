"""`python -m ssl_coded.cli ...`, as the `ssl-coded` command."""

import sys

from ssl_coded.cli import main

sys.exit(main())

"""Run the `asgi-matomo` command as `python -m asgi_matomo`."""

import sys

from asgi_matomo.cli import main

sys.exit(main())

"""The bundle's entry point: the same ``slidescope`` command as a pip install."""

from __future__ import annotations

import multiprocessing
import sys

if __name__ == "__main__":
    # batch runs start worker processes; a frozen program must say so before anything else
    multiprocessing.freeze_support()
    from slidescope.app.cli import main

    sys.exit(main())

import sys

from slidescope.app.cli import main

sys.exit(main())

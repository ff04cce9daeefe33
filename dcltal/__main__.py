import sys

from dcltal.cli import main

sys.exit(main())

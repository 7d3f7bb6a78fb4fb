import sys

from akorn.cli import main

sys.exit(main())

import sys

from akorn.cli.main import main

sys.exit(main())

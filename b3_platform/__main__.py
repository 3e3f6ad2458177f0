import sys

from b3_platform.cli import main

sys.exit(main())

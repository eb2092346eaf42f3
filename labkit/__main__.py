"""``python -m labkit``."""
import sys

from labkit.studies.cli import main

sys.exit(main())

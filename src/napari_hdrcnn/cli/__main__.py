"""`python -m napari_hdrcnn.cli` is `hdrcnn`."""

import sys

from . import main

sys.exit(main())

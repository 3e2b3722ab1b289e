"""`python -m atp_ops.portforward` (from tools/): the same CLI as bin/atp-portforward."""

import sys

from .cli import main

sys.exit(main())

"""``python -m mailsrv.cli``: the ``mailsrv`` command without the console script."""

import sys

from mailsrv.cli.main import main

sys.exit(main())

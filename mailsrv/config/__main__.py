"""``python -m mailsrv.config``: print the documented configuration file (``etc/mailsrv.toml``)."""

import sys

from mailsrv.config.example import render

sys.stdout.write(render())

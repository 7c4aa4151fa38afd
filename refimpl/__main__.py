"""``python -m refimpl``: Ctrl-C at any moment, even while the package and
numba are still being imported, is one line and exit status 130."""
import sys

try:
    from .cli import main
    status = main()
except KeyboardInterrupt:
    print("refimpl: interrupted", file=sys.stderr)
    status = 130
sys.exit(status)

"""``python -m refimpl``: Ctrl-C at any moment, even while the package and
numba are still being imported, is one line and exit status 130."""
import sys

try:
    from .cli import main
    status = main()
except KeyboardInterrupt:
    print("refimpl: interrupted", file=sys.stderr)
    status = 130
if status == 130:
    # A KeyboardInterrupt that ended inside a string exec/eval (namedtuple,
    # dataclasses and numba build code that way, also during import) sets
    # CPython's "unhandled interrupt" flag even though it was caught; under
    # ``-m`` Py_RunMain then exits by SIGINT instead of with this status
    # (Modules/main.c, run_eval_code_obj in Python/pythonrun.c). Every string
    # eval clears the flag first, so this one leaves the status as given.
    eval("None")
sys.exit(status)

"""``python -m refimpl``: Ctrl-C at any moment, even while the package and
numba are still being imported, is one line and exit status 130; once the
command has finished, a Ctrl-C while the interpreter shuts down is ignored."""

import signal
import sys

try:
    from .cli import main

    status = main()
except KeyboardInterrupt:
    print("refimpl: interrupted", file=sys.stderr)
    status = 130
# The command is over: a Ctrl-C now would only interrupt the joining of
# joblib's threads at exit and print an "Exception ignored" traceback.
signal.signal(signal.SIGINT, signal.SIG_IGN)
if status == 130:
    # A KeyboardInterrupt that ended inside a string exec/eval (namedtuple,
    # dataclasses and numba build code that way, also during import) sets
    # CPython's "unhandled interrupt" flag even though it was caught; under
    # ``-m`` Py_RunMain then exits by SIGINT instead of with this status
    # (Modules/main.c, run_eval_code_obj in Python/pythonrun.c). Every string
    # eval clears the flag first, so this one leaves the status as given.
    eval("None")
sys.exit(status)

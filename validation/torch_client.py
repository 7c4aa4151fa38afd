"""The PyTorch reference client as a script; the code lives in
:mod:`refimpl.crosscheck.torch_client` (needs the ``torch`` extra).

    python validation/torch_client.py REF.npz OUT.npz [--float32] [--coefficients]
                                      [--stage up --stage down ...]
"""

import sys

from refimpl.crosscheck.torch_client import main

if __name__ == "__main__":
    sys.exit(main())

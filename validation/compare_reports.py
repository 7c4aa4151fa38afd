"""Compare the numbers of two validation reports, claim by claim.

    python validation/compare_reports.py OLD_REPORT NEW_REPORT [CLAIM ...]

For every claim folder present in both reports, every numerical leaf of the
old ``<claim>/<claim>.json`` (and of its replication, if any) must appear in
the new one with the same value, bit for bit. The JSON schemas may differ
(a key may have moved), so leaves are matched as a multiset of values, not
by path. The old report's protocol block, hashes and wall-clock timings are
left out; the new report's protocol block (the configs that ran) may hold
the twin of an old leaf (a config value the old JSON kept elsewhere).
Prints one line per claim (leaves compared, leaves without a twin, up to
five of those with their old paths) and exits 1 when any leaf has no twin.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

SKIP_KEYS = ("protocol", "protocol_hash", "protocol_hash_scheme1", "disclosures")
TIMING_WORDS = ("seconds", "wall", "elapsed", "finished", "timing")


def leaves(doc, path="", skip=SKIP_KEYS):
    """(path, value) for every number of a JSON document (bools left out;
    top-level keys in ``skip`` and timing keys left out)."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            if path == "" and k in skip:
                continue
            if any(w in k.lower() for w in TIMING_WORDS):
                continue
            yield from leaves(v, f"{path}/{k}", skip)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from leaves(v, f"{path}[{i}]", skip)
    elif isinstance(doc, (int, float)) and not isinstance(doc, bool):
        yield path, repr(float(doc))


def compare(old_file, new_file):
    """(leaves compared, [(path, value) of old leaves without a twin in new])."""
    old = list(leaves(json.loads(Path(old_file).read_text())))
    new_doc = json.loads(Path(new_file).read_text())
    new = Counter(v for _, v in leaves(new_doc, skip=("protocol_hash", "protocol_hash_scheme1")))
    unmatched = []
    for path, value in old:
        if new[value] > 0:
            new[value] -= 1
        else:
            unmatched.append((path, value))
    return len(old), unmatched


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    old_root, new_root = Path(argv[0]), Path(argv[1])
    names = argv[2:] or sorted(
        p.name for p in old_root.iterdir() if (p / f"{p.name}.json").is_file()
    )
    bad = total = 0
    for name in names:
        pairs = [(old_root / name / f"{name}.json", new_root / name / f"{name}.json")]
        for rep in sorted(old_root.glob(f"replicate-*/{name}/{name}.json")):
            pairs.append((rep, new_root / rep.relative_to(old_root)))
        for old, new in pairs:
            if not new.is_file():
                print(f"{old.relative_to(old_root)}: no counterpart in {new_root}")
                bad += 1
                continue
            n, unmatched = compare(old, new)
            total += n
            bad += bool(unmatched)
            shown = "; ".join(f"{p} = {v}" for p, v in unmatched[:5])
            print(
                f"{old.relative_to(old_root)}: {n} leaves, {len(unmatched)} without a twin {shown}"
            )
    print(f"{total} leaves compared; {bad} file(s) with differences")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

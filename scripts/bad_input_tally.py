"""Run the bad-input probe table and print how many inputs gave each outcome, by area.

    python scripts/bad_input_tally.py            # the tally
    python scripts/bad_input_tally.py --details  # plus one line per case that did not get its expected outcome
    python scripts/bad_input_tally.py --all      # plus one line per case

Exits 1 when any case did not get its expected outcome (a crash, a silent wrong result, an unclear error).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability.test_bad_input_probe import (  # noqa: E402
    ACCEPTED,
    CASES,
    CLEAR_ERROR,
    OUTCOMES,
    classify,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--details", action="store_true", help="list every case that missed its expected outcome")
    parser.add_argument("--all", action="store_true", help="list every case with its outcome")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = []
    for case in CASES:
        outcome, detail = classify(case)
        expected = CLEAR_ERROR if case.expect == "error" else ACCEPTED
        rows.append((case, outcome, detail, outcome == expected))
        if args.all or (args.details and outcome != expected):
            print(f"[{outcome}] {case.area}: {case.name} -> {detail}")
    areas = sorted({c.area for c in CASES}, key=[c.area for c in CASES].index)
    by_area = {a: Counter(o for c, o, _, _ in rows if c.area == a) for a in areas}
    total = Counter(o for _, o, _, _ in rows)
    width = max(len(o) for o in OUTCOMES)
    print(f"\n{'area':14}" + "".join(f"{o:>{width + 2}}" for o in OUTCOMES) + f"{'cases':>8}")
    for a in areas:
        print(f"{a:14}" + "".join(f"{by_area[a][o]:>{width + 2}}" for o in OUTCOMES) + f"{sum(by_area[a].values()):>8}")
    print(f"{'total':14}" + "".join(f"{total[o]:>{width + 2}}" for o in OUTCOMES) + f"{len(rows):>8}")
    missed = sum(not ok for *_, ok in rows)
    print(f"\n{len(rows)} bad inputs; {missed} without their expected outcome")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())

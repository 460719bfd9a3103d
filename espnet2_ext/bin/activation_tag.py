"""Print the tag of a task-activation set, as decode dirs are named (``decode_<tag>``), for shell scripts.

    python -m espnet2_ext.bin.activation_tag asr,lid,scd      # -> asr+scd+lid

Imports neither torch nor espnet2 (a recipe calls it once per decode dir).
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from espnet2_ext.activation import activation_tag
from espnet2_ext.bin._cli import cli_main


def run(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tasks", help="comma-separated task names, e.g. asr,scd,endp")
    tag = activation_tag(p.parse_args(argv).tasks)
    if not tag:
        raise ValueError("no task given; name at least 'asr', e.g. asr,scd")
    print(tag)


main = cli_main(run, prog="activation_tag", errors=(ValueError,))

if __name__ == "__main__":
    raise SystemExit(main())

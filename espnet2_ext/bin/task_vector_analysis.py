"""Norms and cosine similarities of a trained model's task vectors, as markdown, JSON and heat-maps.

    python -m espnet2_ext.bin.task_vector_analysis --model_file exp/asr_x/valid.acc.ave.pth \
        --config exp/asr_x/config.yaml --out_dir exp/asr_x/task_vector_analysis
"""

from __future__ import annotations

import argparse
import sys
from typing import Dict, Optional, Sequence

from espnet2_ext.bin._cli import cli_main


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_file", required=True, help="state dict saved by ESPnet (.pth)")
    p.add_argument("--config", required=True, help="the model's training config.yaml")
    p.add_argument("--out_dir", required=True)
    return p


def run(argv: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, object]]:
    args = get_parser().parse_args(argv)
    # Imported here so --help stays fast (torch).
    from espnet2_ext.reporting.task_vector_analysis import run_analysis

    results = run_analysis(args.model_file, args.config, args.out_dir)
    print(f"analysed {', '.join(results)}; wrote {args.out_dir}/task_vectors.md, task_vectors.json and heat-maps")
    return results


main = cli_main(run, prog="task_vector_analysis: error", errors=(ValueError,))  # DataError is a ValueError

if __name__ == "__main__":
    sys.exit(main())

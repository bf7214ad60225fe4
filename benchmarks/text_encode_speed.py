"""How fast a frozen text encoder embeds sentences on this machine (no cache), with the load it ran under.

    python benchmarks/text_encode_speed.py --encoder sentence_transformer --sentences 512

Needs ``pip install -e '.[text]'``. Prints one line: sentences per second, torch threads and the
1-minute load average, since a shared machine's load changes the figure several times over.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from metadl.models.text import create_text_encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="sentence_transformer")
    parser.add_argument("--sentences", type=int, default=512)
    args = parser.parse_args()
    encoder = create_text_encoder(args.encoder, cache=False)
    texts = [f"how do I change the pin of card number {i} please" for i in range(args.sentences)]
    encoder.encode(texts[:32])  # warm-up: first-call allocations and lazy initialisation
    start = time.perf_counter()
    encoder.encode(texts)
    seconds = time.perf_counter() - start
    print(
        f"{args.encoder}: {args.sentences / seconds:.0f} sentences/s ({args.sentences} in {seconds:.1f} s), "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()

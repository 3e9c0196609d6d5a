"""Draw the README's example images, ``examples/images/*.png``, as the shipped ``shapes-zsl`` model's
training images are drawn (its renderer, a fixed seed each). The PNGs are in the repository; this
script is how they were made:

    python examples/draw_images.py [--out examples/images]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from zeromamba.demo import draw_shape

#: file -> (colour, fill, shape, seed). Seed 3 for the bar: seed 2 draws a short bar with three thick
#: stripes on which the model's striped (seen) and dotted (unseen) tie, a fair borderline case but
#: not what an example should show
IMAGES = {
    "circle.png": ("red", "solid", "circle", 1),
    "bar.png": ("blue", "striped", "bar", 3),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "images"))
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    for name, (colour, fill, shape, seed) in IMAGES.items():
        draw_shape("varied", colour, fill, shape, np.random.default_rng(seed)).save(out / name, optimize=True)
        print(out / name)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Convert the authors' release files into the zoo's model folders, verify them, and (optionally)
upload them to the Hugging Face Hub. See hub/README.md.

    python hub/publish_zoo.py --checkpoints ~/zeromamba-ckpts --xlsa17 ~/data/xlsa17 --out build/zoo
    python hub/publish_zoo.py ... --variants cub-gzsl,vmamba-small --push          # upload too
    python hub/publish_zoo.py --write-template                                     # refresh the card template

Expected inputs:
    --checkpoints DIR  the authors' files under their release names: CUB_bestGZSL.pth, ...,
                       vssm_small_0229_ckpt_epoch_222.pth, ... (see `zeromamba list --json`, source_file)
    --xlsa17 DIR       DIR/{CUB,SUN,AWA2}/{att_splits.mat,res101.mat}
    --names DIR        optional: DIR/{CUB,SUN,AWA2}_attributes.txt (one attribute name per line, e.g.
                       CUB's attributes.txt or AwA2's predicates.txt) and DIR/{DATASET}_classes.txt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import zeromamba
from zeromamba import convert, zoo
from zeromamba import format as zm_format
from zeromamba.hub import push_to_hub


def convert_variant(variant: zoo.PretrainedVariant, args: argparse.Namespace) -> Path | None:
    checkpoint = args.checkpoints / variant.source_file
    if not checkpoint.is_file():
        print(f"skip {variant.name}: {checkpoint} not found (download it from {variant.source_url})")
        return None
    out = args.out / variant.name
    kwargs: dict = {}
    if variant.is_zero_shot:
        data = args.xlsa17 / variant.dataset
        kwargs.update(att_splits=data / "att_splits.mat", res101=data / "res101.mat")
        if args.names is not None:
            for key, suffix in (("attribute_names", "attributes"), ("class_names", "classes")):
                f = args.names / f"{variant.dataset}_{suffix}.txt"
                if f.is_file():
                    kwargs[key] = f
    convert.convert_official(checkpoint, out, variant=variant, **kwargs)
    cfg = zm_format.read_config(out)
    if variant.is_zero_shot and len(cfg["seen_classes"] or []) != variant.num_seen:
        raise SystemExit(f"{variant.name}: {len(cfg['seen_classes'] or [])} seen classes, expected {variant.num_seen}")
    diff = convert.verify_conversion(checkpoint, out, image_size=args.verify_size)
    print(f"{variant.name}: wrote {out}, outputs equal the original's (max difference {diff:.3g})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", type=Path, help="folder with the authors' release files")
    parser.add_argument("--xlsa17", type=Path, help="xlsa17 data folder ({CUB,SUN,AWA2}/att_splits.mat, res101.mat)")
    parser.add_argument("--names", type=Path, help="folder with {DATASET}_attributes.txt / {DATASET}_classes.txt")
    parser.add_argument("--out", type=Path, default=Path("build/zoo"), help="where the model folders go")
    parser.add_argument("--variants", help="comma-separated zoo names (default: all)")
    parser.add_argument("--verify-size", type=int, default=64, help="image size of the verification batch")
    parser.add_argument("--push", action="store_true", help="upload each folder to its zoo repository")
    parser.add_argument("--private", action="store_true", help="create the repositories as private")
    parser.add_argument("--write-template", action="store_true", help="rewrite hub/MODEL_CARD_TEMPLATE.md")
    args = parser.parse_args(argv)

    if args.write_template:
        target = Path(__file__).resolve().parent / "MODEL_CARD_TEMPLATE.md"
        target.write_text(zm_format.MODEL_CARD_TEMPLATE)
        print(f"wrote {target}")
        return 0
    if args.checkpoints is None:
        parser.error("--checkpoints is required")
    # variants shipped inside the package are not converted from an authors' file, and the Vim
    # releases are read from their authors' own repositories (zeromamba.hub.release)
    published = [v.name for v in zeromamba.list_pretrained() if not v.is_local and v.hub_format == "zeromamba"]
    names = args.variants.split(",") if args.variants else published
    variants = [zoo.get_variant(n) for n in names]
    foreign = [v.name for v in variants if v.hub_format != "zeromamba"]
    if foreign:
        parser.error(f"{', '.join(foreign)}: read from their authors' own repositories, nothing to publish")
    if any(v.is_zero_shot for v in variants) and args.xlsa17 is None:
        parser.error("--xlsa17 is required for the zero-shot variants")
    print(f"namespace: {zoo.hub_namespace()} (set {zoo.NAMESPACE_ENV} to change)")
    for variant in variants:
        out = convert_variant(variant, args)
        if out is not None and args.push:
            print(f"{variant.name}: {push_to_hub(out, variant.repo_id, private=args.private)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

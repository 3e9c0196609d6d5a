#!/usr/bin/env bash
# Train the shipped demo model (zeromamba_nano_s8: letterboxed 80 px input, then fine-tuned at 112 px: 14 x 14 attribute maps)
# on CPU and copy it into the package (zeromamba/pretrained/shapes-zsl), where
# `zeromamba.from_pretrained("shapes-zsl")` finds it.
#
# One command trains it: `zeromamba train --config examples/shapes_zsl.json` (51 minutes on the
# shared 2-core development machine). It trains ZeroMamba-nano-s8 from random weights on the
# generated Shapes dataset (seed 0) with AdamW, 24 texture swatches joining every batch (blobs of
# any hue that show only a fill, so that the fill is learnt from the texture): first on 21 of the
# 27 seen classes, scoring every second epoch and each gamma on the other 6 seen classes held out
# as "unseen" (never the test set); then again from scratch on all 27 seen classes for the chosen
# number of epochs, with the chosen gamma. It evaluates the test split once and exports the model
# to RUN_FOLDER/model. A second stage, `zeromamba train --config examples/shapes_zsl_finetune.json`
# (16 minutes), fine-tunes that whole model for 4 epochs at a tenth of the learning rate, at 112 x 112
# instead of 80 x 80, on the renderer's wide variety (wider stripe and dot spacings, hexagonal dot
# grids, coloured paper), selecting epoch count and gamma the same way. A third,
# `zeromamba train --config examples/shapes_zsl_finetune_uneven.json` (22 minutes), fine-tunes that
# model once more the same way on the renderer's uneven variety (the wide one plus stripes bent into
# waves and bodies painted in uneven blotches); its model is the one shipped.
#
# Usage: examples/train_shapes_zsl.sh [RUN_FOLDER]   (default runs/shapes-zsl; RUN_FOLDER,
# RUN_FOLDER-finetune and RUN_FOLDER-uneven must not hold a run)
set -euo pipefail
cd "$(dirname "$0")/.."
run="${1:-runs/shapes-zsl}"

zeromamba train --config examples/shapes_zsl.json --output "$run"
zeromamba train --config examples/shapes_zsl_finetune.json --set init="$run/model" --output "$run-finetune"
zeromamba train --config examples/shapes_zsl_finetune_uneven.json --set init="$run-finetune/model" --output "$run-uneven"
run="$run-uneven"

target=zeromamba/pretrained/shapes-zsl
rm -rf "$target"
mkdir -p "$target"
cp "$run/model/config.json" "$run/model/model.safetensors" "$run/model/class_attributes.safetensors" "$target/"
# objects smaller than the training range (radius 0.2-0.36 of the longer side) are framed at a
# typical training size before classification (zeromamba/framing.py; MODEL_CARD.md, "Image size, object size")
python3 -c "import json, sys; p = sys.argv[1]; c = json.load(open(p)); c['object_extent'] = [0.17, 0.28]; json.dump(c, open(p, 'w'), indent=2)" "$target/config.json"
echo "shipped: $target ($(du -sh "$target" | cut -f1)); gamma $(python3 -c "import json; print(json.load(open('$target/config.json'))['gamma'])")"

#!/usr/bin/env bash
# Joins the weights pieces that benchmarks/gpu/train_recipe.sh split: join_weights.sh FILES_AT DEST_DIR
set -euo pipefail
src=${1:?folder with the pieces} dest=${2:?destination folder}
mkdir -p "$dest"
for first in "$src"/*.safetensors.part00; do
  name=$(basename "$first" .part00)
  cat "$src/$name".part* > "$dest/$name"
  echo "$dest/$name"
done

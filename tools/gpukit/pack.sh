#!/usr/bin/env bash
# Packs folders into parts that device calls can carry: one tar, cut into OUT/c0, OUT/c1, ... (kit.tar.NN), c0 with
# the part count and the whole tar's sha256; `tools/gpukit/device.sh receive` joins and checks them on the GPU machine.
#   bash tools/gpukit/pack.sh SRC OUT FIRST_BYTES PART_BYTES NAME...
# SRC: the folder holding NAME...; FIRST_BYTES: the size of c0's part (it shares a call with something else);
# PART_BYTES: the size of every further part. OUT is emptied first.
set -euo pipefail
[ $# -ge 5 ] || { sed -n '2,6p' "$0"; exit 2; }
src=$1 out=$2 first=$3 size=$4
shift 4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar cf "$tmp/kit.tar" -C "$src" "$@"
head -c "$first" "$tmp/kit.tar" > "$tmp/kit.tar.00"
tail -c +"$((first + 1))" "$tmp/kit.tar" | split -b "$size" -d -a 2 --numeric-suffixes=1 - "$tmp/kit.tar."
[ -s "$(ls "$tmp"/kit.tar.?? | sort | tail -1)" ] || rm "$(ls "$tmp"/kit.tar.?? | sort | tail -1)"
rm -rf "$out" && mkdir -p "$out"
n=0
for f in $(ls "$tmp"/kit.tar.?? | sort); do
  mkdir -p "$out/c$n" && mv "$f" "$out/c$n/" && n=$((n + 1))
done
echo "$n" > "$out/c0/count"
(cd "$tmp" && sha256sum kit.tar) > "$out/c0/sha256"
echo "$n part(s) of $(du -b "$tmp/kit.tar" | cut -f1) bytes in $out"

#!/usr/bin/env bash
# Build KenLM's lmplz and build_binary from the `kenlm` source distribution on PyPI into
# DIR/bin (default build/kenlm). Does nothing when both are already there (the cache).
# Installs Debian's build dependencies first when they are missing (as root, or sudo).
set -euo pipefail
out="${1:-build/kenlm}"
python="${PYTHON:-python3}"
version="${KENLM_VERSION:-0.3.0}"
if [[ -x "$out/bin/lmplz" && -x "$out/bin/build_binary" ]]; then
  exit 0
fi

packages=(cmake g++ libboost-program-options-dev libboost-system-dev libboost-thread-dev
  libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "build-kenlm: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "build-kenlm: building lmplz and build_binary from kenlm $version (about a minute)"
"$python" -m pip download --quiet --no-binary kenlm --no-deps "kenlm==$version" -d "$work"
tar -xzf "$work"/kenlm-*.tar.gz -C "$work"
cmake -S "$work/kenlm-$version" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_POLICY_VERSION_MINIMUM=3.5 >"$work/cmake.log" 2>&1 \
  || { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/build" --target lmplz build_binary -j "$(nproc)" >"$work/build.log" 2>&1 \
  || { tail -50 "$work/build.log"; exit 1; }
mkdir -p "$out/bin.tmp"
cp "$work/build/bin/lmplz" "$work/build/bin/build_binary" "$out/bin.tmp/"
rm -rf "$out/bin"
mv "$out/bin.tmp" "$out/bin"
echo "build-kenlm: $out/bin/lmplz and $out/bin/build_binary"

#!/usr/bin/env bash
# Installs the Debian packages the tests need (clang for the fuzz target, SLURM and munge for the cluster test,
# Chromium for the report check) when they are missing and we are root. Prints what it could not install.
set -uo pipefail
want=()
command -v clang++ >/dev/null || want+=(clang)
# libFuzzer and the sanitizers' runtimes (clang alone, without recommends, cannot link the fuzz target)
ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || want+=(libclang-rt-14-dev)
command -v slurmctld >/dev/null || want+=(slurm-wlm)
command -v munged >/dev/null || want+=(munge)
command -v chromium >/dev/null || want+=(chromium)
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: not root; install these yourself for the full test suite: ${want[*]}" >&2
  exit 0
fi
echo "system-deps: installing ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null \
  || { echo "system-deps: apt-get install ${want[*]} failed" >&2; exit 1; }

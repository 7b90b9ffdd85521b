# scripts/deps.sh: shared by run.sh and test.sh: Debian packages and the CMake build.
PACKAGES="cmake ninja-build g++ doctest-dev libstb-dev zlib1g-dev dataset-fashion-mnist python3-torch \
libopenblas0-pthread python3-matplotlib python3-numpy"

# install_deps [more packages]: installs whichever of PACKAGES and the arguments are missing.
install_deps() {
  local missing=()
  for p in $PACKAGES "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

configure_and_build() {
  local build=$1
  shift
  local gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "$@"
  fi
  cmake --build "$build" -j "$(nproc)"
}

#!/usr/bin/env bash
# Installs the Debian packages napari needs under Xvfb (and dicom3tools for DICOM checks, Orthanc for the PACS tests), when this user can (root or password-less sudo).
# Does nothing when they are already present; otherwise says what to run and carries on.
set -u
packages=(xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-randr0 libxcb-render-util0
          libxcb-shape0 libxcb-xkb1 libxcb-cursor0 libxkbcommon-x11-0 libgl1 libegl1 libfontconfig1 libdbus-1-3
          dicom3tools orthanc orthanc-dicomweb)
# dicom3tools: dciodvfy, which the tests run on written DICOM-SEGs and RTSTRUCTs;
# orthanc, orthanc-dicomweb: the real PACS the tests/pacs fixture starts on 127.0.0.1 (its service is not needed)
command -v dpkg-query >/dev/null 2>&1 || { echo "system-deps: not a Debian-like system; install Xvfb and the xcb libraries yourself"; exit 0; }
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  sudo_cmd=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo_cmd=(sudo -n)
else
  echo "system-deps: missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 0
fi
echo "system-deps: installing ${missing[*]}"
"${sudo_cmd[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null

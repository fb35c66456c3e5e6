#!/bin/sh
# Fetch the benchmark audio (Debian packages, free licences) and unpack it into DEST.
#   benchmarks/fetch_audio.sh /tmp/bench-audio
# gives DEST/usr/share/games/wesnoth/1.16/data/core/music/*.ogg (41 orchestral tracks,
# 44.1 kHz stereo, ~2.1 h in all) and DEST/usr/share/sounds/freedesktop/stereo/*.oga
# (35 short sounds). Needs apt-get and dpkg (Debian/Ubuntu); run `apt-get update`
# first if apt cannot find the packages. Keep DEST outside the repository.
set -eu
DEST=${1:?usage: fetch_audio.sh DEST}
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
if ! apt-get download sound-theme-freedesktop wesnoth-1.16-music; then
    echo "apt-get download failed; trying again after apt-get update" >&2
    apt-get update
    apt-get download sound-theme-freedesktop wesnoth-1.16-music
fi
for deb in ./*.deb; do
    dpkg -x "$deb" "$DEST"
done
echo "music:  $(find "$DEST" -name '*.ogg' | wc -l) .ogg files under $DEST/usr/share/games/wesnoth/1.16/data/core/music"
echo "sounds: $(find "$DEST" -name '*.oga' | wc -l) .oga files under $DEST/usr/share/sounds/freedesktop/stereo"

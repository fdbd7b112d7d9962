#!/usr/bin/env bash
# Rebuild the held-out clips in this folder from real recordings shipped by Debian packages
# (freepats, fluid-soundfont-gm, asterisk-core-sounds-en-wav); see README.md for sources and licences.
# Processing (as data/'s clips, but no fade-out): one recorded sample copied unmodified out of a GUS patch or
# SoundFont (no synthesis, no looping), or a speech prompt; channel 1, resampled to 48 kHz (sox rate -v),
# trimmed from inside the sounding passage so each clip ends while the sound is still going,
# 2 ms fade-in only, peak -1 dBFS, mono PCM16, 1.5 s.
# Needs: apt-get (the packages are downloaded and unpacked into a temporary folder, not installed), sox, python3.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! command -v sox >/dev/null; then apt-get update && apt-get install -y --no-install-recommends sox; fi
PKGS="freepats fluid-soundfont-gm asterisk-core-sounds-en-wav"
# The clips were made from bookworm's freepats 20060219-4, fluid-soundfont-gm 3.1-5.3, asterisk-core-sounds-en-wav 1.6.1-1.
( cd "$WORK" && { apt-get download $PKGS 2>/dev/null || { apt-get update && apt-get download $PKGS; }; } )
for deb in "$WORK"/*.deb; do dpkg-deb -x "$deb" "$WORK/root"; done
R="$WORK/root"
python3 - "$R" "$WORK" <<'PY'
"""Copy single recorded samples, unmodified, out of freepats GUS patches and the Fluid R3 SoundFont
into mono 16-bit WAVs at their own rate."""
import array, struct, sys, wave
ROOT, OUT = sys.argv[1], sys.argv[2]
FREEPATS = ROOT + '/usr/share/midi/freepats/'
SF2 = ROOT + '/usr/share/sounds/sf2/FluidR3_GM.sf2'
def write(out, rate, a, what):
    if sys.byteorder == 'big': a.byteswap()
    w = wave.open(out, 'wb'); w.setnchannels(1); w.setsampwidth(2); w.setframerate(rate); w.writeframes(a.tobytes()); w.close()
    print(f'{out}: {what} rate={rate} frames={len(a)}')
def pat_sample(path, idx, out):
    b = open(FREEPATS + path, 'rb').read(); assert b[:8] == b'GF1PATCH'
    off = 129 + 63 + 47
    for i in range(struct.unpack_from('<H', b, 85)[0]):
        name, frac, size, ls, le, rate, lo, hi, root = struct.unpack_from('<7sBIIIHIII', b, off)
        modes = b[off + 55]
        if i == idx:
            assert modes & 1, '16-bit sample expected'
            a = array.array('h'); a.frombytes(b[off + 96: off + 96 + size])
            if modes & 2: a = array.array('h', [(v + 32768) & 0xFFFF if v < 0 else v - 32768 for v in a])
            return write(out, rate, a, f'{path} #{idx} root={root/1000:.1f}Hz')
        off += 96 + size
    raise SystemExit(f'no sample {idx} in {path}')
def sf2_sample(name, out):
    b = open(SF2, 'rb').read(); assert b[:4] == b'RIFF' and b[8:12] == b'sfbk'
    chunks, pos = {}, 12
    while pos < len(b):  # top level: LIST INFO, LIST sdta (smpl), LIST pdta (shdr, ...)
        size = struct.unpack_from('<I', b, pos + 4)[0]
        if b[pos:pos + 4] == b'LIST':
            p = pos + 12
            while p < pos + 8 + size:
                sub = struct.unpack_from('<I', b, p + 4)[0]
                chunks[b[p:p + 4]] = (p + 8, sub); p += 8 + sub + (sub & 1)
        pos += 8 + size + (size & 1)
    smpl, (shdr, shdr_size) = chunks[b'smpl'][0], chunks[b'shdr']
    for i in range(shdr_size // 46 - 1):
        sname, start, end, ls, le, rate = struct.unpack_from('<20sIIIII', b, shdr + 46 * i)
        if sname.split(b'\0')[0].decode('latin1') == name:
            a = array.array('h'); a.frombytes(b[smpl + 2 * start: smpl + 2 * end])
            return write(out, rate, a, f'FluidR3_GM.sf2 "{name}"')
    raise SystemExit(f'no sample {name!r} in {SF2}')
pat_sample('Tone_000/073_Flute.pat', 0, OUT + '/flute.wav')
pat_sample('Tone_000/019_Church_Organ.pat', 1, OUT + '/organ.wav')
pat_sample('Tone_000/006_Harpsichord.pat', 0, OUT + '/harpsichord.wav')
pat_sample('Tone_000/014_Tubular_Bells.pat', 0, OUT + '/tubularbells.wav')
sf2_sample('Cello C#3(L)', OUT + '/cello.wav')
sf2_sample('Ahh Choir C4(L)', OUT + '/choir.wav')
sf2_sample('English Horn B4(L)', OUT + '/englishhorn.wav')
sf2_sample('P200 Piano D3(L)', OUT + '/piano.wav')
sf2_sample('Acoustic Bass F2', OUT + '/bass.wav')
sf2_sample('Applause', OUT + '/applause.wav')
sf2_sample('Crsh 1(L)', OUT + '/crash.wav')
PY
clip() {  # clip OUT IN START_S: 1.5 s from START_S, 2 ms fade-in, no fade-out
  sox -R -V1 "$2" -b 16 -e signed-integer "$HERE/$1" remix 1 gain -6 rate -v 48000 trim "$3" 1.5 fade h 0.002 gain -n -1
}
clip sustained_flute_F4.wav         "$WORK/flute.wav"        0.60
clip sustained_organ_Ds2.wav        "$WORK/organ.wav"        0.40
clip sustained_cello_Cs2.wav        "$WORK/cello.wav"        0.45
clip sustained_choir_C3.wav         "$WORK/choir.wav"        0.80
clip sustained_englishhorn_B3.wav   "$WORK/englishhorn.wav"  0.60
clip decaying_harpsichord_Ds3.wav   "$WORK/harpsichord.wav"  0
clip decaying_piano_D2.wav          "$WORK/piano.wav"        0
clip decaying_bass_F1.wav           "$WORK/bass.wav"         0
clip bell_tubularbells_F5.wav       "$WORK/tubularbells.wav" 0
clip speech_allison_onlyperson.wav  "$R/usr/share/asterisk/sounds/en_US_f_Allison/conf-onlyperson.wav" 0.10
clip noise_applause_crowd.wav       "$WORK/applause.wav"     0.50
clip noise_cymbal_crash.wav         "$WORK/crash.wav"        0.20

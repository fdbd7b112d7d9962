"""Build a wider corpus of real recordings from Debian packages, for benchmarks only.

Usage: python benchmarks/corpus/make_corpus.py ROOT OUT
  ROOT  a folder where the packages listed in make_corpus.sh were unpacked (dpkg-deb -x)
  OUT   the corpus folder to write (short48/, music44/, speech8k/, song/, README.md)

Every clip is a real recording copied out of a package: one SoundFont sample, one Sonic Pi sample,
an Asterisk prompt, a freedesktop sound or an excerpt of a game's recorded soundtrack. Nothing is
synthesised. Excerpt positions follow one rule per category (below), not hand-picked moments.
"""

import struct
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SF2 = "usr/share/sounds/sf2/FluidR3_GM.sf2"
SONIC = "usr/share/sonic-pi/samples/"
FREEDESKTOP = "usr/share/sounds/freedesktop/stereo/"
WESNOTH = "usr/share/games/wesnoth/1.16/data/core/music/"
SINGULARITY = "usr/share/games/singularity/music/"
ASTERISK = "usr/share/asterisk/sounds/"

LICENCE = {
    "fluid": "MIT (Frank Wen, Toby Smithe; fluid-soundfont-gm)",
    "sonic": "CC0 (freesound.org authors; sonic-pi-samples, see its samples/README.md)",
    "freedesktop-alsa": "GPL-2+ (The ALSA developers; sound-theme-freedesktop)",
    "freedesktop-boulanger": "CC-BY-3.0 (Dr. Richard Boulanger et al; sound-theme-freedesktop)",
    "wesnoth": "GPL-2+ (Battle for Wesnoth music; wesnoth-1.16-music)",
    "singularity": "CC-BY-SA-3.0 (Max McCracken; singularity-music)",
    "asterisk": "CC-BY-SA-3.0 (Asterisk core sounds, Digium; asterisk-core-sounds-*-wav)",
}

# name, category, source kind, source, licence key
SHORT = [
    ("sustained_violin_D6", "sustained", "sf2", "Violin D6(L)", "fluid"),
    ("sustained_viola_As4", "sustained", "sf2", "Viola A#4(L)", "fluid"),
    ("sustained_frenchhorns_Ds5", "sustained", "sf2", "French Horns D#5(L)", "fluid"),
    ("sustained_brass_F3", "sustained", "sf2", "Brass Section F3", "fluid"),
    ("sustained_strings_As4", "sustained", "sf2", "Strings A#4L", "fluid"),
    ("sustained_accordion_C5", "sustained", "sf2", "Accordian C5(L)", "fluid"),
    ("sustained_bagpipe_C6", "sustained", "sf2", "Bagpipe C6", "fluid"),
    ("sustained_baritonesax_E5", "sustained", "sf2", "Baritone E5(L)", "fluid"),
    ("sustained_tenorsax_F5", "sustained", "sf2", "Tenor F5(L)", "fluid"),
    ("sustained_voice_C2", "sustained", "sf2", "solo_vox_c2", "fluid"),
    ("sustained_ohhvoices_C4", "sustained", "sf2", "Ohh Voices C 4(L)", "fluid"),
    ("sustained_glasshum", "sustained", "file", SONIC + "ambi_glass_hum.flac", "sonic"),
    ("sustained_drone", "sustained", "file", SONIC + "ambi_drone.flac", "sonic"),
    ("decaying_steelguitar_E3", "decaying", "sf2", "Steel E3", "fluid"),
    ("decaying_nylonguitar_D4", "decaying", "sf2", "Nylon D4", "fluid"),
    ("decaying_rhodes_C3", "decaying", "sf2", "Rhodes C3(L)", "fluid"),
    ("decaying_epiano_C4", "decaying", "sf2", "EP 2 C 4(L)", "fluid"),
    ("decaying_marimba_C4", "decaying", "sf2", "Marimba C 4(L)", "fluid"),
    ("decaying_timpani", "decaying", "sf2", "Timpani 1(L)", "fluid"),
    ("decaying_pizzicato_C3", "decaying", "sf2", "Pizz C3(L)", "fluid"),
    ("decaying_jazzguitar_G4", "decaying", "sf2", "Jazz Guitar G4", "fluid"),
    ("decaying_slapbass_D3", "decaying", "sf2", "Slap Bass D3", "fluid"),
    ("decaying_fretless_E1", "decaying", "sf2", "Fretless E1", "fluid"),
    ("decaying_piano_ambi", "decaying", "file", SONIC + "ambi_piano.flac", "sonic"),
    ("decaying_guitar_harmonics", "decaying", "file", SONIC + "guit_harmonics.flac", "sonic"),
    ("glide_guitar_slide", "glide", "file", SONIC + "guit_e_slide.flac", "sonic"),
    ("bell_belltree", "bell", "sf2", "Bell Tree", "fluid"),
    ("bell_perc_bell", "bell", "file", SONIC + "perc_bell.flac", "sonic"),
    ("bell_perc_bell2", "bell", "file", SONIC + "perc_bell2.flac", "sonic"),
    ("bell_elec_chime", "bell", "file", SONIC + "elec_chime.flac", "sonic"),
    ("bell_freedesktop", "bell", "file", FREEDESKTOP + "complete.oga", "freedesktop-boulanger"),
    ("noise_seashore", "noise", "sf2", "Sea Shore", "fluid"),
    ("noise_ride", "noise", "sf2", "Ride1(L)", "fluid"),
    ("noise_chinacrash", "noise", "sf2", "China Crash(L)", "fluid"),
    ("noise_cymbal_open", "noise", "file", SONIC + "drum_cymbal_open.flac", "sonic"),
    ("noise_drumroll", "noise", "file", SONIC + "drum_roll.flac", "sonic"),
    ("noise_vinylhiss", "noise", "file", SONIC + "vinyl_hiss.flac", "sonic"),
    ("noise_trash", "noise", "file", FREEDESKTOP + "trash-empty.oga", "freedesktop-boulanger"),
    ("percussive_amen", "percussive", "file", SONIC + "loop_amen.flac", "sonic"),
    ("percussive_tabla", "percussive", "file", SONIC + "loop_tabla.flac", "sonic"),
    ("percussive_breakbeat", "percussive", "file", SONIC + "loop_breakbeat.flac", "sonic"),
    ("music_guitar_em9", "music", "file", SONIC + "guit_em9.flac", "sonic"),
    ("music_loop_mika", "music", "file", SONIC + "loop_mika.flac", "sonic"),
    ("music_loop_safari", "music", "file", SONIC + "loop_safari.flac", "sonic"),
    ("music_loop_garzul", "music", "file", SONIC + "loop_garzul.flac", "sonic"),
    ("music_wesnoth_elvish", "music", "file", WESNOTH + "elvish-theme.ogg", "wesnoth"),
    ("music_wesnoth_knolls", "music", "file", WESNOTH + "knolls.ogg", "wesnoth"),
    ("music_wesnoth_love", "music", "file", WESNOTH + "love_theme.ogg", "wesnoth"),
    ("music_wesnoth_nunc", "music", "file", WESNOTH + "nunc_dimittis.ogg", "wesnoth"),
    ("music_wesnoth_minstrels", "music", "file", WESNOTH + "traveling_minstrels.ogg", "wesnoth"),
    ("music_wesnoth_sad", "music", "file", WESNOTH + "sad.ogg", "wesnoth"),
    ("music_singularity_awakening", "music", "file", SINGULARITY + "Awakening.ogg", "singularity"),
    ("music_singularity_nebula", "music", "file", SINGULARITY + "Nebula.ogg", "singularity"),
] + [
    (
        f"speech_alsa_{c.replace('-', '')}",
        "speech",
        "file",
        FREEDESKTOP + f"audio-channel-{c}.oga",
        "freedesktop-alsa",
    )
    for c in (
        "front-center",
        "front-right",
        "rear-left",
        "rear-right",
        "rear-center",
        "side-left",
        "side-right",
    )
]

# 10 s multi-note excerpts, stereo, 44.1 kHz
MUSIC = [
    (n, "music", "file", s, lic)
    for n, s, lic in [
        ("wesnoth_elvish", WESNOTH + "elvish-theme.ogg", "wesnoth"),
        ("wesnoth_knolls", WESNOTH + "knolls.ogg", "wesnoth"),
        ("wesnoth_love", WESNOTH + "love_theme.ogg", "wesnoth"),
        ("wesnoth_nunc", WESNOTH + "nunc_dimittis.ogg", "wesnoth"),
        ("wesnoth_sanctuary", WESNOTH + "silvan_sanctuary.ogg", "wesnoth"),
        ("wesnoth_minstrels", WESNOTH + "traveling_minstrels.ogg", "wesnoth"),
        ("wesnoth_wanderer", WESNOTH + "wanderer.ogg", "wesnoth"),
        ("wesnoth_sad", WESNOTH + "sad.ogg", "wesnoth"),
        ("singularity_awakening", SINGULARITY + "Awakening.ogg", "singularity"),
        ("singularity_coherence", SINGULARITY + "Coherence.ogg", "singularity"),
        ("singularity_nebula", SINGULARITY + "Nebula.ogg", "singularity"),
        ("sonicpi_guitar_em9", SONIC + "guit_em9.flac", "sonic"),
        ("sonicpi_loop_tabla", SONIC + "loop_tabla.flac", "sonic"),
        ("sonicpi_loop_garzul", SONIC + "loop_garzul.flac", "sonic"),
        ("sonicpi_loop_mika", SONIC + "loop_mika.flac", "sonic"),
    ]
]

SPEECH8K = [
    (
        f"speech8k_{voice.split('_')[0]}_{voice.split('_')[-1].lower()}",
        "speech",
        "file",
        ASTERISK + f"{voice}/demo-congrats.wav",
        "asterisk",
    )
    for voice in (
        "en_US_f_Allison",
        "es_MX_f_Allison",
        "fr_CA_f_June",
        "it_IT_m_Carlo",
        "ru_RU_f_IvrvoiceRU",
    )
]

SONG = ("song_wesnoth_journeys_end", "music", "file", WESNOTH + "journeys_end.ogg", "wesnoth")


def sf2_samples(path):
    """{sample name: (int16 array, rate)} of every sample header in a SoundFont 2 file."""
    b = Path(path).read_bytes()
    chunks, pos = {}, 12
    while pos < len(b):
        size = struct.unpack_from("<I", b, pos + 4)[0]
        if b[pos : pos + 4] == b"LIST":
            p = pos + 12
            while p < pos + 8 + size:
                sub = struct.unpack_from("<I", b, p + 4)[0]
                chunks[b[p : p + 4]] = (p + 8, sub)
                p += 8 + sub + (sub & 1)
        pos += 8 + size + (size & 1)
    smpl = chunks[b"smpl"][0]
    shdr, shdr_size = chunks[b"shdr"]
    out = {}
    for i in range(shdr_size // 46 - 1):
        name, start, end, _, _, rate = struct.unpack_from("<20sIIIII", b, shdr + 46 * i)
        data = np.frombuffer(b, dtype="<i2", count=end - start, offset=smpl + 2 * start)
        out[name.split(b"\0")[0].decode("latin1")] = (data.astype(np.float64) / 32768.0, rate)
    return out


def load(root, kind, source, sf2):
    """(frames, channels) float64 and rate of one source recording."""
    if kind == "sf2":
        data, rate = sf2[source]
        return data[:, None], rate
    data, rate = sf.read(str(Path(root) / source), dtype="float64", always_2d=True)
    return data, rate


def resample(x, rate_from, rate_to):
    if rate_from == rate_to:
        return x
    ratio = Fraction(rate_to, rate_from)
    return resample_poly(x, ratio.numerator, ratio.denominator, axis=0)


def start_s(category, x, rate, length_s, fraction=0.3):
    """The one rule per category for where an excerpt starts."""
    duration_s = len(x) / rate
    if category in ("decaying", "bell", "percussive", "glide"):
        level = np.abs(x).max(axis=1)
        onset = int(np.argmax(level > 0.1 * level.max()))
        return max(0.0, onset / rate - 0.005)
    if category in ("sustained", "noise"):
        return max(0.0, min(0.5, duration_s - length_s))
    if category == "speech":
        return max(0.0, min(0.1, duration_s - length_s))
    return max(0.0, min(fraction * duration_s, duration_s - length_s))


def excerpt(x, rate, category, length_s, rate_out, mono):
    x = x[:, :1] if mono else x
    begin = int(round(start_s(category, x, rate, length_s) * rate))
    x = x[begin : begin + int(round(length_s * rate))]
    x = resample(x, rate, rate_out)
    fade = min(len(x), int(0.002 * rate_out))
    x[:fade] *= np.linspace(0.0, 1.0, fade, endpoint=False)[:, None]
    return x * (10 ** (-1 / 20) / max(np.abs(x).max(), 1e-12))


def main(root, out):
    out = Path(out)
    sf2 = sf2_samples(Path(root) / SF2)
    rows = []
    plan = [
        ("short48", SHORT, 1.5, 48000, True, "WAV"),
        ("music44", MUSIC, 10.0, 44100, False, "FLAC"),
        ("speech8k", SPEECH8K, 6.0, 8000, True, "WAV"),
        ("song", [SONG], 180.0, 44100, False, "FLAC"),
    ]
    for folder, entries, length_s, rate_out, mono, fmt in plan:
        (out / folder).mkdir(parents=True, exist_ok=True)
        for name, category, kind, source, licence in entries:
            x, rate = load(root, kind, source, sf2)
            y = excerpt(x, rate, category, length_s, rate_out, mono)
            path = out / folder / f"{name}.{fmt.lower()}"
            sf.write(str(path), y, rate_out, subtype="PCM_16", format=fmt)
            where = f'FluidR3_GM.sf2 sample "{source}"' if kind == "sf2" else "/" + source
            rows.append(
                (
                    f"{folder}/{path.name}",
                    category,
                    f"{len(y) / rate_out:.2f}",
                    rate_out,
                    y.shape[1],
                    where,
                    LICENCE[licence],
                )
            )
            print(rows[-1][0], category, rows[-1][2], "s", flush=True)
    write_readme(out, rows)


def write_readme(out, rows):
    head = (Path(__file__).with_name("README.template.md")).read_text()
    table = [
        "| file | category | s | rate | ch | source (path in the unpacked package) | licence |",
        "|---|---|---|---|---|---|---|",
    ]
    table += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    (out / "README.md").write_text(head + "\n" + "\n".join(table) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])

"""Fuzz and fault cases for `sonode` (#30): mutated audio, mutated model files (metadata and tensors,
checksum recomputed as an attacker would), absurd arguments, FIFOs, read-only and full folders.

`make_cases(workdir, seed, n_audio, n_model, n_args)` writes the inputs into ``workdir`` and returns
`Case`s; `run_case` runs one. tests/test_hostile_fuzz.py runs a few dozen, benchmarks/fuzz_hostile.py
as many as asked.
Every case must end in exit 0 or 2 with one line, within the harness's time and memory bounds.
"""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sonode.io.model_file import _digest
from tests.cli_support import TINY_MODEL
from tests.hostile_support import (
    RATE,
    Outcome,
    pcm16_wav_bytes,
    run,
    small_tmpfs,
    tone,
    unmount,
)

TINY = ["--steps", "1", *TINY_MODEL, "--max-time", "30", "--quiet"]
ABSURD_NUMBERS = [
    "0",
    "-1",
    "1e308",
    "inf",
    "-inf",
    "nan",
    "99999999999999999999999",
    "1e-300",
    "abc",
    "",
]


@dataclass
class Case:
    kind: str  # "audio", "model", "args", "fifo", "readonly", "full"
    name: str
    args: list[str]
    codes: tuple[int, ...] = (0, 2)
    needs: list[str] = field(default_factory=list)  # "tmpfs-ro" or "tmpfs-full": a tmpfs it mounts


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    how = rng.choice(["flip", "truncate", "header", "chunk_size", "garbage", "splice"])
    if how == "flip":
        for _ in range(rng.randint(1, 32)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif how == "truncate":
        b = b[: rng.randrange(4, len(b))]
    elif how == "header":  # rate, channels, bits set to extremes
        offset, fmt, value = rng.choice(
            [
                (24, "<I", rng.choice([0, 1, 7999, 192001, 2**32 - 1])),
                (22, "<H", rng.choice([0, 3, 255, 65535])),
                (34, "<H", rng.choice([0, 1, 7, 64, 65535])),
            ]
        )
        b[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    elif how == "chunk_size":
        offset = rng.choice([4, 16, 40])
        b[offset : offset + 4] = struct.pack("<I", rng.choice([0, 1, 2**31, 2**32 - 1]))
    elif how == "garbage":
        b = b[:12] + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 4096)))
    else:
        cut = rng.randrange(44, len(b))
        b = b[:cut] + b[44:cut]
    return bytes(b)


def _special_audio(workdir: Path, rng: random.Random) -> list[tuple[str, Path]]:
    import soundfile as sf

    out = []
    x = tone(0.3, RATE)
    for name, samples, subtype in [
        ("nan", np.where(np.arange(x.size) == 50, np.nan, x), "DOUBLE"),
        ("huge", np.where(np.arange(x.size) == 50, 1e300, x), "DOUBLE"),
        ("silent", np.zeros_like(x), "PCM_16"),
        ("one_sample", x[:1], "PCM_16"),
        ("dc", np.full_like(x, 0.5), "PCM_16"),
    ]:
        path = workdir / f"special_{name}.wav"
        sf.write(path, samples, RATE, subtype=subtype)
        out.append((f"audio:{name}", path))
    return out


def _model_edits(rng: random.Random):
    values = [
        10**9,
        -5,
        0,
        2**63,
        float("inf"),
        float("nan"),
        "x",
        [1],
        {"a": 1},
        None,
        True,
        1.5,
        10**6,
    ]
    keys = [
        ("config", k)
        for k in (
            "sample_rate",
            "n_samples",
            "hop_samples",
            "overlap_samples",
            "n_modes",
            "hidden",
            "layers",
            "gain",
            "offset",
            "continuation_samples",
            "tail_modes",
            "continuation_switch_s",
        )
    ]
    keys += [
        ("info", "source"),
        ("info", "fit"),
        ("info", "history"),
        ("info", "source", "path"),
        ("info", "source", "start_s"),
        ("info", "source", "channel"),
        ("info", "fit", "snr_db"),
        ("info", "fit", "identification"),
    ]
    path = rng.choice(keys)
    value = rng.choice(values)

    def edit(meta):
        node = meta
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = value

    return f"{'.'.join(path)}={str(value)[:12]}", edit


def _tensor_edit(rng: random.Random):
    how = rng.choice(["shape", "dtype", "nan", "drop", "extra", "huge_shape"])

    def edit(tensors):
        name = rng.choice(sorted(tensors))
        if how == "shape":
            tensors[name] = torch.zeros(
                tuple(s + 1 for s in tensors[name].shape) or (2,), dtype=tensors[name].dtype
            )
        elif how == "dtype":
            tensors[name] = tensors[name].to(torch.int64)
        elif how == "nan":
            t = tensors[name].clone().reshape(-1)
            if t.numel() and t.is_floating_point():
                t[0] = float("nan")
            tensors[name] = t.reshape(tensors[name].shape)
        elif how == "drop":
            del tensors[name]
        elif how == "extra":
            tensors["evil"] = torch.zeros(3)
        else:
            tensors[name] = torch.zeros(1).expand(1 << 20)  # a view: its storage is one float

    return how, edit


def crafted(model: Path, out: Path, edit_meta=None, edit_tensors=None) -> Path:
    """A copy of ``model`` with its metadata or tensors edited and its checksum recomputed (what an
    attacker can do: the checksum is integrity, not trust); returns ``out``."""
    payload = torch.load(model, weights_only=True)
    meta = json.loads(payload["meta_json"])
    if edit_meta:
        edit_meta(meta)
    if edit_tensors:
        edit_tensors(payload["tensors"])
    payload["meta_json"] = json.dumps(meta)  # allow_nan: "Infinity" is what a crafted file may hold
    payload["sha256"] = _digest(payload["meta_json"], payload["tensors"])
    torch.save(payload, out)
    return out


def make_cases(
    workdir: Path, model: Path, seed: int = 0, n_audio: int = 8, n_model: int = 8, n_args: int = 10
) -> list[Case]:
    """The cases, their inputs written into ``workdir``; ``model`` is a small fitted model file."""
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    clean = pcm16_wav_bytes(tone(0.3, RATE, seed=seed), RATE)
    audio = [(f"audio:{k}", workdir / f"mut{k}.wav") for k in range(n_audio)]
    for _, path in audio:
        path.write_bytes(_mutate_bytes(clean, rng))
    audio += _special_audio(workdir, rng)
    for name, path in audio:
        command = rng.choice(["fit", "fill", "eval-fill"])
        args = {
            "fit": ["fit", path, "-o", workdir / f"{path.stem}.sonode", *TINY],
            "fill": [
                "fill",
                path,
                "--gap",
                "0.1",
                "0.11",
                "--method",
                "janssen",
                "-o",
                workdir / f"{path.stem}.filled.wav",
                "--quiet",
            ],
            "eval-fill": [
                "eval",
                path,
                "--task",
                "fill",
                "--positions",
                "1",
                "-o",
                workdir / f"ev_{path.stem}",
                "--quiet",
                "--force",
            ],
        }[command]
        cases.append(Case("audio", f"{name} {command}", [str(a) for a in args]))
    model_bytes = model.read_bytes()
    for k in range(n_model):
        out = workdir / f"model{k}.sonode"
        how = rng.choice(["bytes", "meta", "tensors"])
        if how == "bytes":
            out.write_bytes(_mutate_bytes(model_bytes, rng))
            label = "bytes"
        elif how == "meta":
            label, edit = _model_edits(rng)
            crafted(model, out, edit_meta=edit)
        else:
            label, edit = _tensor_edit(rng)
            crafted(model, out, edit_tensors=edit)
        command = rng.choice(["info", "render", "upsample", "plot", "extrapolate"])
        args = {
            "info": ["info", out],
            "render": ["render", out, "-o", workdir / f"r{k}.wav", "--quiet"],
            "upsample": [
                "upsample",
                out,
                "--rate",
                "32000",
                "-o",
                workdir / f"u{k}.wav",
                "--quiet",
            ],
            "plot": ["plot", out, "-o", workdir / f"p{k}.png"],
            "extrapolate": [
                "extrapolate",
                out,
                "--seconds",
                "0.1",
                "-o",
                workdir / f"e{k}.wav",
                "--quiet",
            ],
        }[command]
        cases.append(Case("model", f"model:{how}:{label} {command}", [str(a) for a in args]))
    good_clip = workdir / "good.wav"
    good_clip.write_bytes(clean)
    option_table = [
        ("render", ["render", model, "-o", workdir / "ar.wav"], ["--rate", "--start", "--end"]),
        ("extrapolate", ["extrapolate", model, "-o", workdir / "ae.wav"], ["--seconds", "--rate"]),
        ("upsample", ["upsample", model, "-o", workdir / "au.wav"], ["--rate"]),
        (
            "fit",
            ["fit", good_clip, "-o", workdir / "af.sonode", *TINY],
            [
                "--rate",
                "--start",
                "--duration",
                "--latent-dim",
                "--hop",
                "--overlap",
                "--hidden",
                "--lp-order",
                "--threads",
                "--target-snr",
                "--seed",
                "--batch-segments",
                "--checkpoint-every",
                "--continuation-samples",
            ],
        ),
        (
            "fill",
            ["fill", good_clip, "-o", workdir / "afill.wav", "--gap", "0.1", "0.11"],
            ["--context", "--budget-s", "--threads", "--seed"],
        ),
        (
            "eval",
            ["eval", good_clip, "-o", workdir / "aev", "--force"],
            ["--rate", "--budget", "--horizon-s", "--duration", "--threads", "--positions"],
        ),
    ]
    for _ in range(n_args):
        command, base, options = rng.choice(option_table)
        option, value = rng.choice(options), rng.choice(ABSURD_NUMBERS)
        args = [str(a) for a in base] + [option, value]
        if command == "eval" and value not in ("", "abc"):
            args += ["--budget", "5"] if option != "--budget" else []
        cases.append(Case("args", f"args:{command} {option} {value!r}", args))
    fifo = workdir / "pipe.wav"
    if not fifo.exists():
        os.mkfifo(fifo)
    cases.append(
        Case("fifo", "fifo:render -o", ["render", str(model), "-o", str(fifo)], codes=(2,))
    )
    cases.append(
        Case(
            "fifo",
            "fifo:upsample in",
            ["upsample", str(fifo), "--rate", "32000", "-o", str(workdir / "fu.wav")],
            codes=(2,),
        )
    )
    cases.append(
        Case(
            "fifo",
            "fifo:fill -o",
            ["fill", str(good_clip), "--gap", "0.1", "0.11", "-o", str(fifo)],
            codes=(2,),
        )
    )
    cases.append(
        Case(
            "readonly",
            "readonly:render",
            ["render", str(model), "-o", "{ro}/r.wav"],
            codes=(2,),
            needs=["tmpfs-ro"],
        )
    )
    cases.append(
        Case(
            "full",
            "full:render",
            ["render", str(model), "--end", "30", "-o", "{full}/r.wav"],
            codes=(2,),
            needs=["tmpfs-full"],
        )
    )
    return cases


def run_case(case: Case, timeout_s: float) -> tuple[Outcome | None, str]:
    """Run one case: mount the 64 KiB tmpfs folders it needs (remounted read-only for "tmpfs-ro"),
    put their paths for "{ro}" / "{full}" in its arguments, run `sonode` under the harness of
    tests/hostile_support.py, and unmount.

    Returns:
        (the outcome, ""), or (None, why) when a tmpfs cannot be mounted here (it needs root).
    """
    args, mounts = list(case.args), []
    try:
        for need in case.needs:
            point, why = small_tmpfs("64k")
            if point is None:
                return None, why
            mounts.append(point)
            if need == "tmpfs-ro":
                subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
            args = [a.replace("{ro}" if need == "tmpfs-ro" else "{full}", str(point)) for a in args]
        return run(args, timeout_s=timeout_s), ""
    finally:
        for point in mounts:
            unmount(point)

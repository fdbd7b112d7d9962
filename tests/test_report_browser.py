"""The listening report in a real browser: Debian's Chromium, headless, driven by Playwright.

Playwright (PyPI) only drives the browser; it downloads nothing here (the system Chromium is given
as its executable; `playwright install` is never run). Three clips (a decaying note, speech and a
held-out sustained note: the page's code is the same for every clip, and each costs a fit) get a
short fit (a few steps, 1.2 s at 8 kHz, upsampled to the file's 48 kHz), then `sonode report`; the
page is opened from its folder (file://) and checked: every player loads and decodes, every picture
loads, no console error, no request outside the folder, the A/B switch keeps the playback position
within 50 ms, and the screenshot is not blank. Without Chromium or Playwright the tests are skipped
with that reason (CI installs both, see .ci/run).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sonode.cli import main
from tests.hostile_support import HANG_S

DATA = Path(__file__).resolve().parents[1] / "data"
CLIPS = [
    DATA / "decaying_steelguitar_C4.wav",
    DATA / "speech_front_left.wav",
    DATA / "more" / "sustained_flute_F4.wav",
]
CHROMIUM = (
    os.environ.get("SONODE_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
)
# The flags of a clean, quiet, offline browser: nothing of its own goes to the network.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
SWITCH_TOLERANCE_S = 0.05

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')"
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"
)


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module (Playwright gives it a fresh temporary profile folder)."""
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()


def _report(clip: Path, folder: Path) -> Path:
    """A short fit of ``clip`` saved as a model, then `sonode report MODEL -o folder`; returns index.html."""
    import sonode

    fitted = sonode.fit(
        str(clip), rate=8000, duration_s=1.2, steps=2, latent_dim=32, lp_order=128, hidden=16
    )
    model = folder.parent / f"{clip.stem}.sonode"
    fitted.save(model)
    result = CliRunner().invoke(
        main,
        [
            "report",
            str(model),
            "-o",
            str(folder),
            "--quiet",
            "--horizon-s",
            "0.2",
            "--context-s",
            "0.2",
            "--gap-ms",
            "20",
        ],
    )
    assert result.exit_code == 0, result.output
    return folder / "index.html"


_AUDIO_STATE = """() => [...document.querySelectorAll('audio')].map(a => ({src: a.currentSrc, duration: a.duration,
    error: a.error && a.error.code, ready: a.readyState}))"""

_SWITCH = """async (gid) => {
  const g = window.sonodeReport.groups.find(g => g.el.id === gid);
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  // an event, or false after HANG_MS (a hang net: a page that never fires it fails instead of
  // hanging; never a bound on speed, the CI machine is loaded)
  const HANG_MS = 120000;
  const wait = (a, ev) => Promise.race([new Promise(r => a.addEventListener(ev, () => r(true), {once: true})),
                                        sleep(HANG_MS).then(() => false)]);
  // a condition, polled, or false after HANG_MS: playback starts when the browser gets to it
  const until = async (ok) => {
    for (let k = 0; k < HANG_MS / 20 && !ok(); k++) await sleep(20);
    return ok();
  };
  const out = {};
  g.play.click();                                   // the page's Play button: the sonode version plays
  const from = g.audios[g.cur];
  out.playing_before = !from.paused;
  await until(() => from.currentTime > 0.05);      // it has played a little
  const seeked = wait(g.audios[g.prev], 'seeked');
  const t0 = from.currentTime;
  g.swap.click();                                   // A/B: switch while playing
  const to = g.audios[g.cur];
  // where the page set the other version playing (the media clock moves on once it plays, at the
  // machine's pace, before the 'seeked' event is handled)
  out.t1 = to.currentTime; out.playing_delta = Math.abs(out.t1 - t0); out.t0 = t0;
  out.seeked = await seeked;
  out.from_paused = from.paused;
  out.advanced = await until(() => to.currentTime - t0 > 0.05) && to.currentTime - t0;
  out.still_playing = !to.paused;
  to.pause();
  to.currentTime = 0.3;                             // paused: switch by key binding
  out.seeked_paused = await wait(to, 'seeked');
  const back = g.audios[g.prev];
  const seeked2 = wait(back, 'seeked');
  document.dispatchEvent(new KeyboardEvent('keydown', {key: 'x'}));
  out.seeked_back = await seeked2;
  out.paused_delta = Math.abs(back.currentTime - 0.3);
  out.switched_back = g.audios[g.cur] === back;
  return out;
}"""


@pytest.mark.parametrize("clip", CLIPS, ids=[c.stem for c in CLIPS])
def test_report_in_chromium(clip, tmp_path, browser):
    from PIL import Image

    page_path = _report(clip, tmp_path / "report")
    folder_uri = page_path.parent.resolve().as_uri() + "/"
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(HANG_S * 1000)  # hang nets only (goto, waits): load must not fail it
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        page.wait_for_function(
            "[...document.querySelectorAll('audio')].every(a => a.readyState >= 2 || a.error)",
            timeout=HANG_S * 1000,  # a hang net only
        )
        audio = page.evaluate(_AUDIO_STATE)
        assert len(audio) >= 10
        for a in audio:
            assert a["error"] is None and a["duration"] > 0 and a["ready"] >= 2, a
        images = page.evaluate(
            "[...document.images].map(i => [i.currentSrc, i.complete, i.naturalWidth])"
        )
        assert len(images) >= 4
        assert all(complete and width > 0 for _, complete, width in images), images
        groups = page.evaluate("window.sonodeReport.groups.map(g => g.el.id)")
        upsampling = next(g for g in groups if g.endswith("-upsampling"))
        switch = page.evaluate(_SWITCH, upsampling)
        assert switch["playing_before"] and switch["from_paused"] and switch["still_playing"], (
            switch
        )
        assert switch["playing_delta"] < SWITCH_TOLERANCE_S, switch
        assert switch["seeked"] and switch["seeked_paused"] and switch["seeked_back"], switch
        assert switch["advanced"] > 0.05, switch  # it kept playing from there
        assert switch["switched_back"] and switch["paused_delta"] < SWITCH_TOLERANCE_S, switch
        labels = page.evaluate("""[...document.querySelectorAll('audio')].map(a =>
            (document.getElementById(a.getAttribute('aria-labelledby')) || {}).textContent || '')""")
        assert all(label.strip() for label in labels)
        shot = np.asarray(
            Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("L"), dtype=float
        )
        assert shot.std() > 20, "the screenshot is blank"
    finally:
        page.close()
    assert not errors, errors
    outside = [url for url in requests if not url.startswith(folder_uri)]
    assert not outside, outside
    assert any(url.endswith(".flac") for url in requests) and any(
        url.endswith(".png") for url in requests
    )


def test_report_without_javascript(tmp_path, browser):
    """Without JavaScript: the native players load and the pictures show; the A/B control stays hidden."""
    page_path = _report(CLIPS[0], tmp_path / "report")
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(HANG_S * 1000)
    try:
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        players = page.locator("audio[controls]")
        assert players.count() >= 10 and players.first.is_visible()
        assert page.locator(".ab").count() >= 3 and not page.locator(".ab").first.is_visible()
        assert all(
            width > 0 for width in page.evaluate("[...document.images].map(i => i.naturalWidth)")
        )
    finally:
        context.close()

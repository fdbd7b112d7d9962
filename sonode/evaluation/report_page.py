"""The listening report's HTML: one self-contained page that refers only to files beside it.

No server, no network, no script or style from elsewhere: CSS and JavaScript are inline. Without
JavaScript the page is native ``<audio controls>`` players, pictures and tables. With it, each
group of versions gets an A/B control: one player switches between versions at the same playback
position, loudness-matched (gains computed in Python, applied as the element's volume), with a
loop over a region (e.g. around a gap) and key bindings. Everything is reachable by keyboard and
every player is labelled for screen readers.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from sonode.io.fileutil import markdown_marker

KEYS_HELP = (
    "1–9 pick a version · X switch between the last two (A/B) · P play/pause · "
    "L next loop region · M loudness matching on/off — keys act on the group you last used"
)

_CSS = """
:root{--fg:#1d1d1f;--muted:#5f6368;--line:#d8dbe0;--bg:#fff;--panel:#f5f6f8;--accent:#c2410c;--truth:#111;
--sonode:#c2410c;--baseline:#1d4ed8;--input:#111}
*{box-sizing:border-box}body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);
background:var(--bg);margin:0}main{max-width:1100px;margin:0 auto;padding:1.2rem 1.2rem 3rem}
h1{font-size:1.55rem;margin:.2rem 0}h2{font-size:1.3rem;margin:2.2rem 0 .4rem;border-top:2px solid var(--line);
padding-top:1rem}h3{font-size:1.08rem;margin:1.4rem 0 .4rem}p.lead,p.help{color:var(--muted);margin:.2rem 0}
nav ul{display:flex;flex-wrap:wrap;gap:.4rem 1rem;padding:0;list-style:none}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:.3rem 0}dl.facts dt{color:var(--muted)}
dl.facts dd{margin:0}.group{background:var(--panel);border:1px solid var(--line);border-radius:8px;
padding:.3rem 1rem 1rem;margin:1rem 0}
.ab{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem .8rem;margin:.4rem 0 .7rem;padding:.5rem;
background:#fff;border:1px solid var(--line);border-radius:6px}
.ab[hidden]{display:none}.versions{display:flex;flex-wrap:wrap;gap:.3rem}
button,select{font:inherit;border:1px solid #9aa0a6;border-radius:5px;background:#fff;padding:.25rem .6rem;cursor:pointer}
button[aria-checked=true]{background:var(--fg);color:#fff;border-color:var(--fg)}
button:focus-visible,select:focus-visible,input:focus-visible,audio:focus-visible,a:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
button.play{min-width:5.5rem;font-weight:600}output.now{font-variant-numeric:tabular-nums;color:var(--muted);min-width:4.5rem}
ul.players{list-style:none;padding:0;margin:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:.5rem}
ul.players li{background:#fff;border:1px solid var(--line);border-left:5px solid var(--baseline);border-radius:6px;padding:.4rem .6rem}
ul.players li.role-truth,ul.players li.role-input{border-left-color:var(--truth)}ul.players li.role-sonode{border-left-color:var(--sonode)}
ul.players li.current{box-shadow:0 0 0 2px var(--fg)}.vlabel{font-weight:600}.note{color:var(--muted);font-size:.88em}
audio{width:100%;height:36px;margin-top:.2rem}figure{margin:.8rem 0}figure img{max-width:100%;height:auto;
border:1px solid var(--line);border-radius:4px;background:#fff}figcaption{color:var(--muted);font-size:.9em}
table{border-collapse:collapse;margin:.5rem 0;font-size:.93em}th,td{border-bottom:1px solid var(--line);
padding:.25rem .7rem;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.win{color:#15803d;font-weight:700}td.loss{color:#b91c1c}code{background:var(--panel);padding:.1rem .3rem;border-radius:3px;
word-break:break-all}.wins{font-weight:600}
"""

_JS = r"""
(function(){
'use strict';
var groups=[],active=null;
function fmt(t){return (isFinite(t)?t:0).toFixed(2)+' s';}
function setup(el){
  var g={el:el,audios:[].slice.call(el.querySelectorAll('audio')),buttons:[].slice.call(el.querySelectorAll('.versions button')),
    play:el.querySelector('button.play'),swap:el.querySelector('button.swap'),loop:el.querySelector('select.loop'),
    match:el.querySelector('input.match'),now:el.querySelector('output.now'),items:[].slice.call(el.querySelectorAll('ul.players li')),
    cur:+el.dataset.current||0,prev:+el.dataset.previous||0,switching:false};
  g.audios.forEach(function(a,i){
    a.addEventListener('play',function(){if(g.switching)return;
      if(i!==g.cur){g.prev=g.cur;g.cur=i;}
      // one sound at a time on the page: whatever else plays (this group or another) stops
      groups.forEach(function(o){o.audios.forEach(function(b){if(b!==a&&!b.paused)b.pause();});});
      active=g;show(g);});
    a.addEventListener('pause',function(){show(g);});
  });
  g.buttons.forEach(function(b,i){b.addEventListener('click',function(){select(g,i);active=g;});});
  g.play.addEventListener('click',function(){toggle(g);active=g;});
  g.swap.addEventListener('click',function(){select(g,g.prev);active=g;});
  if(g.loop)g.loop.addEventListener('change',function(){var r=range(g);if(r)cur(g).currentTime=r[0];active=g;});
  g.match.addEventListener('change',function(){gains(g);active=g;});
  el.addEventListener('focusin',function(){active=g;});
  el.querySelector('.ab').hidden=false;
  gains(g);show(g);groups.push(g);
}
function cur(g){return g.audios[g.cur];}
function range(g){if(!g.loop||!g.loop.value)return null;var p=g.loop.value.split(',');return [+p[0],+p[1]];}
function gains(g){g.audios.forEach(function(a){a.volume=g.match.checked?Math.min(1,+a.dataset.gain||1):1;});}
function select(g,i){
  if(i===g.cur||i<0||i>=g.audios.length)return;
  var from=cur(g),to=g.audios[i],t=from.currentTime,playing=!from.paused;
  g.switching=true;from.pause();to.currentTime=t;gains(g);
  g.prev=g.cur;g.cur=i;
  if(playing){var p=to.play();if(p&&p.catch)p.catch(function(){});}
  g.switching=false;show(g);
}
function toggle(g){var a=cur(g);if(a.paused){var r=range(g);if(r&&(a.currentTime<r[0]||a.currentTime>=r[1]))a.currentTime=r[0];
  var p=a.play();if(p&&p.catch)p.catch(function(){});}else a.pause();}
function show(g){
  g.buttons.forEach(function(b,i){b.setAttribute('aria-checked',i===g.cur?'true':'false');b.tabIndex=i===g.cur?0:-1;});
  g.items.forEach(function(li,i){li.classList.toggle('current',i===g.cur);});
  var playing=!cur(g).paused;g.play.textContent=playing?'❚❚ Pause':'▶ Play';g.play.setAttribute('aria-pressed',playing?'true':'false');
  g.swap.textContent='A/B: '+g.buttons[g.cur].dataset.label+' ⇄ '+g.buttons[g.prev].dataset.label;
  g.now.value=fmt(cur(g).currentTime);
}
function tick(){groups.forEach(function(g){var a=cur(g),r=range(g);
  if(r&&!a.paused&&(a.currentTime>=r[1]||a.currentTime<r[0]-0.05))a.currentTime=r[0];
  if(!a.paused)g.now.value=fmt(a.currentTime);});}
document.addEventListener('keydown',function(e){
  if(e.ctrlKey||e.metaKey||e.altKey)return;var t=e.target&&e.target.tagName;
  if(t==='INPUT'||t==='SELECT'||t==='TEXTAREA')return;
  var g=active||groups[0];if(!g)return;var k=e.key.toLowerCase();
  if(k>='1'&&k<='9'){select(g,+k-1);}
  else if(k==='x'||k==='b'){select(g,g.prev);}
  else if(k==='p'||k==='k'){toggle(g);}
  else if(k==='l'&&g.loop){g.loop.selectedIndex=(g.loop.selectedIndex+1)%g.loop.options.length;g.loop.dispatchEvent(new Event('change'));}
  else if(k==='m'){g.match.checked=!g.match.checked;gains(g);}
  else if((k==='arrowright'||k==='arrowleft')&&e.target.getAttribute&&e.target.getAttribute('role')==='radio'){
    select(g,(g.cur+(k==='arrowright'?1:g.audios.length-1))%g.audios.length);g.buttons[g.cur].focus();}
  else return;
  e.preventDefault();
});
[].forEach.call(document.querySelectorAll('section.group'),setup);
setInterval(tick,15);
window.sonodeReport={groups:groups,select:select};
})();
"""


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _figures(figures: list[dict[str, Any]]) -> str:
    return "".join(
        f'<figure><img src="{escape(f["src"])}" width="{f["width"]}" height="{f["height"]}" '
        f'alt="{escape(f["alt"])}"><figcaption>{escape(f.get("caption") or f["alt"])}</figcaption></figure>'
        for f in figures
    )


def _group(cid: str, g: dict[str, Any]) -> str:
    gid = f"{cid}-{g['id']}"
    versions = g["versions"]
    current = next((i for i, v in enumerate(versions) if v["role"] == "sonode"), 0)
    previous = next(
        (i for i, v in enumerate(versions) if v["role"] == "baseline"),
        0 if current else min(1, len(versions) - 1),
    )
    buttons = "".join(
        f'<button type="button" role="radio" aria-checked="{str(i == current).lower()}" data-label="'
        f'{escape(v["label"])}" aria-label="Hear {escape(v["label"])} (key {i + 1})">{i + 1} · '
        f"{escape(v['label'])}</button>"
        for i, v in enumerate(versions)
    )
    loops = "".join(
        f'<option value="{lp["start_s"]:.3f},{lp["end_s"]:.3f}">{escape(lp["label"])} '
        f"({lp['start_s']:.2f}–{lp['end_s']:.2f} s)</option>"
        for lp in g.get("loops", [])
    )
    loop = (
        (
            f'<label>Loop <select class="loop" aria-label="Loop a region of {escape(g["title"])}">'
            f'<option value="">off</option>{loops}</select></label>'
        )
        if loops
        else ""
    )
    control = (
        f'<div class="ab" hidden role="group" aria-label="A/B listening: {escape(g["title"])}">'
        f'<div class="versions" role="radiogroup" aria-label="Version to hear">{buttons}</div>'
        f'<button type="button" class="play" aria-pressed="false">▶ Play</button>'
        f'<button type="button" class="swap" title="key X">A/B</button>{loop}'
        f'<label><input type="checkbox" class="match" checked> loudness-matched</label>'
        f'<output class="now" aria-label="playback position">0.00 s</output></div>'
    )
    items = []
    for i, v in enumerate(versions):
        vid = f"{gid}-v{i}"
        full = f' · <a href="{escape(v["full"])}">full file</a>' if v.get("full") else ""
        items.append(
            f'<li class="role-{escape(v["role"])}"><span class="vlabel" id="{vid}">{i + 1} · {escape(v["label"])}'
            f'</span> <span class="note">{escape(v.get("note", ""))}{full}</span>'
            f'<audio controls preload="auto" src="{escape(v["src"])}" data-gain="{v["gain"]:.4f}" '
            f'aria-labelledby="{vid}" aria-describedby="{gid}-h"></audio></li>'
        )
    excerpt = (
        (
            f'<p class="help">Excerpt from {g["offset_s"]:.2f} s ({versions[0]["duration_s"]:.2f} s); '
            "full files are linked.</p>"
        )
        if any(v.get("full") for v in versions)
        else ""
    )
    return (
        f'<section class="group" id="{gid}" aria-labelledby="{gid}-h" data-current="{current}" '
        f'data-previous="{previous}"><h3 id="{gid}-h">{escape(g["title"])}</h3>{control}{excerpt}'
        + (f'<p class="help">{escape(g["note"])}</p>' if g.get("note") else "")
        + f'<ul class="players">{"".join(items)}</ul>{_figures(g.get("figures", []))}</section>'
    )


def _numbers(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    decided = [r for r in rows if r["win"] is not None]
    wins = sum(1 for r in decided if r["win"])
    ties = sum(
        1
        for r in rows
        if r["win"] is None and r["sonode"] is not None and r["baseline_value"] is not None
    )
    tied = f" ({ties} tied)" if ties else ""
    body = "".join(
        f"<tr><td>{escape(r['task'])}</td><td>{escape(r['metric'])}{' ↑' if r['higher_is_better'] else ' ↓'}</td>"
        f'<td class="num">{_num(r["sonode"])}</td><td>{escape(r["baseline"])}</td>'
        f'<td class="num">{_num(r["baseline_value"])}</td>'
        f'<td class="{"win" if r["win"] else ("loss" if r["win"] is False else "")}">'
        f"{'sonode' if r['win'] else ('baseline' if r['win'] is False else 'tie')}</td></tr>"
        for r in rows
    )
    return (
        f'<h3>Numbers</h3><p class="wins">sonode is better in {wins} of {len(decided)} comparisons{tied}.</p>'
        '<table><thead><tr><th scope="col">task</th><th scope="col">metric (↑ higher / ↓ lower is better)</th>'
        '<th scope="col">sonode</th><th scope="col">baseline</th><th scope="col">baseline value</th>'
        f'<th scope="col">better</th></tr></thead><tbody>{body}</tbody></table>'
    )


def _section(s: dict[str, Any]) -> str:
    cid = s["id"]
    facts = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in s.get("facts", []))
    groups = "".join(_group(cid, g) for g in s["groups"])
    return (
        f'<section class="clip" id="{cid}" aria-labelledby="{cid}-title"><h2 id="{cid}-title">{escape(s["title"])}'
        f'</h2><dl class="facts">{facts}</dl>{groups}<h3>Model</h3>{_figures(s.get("figures", []))}'
        f"{_numbers(s.get('numbers', []))}</section>"
    )


def _run(run: dict[str, Any]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in run.get("versions", {}).items())
    options = "".join(
        f"<tr><td>{escape(str(k))}</td><td>{escape(json.dumps(v))}</td></tr>"
        for k, v in run.get("options", {}).items()
    )
    times = "".join(
        f"<tr><td>{escape(clip)}</td>"
        + "".join(
            f'<td class="num">{_num(t.get(k), 1)}</td>'
            for k in ("fit_s", "report_s", "fit_cpu_s", "report_cpu_s")
        )
        + "</tr>"
        for clip, t in run.get("wall_times", {}).items()
    )
    return (
        f'<section id="run" aria-labelledby="run-title"><h2 id="run-title">What was run</h2>'
        f"<p><code>{escape(run.get('command', ''))}</code></p><p>{escape(versions)}</p>"
        f"<table><caption>options</caption><tbody>{options}</tbody></table>"
        '<table><caption>times (seconds; wall and CPU)</caption><thead><tr><th scope="col">clip</th><th scope="col">fit</th>'
        f'<th scope="col">report</th><th scope="col">fit CPU</th><th scope="col">report CPU</th></tr></thead><tbody>{times}</tbody></table>'
        f"<p>total {_num(run.get('total_s'), 1)} s</p></section>"
    )


def render_page(title: str, sections: list[dict[str, Any]], run: dict[str, Any]) -> str:
    """The whole page as text: the sonode marker comment, then the HTML document."""
    nav = "".join(f'<li><a href="#{s["id"]}">{escape(s["title"])}</a></li>' for s in sections)
    return (
        markdown_marker() + '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>"
        f'<h1>{escape(title)}</h1><p class="lead">Listen side by side: pick a version, play, and switch '
        "with X — the switch keeps the playback position; versions are loudness-matched.</p>"
        f'<p class="help">Keys: {escape(KEYS_HELP)}.</p>'
        f'<nav aria-label="Clips"><ul>{nav}<li><a href="#run">What was run</a></li></ul></nav>'
        + "".join(_section(s) for s in sections)
        + _run(run)
        + f"</main><script>{_JS}</script></body></html>\n"
    )

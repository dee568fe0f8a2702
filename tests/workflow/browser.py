"""The report as a user's browser shows it: headless Chromium (Debian's package, installed when missing and
this is root, as in CI) renders a page; its DOM text, and the layout of its tables measured in the page."""

from __future__ import annotations

import html as htmllib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

#: the page's layout, measured in the page once it has rendered, written into an element of its own
MEASURE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const boxes = (selector) => [...document.querySelectorAll(selector)].map((e) => {
    const r = e.getBoundingClientRect(), p = e.parentElement.getBoundingClientRect();
    const rows = [...e.querySelectorAll("tr")].map((tr) => tr.getBoundingClientRect().height);
    return {left: r.left, right: r.right, parent_right: p.right, width: r.width,
            max_row: rows.length ? Math.max(...rows) : 0};
  });
  const nav = document.querySelector("nav");
  const out = {width: document.documentElement.clientWidth, scroll_width: document.documentElement.scrollWidth,
               nav_right: nav ? nav.getBoundingClientRect().right : 0,
               tables: boxes("table.ctpatch-table"), blocks: boxes("pre.literal-block")};
  const el = document.createElement("div");
  el.id = "ctpatch-measure";
  el.textContent = JSON.stringify(out);
  document.body.appendChild(el);
}, 500));
</script>"""


def chromium() -> str:
    """The ``chromium`` binary; installed from Debian's package when missing and this is root (as CI is)."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("headless Chromium needed: apt-get install chromium (as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True, env=env, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "chromium"], check=True, capture_output=True, env=env, timeout=900
    )
    return shutil.which("chromium")


def dump_dom(page: Path, width: int = 1280, height: int = 900) -> str:
    """The DOM of ``page`` after Chromium ran its scripts, in a window of ``width`` x ``height`` pixels."""
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--window-size={width},{height}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout


def rendered_text(report: Path) -> str:
    """The text of the report's DOM after Chromium ran its scripts (markup and scripts removed)."""
    dom = dump_dom(report)
    body = dom[dom.find("<body") :]
    body = re.sub(r"<script.*?</script>", " ", body, flags=re.S)
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", body)))


def headings(report: Path) -> list[str]:
    """The section headings of the rendered report, in order."""
    dom = re.sub(r"<script.*?</script>", " ", dump_dom(report), flags=re.S)  # the page, not its data
    return [htmllib.unescape(h).strip() for h in re.findall(r"<h[1-3][^>]*>([^<]*)</h[1-3]>", dom)]


def layout(report: Path, tmp: Path, width: int = 1280) -> dict:
    """The rendered report's width, the right edge of its menu (``nav``), and per table
    (``table.ctpatch-table``) and text block (``pre``) its left and right edges, its parent's right edge and its
    tallest row, measured in Chromium (a copy of the page with :data:`MEASURE` added)."""
    text = report.read_text()
    end = text.rfind("</body>")
    copy = tmp / f"measured-{report.name}"
    copy.write_text(text[:end] + MEASURE + text[end:])
    found = re.search(r'id="ctpatch-measure">([^<]*)<', dump_dom(copy, width))
    assert found, "the measuring script did not run"
    return json.loads(htmllib.unescape(found.group(1)))


def assert_report_layout(report, tmp_path) -> None:
    """The report's headings are headings (issue 22: "Plan ----" was text of the paragraph above it) and its
    tables stay within the page with one line per row (a 375-character cell made rows ~250 px tall): not past
    its right edge, and not pushed left under the menu (a text column wider than the room beside the menu)."""
    names = headings(report)
    assert [h for h in names if h in ("Plan", "Verification", "Config")] == ["Plan", "Verification", "Config"], names
    assert not re.search(r"Plan\s*-{4}", rendered_text(report))
    measured = layout(report, tmp_path)
    assert measured["tables"] and measured["scroll_width"] <= measured["width"], measured
    for box in measured["tables"] + measured["blocks"]:
        assert box["right"] <= box["parent_right"] + 1 and box["right"] <= measured["width"], measured
        assert box["left"] >= measured["nav_right"] - 1, measured
    for box in measured["tables"]:
        assert box["max_row"] <= 40, measured  # one line of text per row

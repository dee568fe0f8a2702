"""`snakemake --report`: a self-contained HTML with the tables and pictures, checked by parsing it and by
rendering it in headless Chromium (the tables are in the page, not only downloads)."""

from __future__ import annotations

import base64
import html as htmllib
import io
import os
import re
import shutil
import subprocess

import pandas as pd
import pytest

PNG = b"\x89PNG\r\n\x1a\n"


def embedded_files(html: str) -> dict[str, bytes]:
    """filename -> decoded bytes of every data URI the report embeds."""
    out = {}
    for name, payload in re.findall(
        r'"data_uri": "data:[^";]*(?:;[^";,]*)*?;filename=([^;"]+);base64,([A-Za-z0-9+/=]+)"', html
    ):
        out[name] = base64.b64decode(payload)
    return out


@pytest.mark.slow
@pytest.mark.mpi
def test_report_holds_tables_and_pictures(small_luna_run):
    tmp_path = small_luna_run
    html = (tmp_path / "report.html").read_text()
    files = embedded_files(html)
    pictures = {n for n, data in files.items() if data.startswith(PNG)}
    assert {
        "subset0.nodules.png",
        "subset0.negatives.png",
        "subset1.nodules.png",
        "subset1.negatives.png",
        "subset0.png",
        "subset1.png",
    } <= pictures

    accounting = pd.read_csv(io.BytesIO(files["nodule_accounting.tsv"]), sep="\t")
    annotations = pd.read_csv(tmp_path / "results/demo/luna16/CSVFILES/annotations.csv")
    assert len(accounting) == len(annotations) > 0
    assert set(accounting["status"]) == {"patched"}
    assert (accounting["patches"] == 57).all()

    verification = pd.read_csv(io.BytesIO(files["verification.tsv"]), sep="\t")
    assert sorted(verification["group"]) == ["subset0", "subset1"] and verification["ok"].all()
    assert b"shifts_per_node" not in files["config.yaml"] and b"stride: 8" in files["config.yaml"]
    plan = files["plan.txt"].decode()
    assert "subset0" in plan and "total" in plan and "peak memory" in plan
    for category in ("Nodule accounting", "Verification", "LUNA16 patches", "Config", "Plan"):
        assert category in html


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


def rendered_text(report) -> str:
    """The text of the report's DOM after Chromium ran its scripts (markup and scripts removed)."""
    dom = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    body = dom[dom.find("<body") :]
    body = re.sub(r"<script.*?</script>", " ", body, flags=re.S)
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", body)))


@pytest.mark.slow
@pytest.mark.mpi
def test_report_page_shows_its_tables_in_a_browser(small_luna_run):
    text = rendered_text(small_luna_run / "report.html")
    report = small_luna_run / "results/luna16/report"
    accounting = pd.read_csv(report / "nodule_accounting.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert len(accounting) == 3
    for _, row in accounting.iterrows():  # every accounting row, cell by cell, in the rendered page
        assert " ".join(c for c in row.tolist() if c) in text, row.tolist()
    verification = pd.read_csv(report / "verification.tsv", sep="\t", dtype=str, keep_default_na=False)
    for _, row in verification.drop(columns="reader").iterrows():  # the figures, cell by cell
        assert " ".join(c for c in row.tolist() if c) in text, row.tolist()
    assert "IMPORT hdf5plugin BEFORE READING" in text  # the reader column, in the page as well
    plan = (report / "plan.txt").read_text().split("\n")
    assert " ".join(plan[0].split()) in text and "peak memory per process" in text
    assert "stride: 8" in text and "shifts_per_side: 4" in text  # the config, as text in the page
    for heading in ("Plan", "Verification", "Nodule accounting", "Config"):
        assert f" {heading} " in text

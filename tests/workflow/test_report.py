"""`snakemake --report`: a self-contained HTML with the tables and pictures, checked by parsing it and by
rendering it in headless Chromium (the tables are in the page, not only downloads)."""

from __future__ import annotations

import base64
import io
import re

import pandas as pd
import pytest
from browser import assert_report_layout, rendered_text

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


@pytest.mark.slow
@pytest.mark.mpi
def test_report_headings_and_tables_fit_the_page_in_a_browser(small_luna_run, tmp_path):
    assert_report_layout(small_luna_run / "report.html", tmp_path)
    table = pd.read_csv(small_luna_run / "results/luna16/report/verification.tsv", sep="\t")
    assert set(table["reader"]) == {"IMPORT hdf5plugin BEFORE READING (codec blosc2-zstd)"}  # in brief

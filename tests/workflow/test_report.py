"""`snakemake --report`: a self-contained HTML with the tables and pictures, checked by parsing it."""

from __future__ import annotations

import base64
import io
import re

import pandas as pd
import pytest

from snakerun import SMALL_LUNA, snakemake, write_config

PNG = b"\x89PNG\r\n\x1a\n"


def embedded_files(html: str) -> dict[str, bytes]:
    """filename -> decoded bytes of every data URI the report embeds."""
    out = {}
    for name, payload in re.findall(r'"data_uri": "data:[^";]*(?:;[^";,]*)*?;filename=([^;"]+);base64,([A-Za-z0-9+/=]+)"', html):
        out[name] = base64.b64decode(payload)
    return out


@pytest.mark.slow
@pytest.mark.mpi
def test_report_holds_tables_and_pictures(tmp_path):
    write_config(tmp_path, SMALL_LUNA)
    snakemake(tmp_path, "--cores", "2")
    snakemake(tmp_path, "--report", "report.html")
    html = (tmp_path / "report.html").read_text()
    files = embedded_files(html)
    pictures = {n for n, data in files.items() if data.startswith(PNG)}
    assert {"subset0.nodules.png", "subset0.negatives.png", "subset1.nodules.png", "subset1.negatives.png",
            "subset0.png", "subset1.png"} <= pictures

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

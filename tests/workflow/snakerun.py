"""Run the repository's Snakefile in a scratch folder with a given config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from demos import SMALL_DEMO
from paths import REPO, SHARED_LDCT

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def extraction_log(workdir: Path, mode: str, group: str, results: str = "results") -> Path:
    """The log of the extraction that wrote ``group``: one per subset (LUNA16), one over all patients (LDCT);
    each results folder has its own logs, ``logs/<results>/``."""
    logs = Path(workdir) / "logs" / results / mode
    return logs / "extract_patches.log" if mode == "ldct" else logs / "extract_patches" / f"{group}.log"


def write_config(workdir: Path, config: dict) -> Path:
    path = workdir / "config" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    """``snakemake --snakefile <repo>/Snakefile --directory <workdir> ARGS``; output captured."""
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


# The workflow runs' LUNA16 config: the small demo, linear resampling, 2 ranks
SMALL_LUNA = {
    "mode": "luna16",
    "seed": 0,
    "demo": SMALL_DEMO,
    "luna16": {"resample": {"interpolator": "linear"}},
    "extract": {"tasks": 2},
}

# The LDCT demo options of the issue (p55, air threshold, downscale, rotation, dose blend, float16)
SMALL_LDCT = {
    "mode": "ldct",
    "seed": 0,
    "extract": {"tasks": 2},
    "ldct": {
        "root": str(SHARED_LDCT),
        "patch": {"code": "p55"},
        "ds_augment": {"enabled": True},
        "air_threshold": {"enabled": True},
        "rot_augment": {"enabled": True},
        "dose_blend": {"enabled": True},
        "output": {"dtype": "float16", "layout": "torch"},
    },
}


#: codecs that encode the same chunk in the same bytes on every run (lzf does not: liblzf leaves
#: its hash table uninitialised, so an lzf chunk may differ from run to run and decode the same)
DETERMINISTIC_CODECS = ("blosc2-zstd", "blosc2-lz4", "gzip", "none")


def assert_same_patch_file(a: Path, b: Path) -> None:
    """Every dataset (decoded bytes, shape, dtype, chunks, filters) and every attribute equal; and
    for patch datasets of a deterministic codec (:data:`DETERMINISTIC_CODECS`, attribute ``codec``
    in both files) every stored chunk equal byte for byte.

    lzf datasets are judged on the decoded data only (see :data:`DETERMINISTIC_CODECS`).
    """
    import h5py
    import hdf5plugin  # noqa: F401 -- registers the Blosc2 filter, as any reader of ctpatch's files must

    def items(f):
        out = {}
        f.visititems(lambda name, obj: out.__setitem__(name, obj) if isinstance(obj, h5py.Dataset) else None)
        return out

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        da, db = items(fa), items(fb)
        assert sorted(da) == sorted(db), (a, b)
        assert dict(fa.attrs) == dict(fb.attrs)
        for name in da:
            x, y = da[name], db[name]
            assert (x.shape, x.dtype, x.chunks) == (y.shape, y.dtype, y.chunks), name
            px, py = x.id.get_create_plist(), y.id.get_create_plist()
            assert [px.get_filter(i)[:3] for i in range(px.get_nfilters())] == [
                py.get_filter(i)[:3] for i in range(py.get_nfilters())
            ], name
            assert x.attrs.get("codec") == y.attrs.get("codec"), name
            for i in range(0, x.shape[0], 256):
                assert x[i : i + 256].tobytes() == y[i : i + 256].tobytes(), f"{name} rows {i}.."
            if x.attrs.get("codec") in DETERMINISTIC_CODECS:
                n = x.id.get_num_chunks()
                assert n == y.id.get_num_chunks(), name
                for k in range(n):
                    offset = x.id.get_chunk_info(k).chunk_offset
                    assert x.id.read_direct_chunk(offset) == y.id.read_direct_chunk(offset), f"{name} chunk {offset}"

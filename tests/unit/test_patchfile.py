"""Tests of the one-write extraction (ctpatch.engine.mpi, ctpatch.store.writer) and of the Fletcher32 checksums.

* The final file equals, dataset by dataset, the job's canonical output (written unshuffled by
  ``ShardWriter``, an independent path) permuted by the seeded shuffle computed here.
* Whole files are byte-identical (sha256) for 1, 2 and 3 MPI ranks, in both layouts.
* A flipped byte in any chunk fails every read and ``verify``, naming the dataset and row.
* A killed extraction leaves no file that looks finished, and the next run removes its temp file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from _patchfiles import write_canonical
from paths import REPO
from test_extract_luna import SMALL_PATCH, inputs, job_settings  # noqa: F401 (the module's inputs fixture)

from ctpatch.core.rng import keyed_rng
from ctpatch.engine.blocks import BLOCK_PATCHES, Unit, spans
from ctpatch.engine.run import extract, extraction_attrs
from ctpatch.luna16.job import Job
from ctpatch.luna16.verify import verify_luna
from ctpatch.settings import write_settings
from ctpatch.store.checksums import SMALL_CHUNK, chunk_checksum_ok, fletcher32_mod, fletcher32_ok_many
from ctpatch.store.codecs import COMPRESSION, create_patch_dataset
from ctpatch.store.verify import check_chunks

MPI = shutil.which("mpiexec") is not None
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "PYTHONPATH": os.pathsep.join([str(REPO / "workflow"), os.environ.get("PYTHONPATH", "")]),
}
IMAGES = ("nodule", "label_nodule", "non_nodule", "label_non_nodule")


def settings_for(layout="full", codec="blosc2-zstd", patch=SMALL_PATCH):
    s = job_settings(patch=patch)
    s["output"] = {**s["output"], "layout": layout, "compression": codec}
    return s


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_all(path):
    with h5py.File(path, "r") as f:
        return (
            {k: f[k][...] for k in f if isinstance(f[k], h5py.Dataset)},
            {k: f[f"provenance/{k}"][...] for k in f["provenance"]},
            dict(f.attrs),
        )


# ---------------------------------------------------------------- pure pieces
def serial_fletcher32(b: bytes) -> tuple[int, int]:
    """HDF5's H5_checksum_fletcher32, reduced mod 65535 (big-endian words, an odd last byte padded)."""
    s1 = s2 = 0
    b = b + b"\0" if len(b) % 2 else b
    for i in range(0, len(b), 2):
        s1 = (s1 + (b[i] << 8 | b[i + 1])) % 65535
        s2 = (s2 + s1) % 65535
    return s1, s2


def test_fletcher32_mod_matches_the_serial_definition():
    serial = serial_fletcher32
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4095 * 2 + 1, 8192, 8193, 3 * 8192 + 7):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert fletcher32_mod(data) == serial(data), n


def test_fletcher32_of_many_small_chunks_matches_the_serial_definition():
    rng = np.random.default_rng(3)
    sizes = [4, 5, 6, 7, 100, 101, 5304, 6051, SMALL_CHUNK - 1, SMALL_CHUNK] + list(rng.integers(4, 9000, 300))
    buf = bytearray()
    places, good = [], []
    for k, size in enumerate(sizes):
        buf += bytes(int(rng.integers(0, 3)))  # gaps of 0..2 bytes: chunks at even and odd offsets
        data = rng.integers(0, 256, int(size) - 4, dtype=np.uint8).tobytes()
        s1, s2 = serial_fletcher32(data)
        if k % 3 == 1:  # every third chunk with a wrong sum1 (odd k) or sum2 (even k)
            s1, s2 = ((s1 + 1) % 65535, s2) if k % 2 else (s1, (s2 + 7) % 65535)
        places.append((len(buf), int(size)))
        buf += data + ((s2 << 16) | s1).to_bytes(4, "little")
        good.append(k % 3 != 1)
    places = np.array(places)  # the last chunk ends at the end of the buffer
    got = fletcher32_ok_many(np.frombuffer(bytes(buf), np.uint8), places[:, 0], places[:, 1])
    expected = [chunk_checksum_ok(bytes(buf[o : o + n])) for o, n in places]
    assert got.tolist() == expected == good
    assert sum(good) < len(good)


def test_spans_cover_every_item_once_in_order():
    units = [Unit("a", 0, patches=70), Unit("b", 1, patches=0), Unit("c", 2, patches=33)]
    got = spans(units, 32)
    assert [(s.unit, s.start, s.stop) for s in got] == [
        (0, 0, 32),
        (0, 32, 64),
        (0, 64, 70),
        (1, 0, 0),
        (2, 0, 32),
        (2, 32, 33),
    ]


# ---------------------------------------------------------------- Fletcher32 with every codec
@pytest.mark.parametrize("codec", sorted(COMPRESSION))
def test_every_codec_gets_fletcher32_last_and_a_flipped_byte_fails_reads_and_the_check(tmp_path, codec):
    rng = np.random.default_rng(1)
    data = (rng.normal(size=(3, 20, 20, 20, 1)) * 100).round().astype(np.float32)
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        ds = create_patch_dataset(f, "img", data.shape[1:], data.dtype, codec, rows=3)
        ds[...] = data
        plist = ds.id.get_create_plist()
        ids = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        assert ids[-1] == h5py.h5z.FILTER_FLETCHER32 and len(ids) == (1 if codec == "none" else 2)
        for r in range(3):
            assert chunk_checksum_ok(ds.id.read_direct_chunk((r, 0, 0, 0, 0))[1])
        assert check_chunks(ds) == []
        offset = ds.id.get_chunk_info(1).byte_offset + 100
    with open(path, "r+b") as fh:  # flip one byte inside row 1's stored chunk
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0x10]))
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["img"][0], data[0])
        with pytest.raises(OSError):
            f["img"][1]
        (msg,) = check_chunks(f["img"])
        assert "/img" in msg and "row 1:" in msg and "Fletcher32" in msg and "row 0" not in msg


@pytest.mark.parametrize("codec", ["blosc2-zstd", "gzip", "none"])
def test_chunk_bytes_with_checksum_are_reproducible(tmp_path, codec):
    rng = np.random.default_rng(2)
    data = (rng.normal(size=(4, 16, 16, 16, 1)) * 100).round().astype(np.float32)
    chunks = []
    for name in ("a", "b"):
        with h5py.File(tmp_path / f"{name}.h5", "w") as f:
            ds = create_patch_dataset(f, "img", data.shape[1:], data.dtype, codec, rows=4)
            ds[...] = data
            chunks.append([ds.id.read_direct_chunk((r, 0, 0, 0, 0)) for r in range(4)])
    assert chunks[0] == chunks[1]


# ---------------------------------------------------------------- the single writer, in this process
def expected_from_canonical(job, tmp_path, name):
    """The job's output written unshuffled (an independent writer), then permuted by the shuffle computed here."""
    path = tmp_path / "canonical.h5"
    write_canonical(job, path)
    data, prov, _ = read_all(path)
    out_d, out_p = {}, {}
    for table, names in (("nodule", ("nodule", "label_nodule")), ("non_nodule", ("non_nodule", "label_non_nodule"))):
        n = len(prov[table])
        order = keyed_rng(job.seed, "shuffle", "luna16", table, name).permutation(n)
        out_p[table] = prov[table][order]
        for k in names:
            out_d[k] = data[k][order]
    return out_d, out_p


def test_final_file_is_the_canonical_output_shuffled(inputs, tmp_path):  # noqa: F811
    settings = settings_for()
    job = Job(settings, inputs.paths)
    counts = extract(job, [tmp_path / "subset0.h5"], extraction_attrs(job), buffer=8)
    data, prov, attrs = read_all(tmp_path / "subset0.h5")
    want_d, want_p = expected_from_canonical(Job(settings, inputs.paths), tmp_path, "subset0.h5")
    assert counts == {"nodule": len(want_p["nodule"]), "non_nodule": len(want_p["non_nodule"])}
    assert len(want_p["nodule"]) > BLOCK_PATCHES  # the scan was cut into several blocks
    for k in IMAGES:
        np.testing.assert_array_equal(data[k], want_d[k])
    for k in want_p:
        assert prov[k].tobytes() == want_p[k].tobytes()
    assert attrs["shuffled"] and attrs["parts"] == 1 and attrs["mode"] == "luna16"
    assert not list(tmp_path.glob(".*.tmp"))
    report = verify_luna(tmp_path / "subset0.h5", inputs.paths["nodules"], settings, [inputs.uid], inputs.paths)
    assert report["ok"], report["failures"]
    assert report["sample_patches"] == 8


def test_verify_names_the_row_of_a_flipped_byte_and_a_changed_patch(inputs, tmp_path):  # noqa: F811
    settings = settings_for()
    out = tmp_path / "subset0.h5"
    job = Job(settings, inputs.paths)
    extract(job, [out], extraction_attrs(job), buffer=8)
    bad = tmp_path / "bad.h5"
    shutil.copyfile(out, bad)
    with h5py.File(bad, "r") as f:
        offset = f["non_nodule"].id.get_chunk_info(17).byte_offset + 50
    with open(bad, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 1]))
    report = verify_luna(bad, inputs.paths["nodules"], settings, [inputs.uid], inputs.paths)
    assert not report["ok"]
    assert any("/non_nodule" in m and "row 17:" in m for m in report["failures"]), report["failures"]
    # a patch rewritten with a valid checksum (not corruption, another content): the regenerated sample sees it
    changed = tmp_path / "changed" / "subset0.h5"  # same name, same sample
    changed.parent.mkdir()
    shutil.copyfile(out, changed)
    report = verify_luna(out, inputs.paths["nodules"], settings, [inputs.uid], inputs.paths)
    row = report["sample_rows"]["nodule"][0]
    with h5py.File(changed, "r+") as f:
        patch = f["nodule"][row]
        patch[3, 4, 5, 0] += 0.25
        f["nodule"][row] = patch
    report = verify_luna(changed, inputs.paths["nodules"], settings, [inputs.uid], inputs.paths)
    assert not report["ok"] and any(f"nodule row {row}:" in m for m in report["failures"]), report["failures"]


# ---------------------------------------------------------------- MPI: byte-identical files, kills
def settings_path(settings, folder) -> str:
    """The settings as the workflow's settings file of scope ``patches``."""
    path = Path(folder) / "patches.settings.json"
    write_settings(settings, path, "patches")
    return str(path)


def input_args(paths: dict) -> list[str]:
    """The extraction's inputs (``Job``'s dict of paths) as the command line gives them."""
    return [
        "--sidecars",
        *map(str, paths["sidecars"]),
        "--masks-dir",
        str(paths["masks_dir"]),
        "--nodules",
        str(paths["nodules"]),
        *(["--candidates", str(paths["candidates"])] if paths.get("candidates") else []),
    ]


def mpi_extract(ranks, out, settings, paths, timeout=300):
    cmd = [
        "mpiexec",
        "-n",
        str(ranks),
        sys.executable,
        "-m",
        "ctpatch.luna16.extract",
        "--ranks",
        str(ranks),
        "--group",
        "subset0",
        "--out",
        str(out),
        "--settings-file",
        settings_path(settings, out.parent.parent),
        *input_args(paths),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)


@pytest.mark.mpi
@pytest.mark.skipif(not MPI, reason="mpiexec not found")
@pytest.mark.parametrize("layout", ["full", "crops", "volumes"])
def test_files_byte_identical_for_1_2_3_ranks(inputs, tmp_path, layout):  # noqa: F811
    settings = settings_for(layout)
    digests = {}
    for ranks in (1, 2, 3):
        out = tmp_path / f"r{ranks}" / "subset0.h5"
        res = mpi_extract(ranks, out, settings, inputs.paths)
        assert res.returncode == 0, res.stdout + res.stderr
        digests[ranks] = sha256(out)
        assert not list(out.parent.glob(".*"))  # no temp file left
    assert digests[1] == digests[2] == digests[3]
    report = verify_luna(tmp_path / "r3" / "subset0.h5", inputs.paths["nodules"], settings, [inputs.uid], inputs.paths)
    assert report["ok"], report["failures"]


@pytest.mark.mpi
@pytest.mark.skipif(not MPI, reason="mpiexec not found")
def test_killed_extraction_leaves_nothing_finished_and_the_rerun_cleans_up(inputs, tmp_path):  # noqa: F811
    settings = settings_for(patch={})  # 68³ patches: slow enough to be killed mid-way
    out = tmp_path / "subset0.h5"
    cmd = [
        "mpiexec",
        "-n",
        "2",
        sys.executable,
        "-m",
        "ctpatch.luna16.extract",
        "--ranks",
        "2",
        "--out",
        str(out),
        "--settings-file",
        settings_path(settings, tmp_path.parent),
        *input_args(inputs.paths),
    ]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not any(p.stat().st_size > 10 << 20 for p in tmp_path.glob(".*.tmp")):
            time.sleep(0.1)
        assert list(tmp_path.glob(".subset0.h5.*.tmp")), "the extraction never started writing"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not out.exists()
    assert list(tmp_path.glob(".subset0.h5.*.tmp"))  # kill -9: nothing could clean up, nothing looks finished
    res = mpi_extract(1, out, settings_for(), inputs.paths)
    assert res.returncode == 0, res.stdout + res.stderr
    assert out.exists() and not list(tmp_path.glob(".*.tmp"))
    assert "left by a killed run" in res.stdout


@pytest.mark.mpi
@pytest.mark.skipif(not MPI, reason="mpiexec not found")
def test_full_disk_is_one_clear_line(inputs, tmp_path):  # noqa: F811
    """A file size limit (EFBIG, as ENOSPC: the write fails) gives one line naming the problem, no traceback."""
    settings = settings_for()
    code = (
        "import resource, signal, sys; from mpi4py import MPI; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20)); "
        "from ctpatch.luna16.extract import main; sys.exit(main(sys.argv[1:]))"
    )
    out = tmp_path / "subset0.h5"
    cmd = [
        "mpiexec",
        "-n",
        "1",
        sys.executable,
        "-c",
        code,
        "--ranks",
        "1",
        "--out",
        str(out),
        "--settings-file",
        settings_path(settings, tmp_path.parent),
        *input_args(inputs.paths),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=ENV)
    assert res.returncode != 0
    errors = [line for line in res.stderr.splitlines() if "error" in line.lower()]
    assert errors and "Traceback" not in res.stderr, res.stderr
    assert len(errors) == 1 and "subset0.h5: writing failed: File too large" in errors[0], res.stderr
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))

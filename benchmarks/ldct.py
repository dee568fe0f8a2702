"""LDCT input/target mode: pairs/s, patches/s and peak RSS per rank at 1 and 2 ranks, against a
reference-style baseline, on the real pairs replicated to >= 160.

    python benchmarks/ldct.py            # 160 pairs (the 16 real pairs of ../shared/data/ldct x 10), 5 reps
    python benchmarks/ldct.py --quick    # 16 pairs, 2 reps

Data: every patient folder of ``../shared/data/ldct`` is copied (files copied, not linked) N times
under new patient names (``L096r00`` ...), so the pairs are real slices and each copy draws its own
augmentations.  Pairing (``python -m ctpatch.ldct.pairing`` per patient) runs once, before the
repetitions, and is reported apart.  Demo options: the ``ldct`` section of ``config/ldct.yaml``
(p55, air threshold, downscale copies, rotation/flip, dose blend, float16; the schema's default codec).

Per repetition (after waiting for an idle machine):
* **ours, N ranks** (N = 1, 2): ``mpiexec -n N python -m ctpatch.ldct.extract`` on all pair
  tables in one run (it writes the final file once); wall time; then, apart, ``python -m ctpatch.ldct.verify`` on the file (every chunk's checksum in place, counts, provenance, the value
  statistics the extraction recorded, a regenerated sample); ratio ``verify_over_extract``;
* **baseline, N ranks**: ``benchmarks/reference_baseline_ldct.py`` (REFERENCE-STYLE, not ctpatch:
  ``np.append`` per pair, everything gathered to rank 0, one write);
* **memory**: ours at 1 rank on the first 16 and 64 pairs too (peak RSS per rank must not grow).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

DATA = C.REPO.parent / "shared" / "data" / "ldct"


def demo_settings() -> dict:
    import yaml

    from ctpatch.settings import ldct_patch_settings, validate

    cfg = validate(yaml.safe_load((C.REPO / "config" / "ldct.yaml").read_text()))
    return ldct_patch_settings(cfg).to_dict(), cfg["ldct"]


def replicate(dst: Path, copies: int, cfg: dict) -> list[Path]:
    patients = []
    for k in range(copies):
        for src in sorted(p for p in DATA.iterdir() if (p / cfg["input_dir"]).is_dir()):
            name = f"{src.name}r{k:02d}"
            for sub in (cfg["input_dir"], cfg["target_dir"]):
                shutil.copytree(src / sub, dst / name / sub)
            patients.append(dst / name)
    return patients


def pair_all(patients: list[Path], cfg: dict, out: Path) -> dict:
    from ctpatch.settings import scope_settings, validate

    pairs = C.settings_file(
        scope_settings(validate({"mode": "ldct", "ldct": {**cfg, "random_n": 0}}), "pairs"),
        out / "pairs.settings.json",
        "pairs",
    )
    t0 = time.perf_counter()
    tables = []
    for p in patients:
        t = out / f"{p.name}.tsv"
        C.run(
            [
                C.PY,
                "-m",
                "ctpatch.ldct.pairing",
                "--patient-dir",
                p,
                "--settings-file",
                pairs,
                "--table-out",
                t,
                "--report-out",
                out / f"{p.name}.json",
            ]
        )
        tables.append(t)
    return {"seconds": time.perf_counter() - t0, "tables": tables}


def ours(work: Path, tables: list[Path], ranks: int, settings: dict, tag: str) -> dict:
    d = work / tag
    shutil.rmtree(d, ignore_errors=True)
    stats = d / "stats"
    stats.mkdir(parents=True)
    t0 = time.perf_counter()
    ext = C.run(
        [
            "mpiexec",
            "-n",
            ranks,
            C.PY,
            C.BENCH / "_rank.py",
            "--stats-dir",
            stats,
            "--",
            "--mode",
            "ldct",
            "--ranks",
            ranks,
            "--out",
            d / "patches.h5",
            "--settings-file",
            C.settings_file(settings, d / "patches.settings.json", "patches"),
            "--pairs",
            *tables,
            "--group",  # every table in one file
            "all",
        ],
        log=stats / "extract.log",
        env=C.MPI_ENV,
    )
    total = time.perf_counter() - t0
    ver = C.run(
        [
            C.PY,
            "-m",
            "ctpatch.ldct.verify",
            "--patches",
            d / "patches.h5",
            "--pairs",
            *tables,
            "--settings-file",
            d / "patches.settings.json",
            "--report-out",
            d / "verify.json",
        ]
    )
    if not json.loads((d / "verify.json").read_text())["ok"]:
        raise RuntimeError(f"verification failed: {(d / 'verify.json').read_text()}")
    rk = [json.loads(p.read_text()) for p in sorted(stats.glob("rank*.json"))]
    res = {
        "ranks": ranks,
        "extract_s": ext["seconds"],
        "verify_s": ver["seconds"],
        "total": total,
        "pairs": sum(r["pairs"] for r in rk),
        "patches": sum(r["patches"] for r in rk),
        "max_rss_ranks": [r["max_rss"] for r in rk],
        "write_s": sum(r["stages"].get("write", 0.0) for r in rk),
        "stored_bytes": C.file_bytes(d / "patches.h5"),
    }
    shutil.rmtree(d)
    return res


def baseline(work: Path, tables: list[Path], ranks: int) -> dict:
    out = work / "baseline.h5"
    log = work / "baseline.log"
    r = C.run(
        ["mpiexec", "-n", ranks, C.PY, C.BENCH / "reference_baseline_ldct.py", "--out", out, "--pairs", *tables],
        log=log,
    )
    res = json.loads(log.read_text().strip().splitlines()[-1])
    res["total"] = r["seconds"]
    res["ranks"] = ranks
    out.unlink()
    return res


def main() -> None:
    ap = C.arg_parser(__doc__)
    ap.add_argument("--copies", type=int, default=None, help="copies of the 16 real pairs (default 10; --quick 1)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the reference-style baseline")
    ap.add_argument("--no-memory", action="store_true", help="skip the 16- and 64-pair memory runs")
    args = ap.parse_args()
    reps = C.reps_of(args)
    copies = args.copies or (1 if args.quick else 10)
    settings, cfg = demo_settings()
    with C.Workdir(args.workdir) as work:
        patients = replicate(work / "data", copies, cfg)
        paired = pair_all(patients, cfg, work / "pairs")
        tables = paired["tables"]
        per_table = 4
        subsets = {n: tables[: max(1, n // per_table)] for n in (16, 64) if n < per_table * len(tables)}
        print(
            f"{len(patients)} patients, {per_table * len(tables)} pairs (pairing {paired['seconds']:.1f} s); "
            f"{reps} repetitions",
            flush=True,
        )
        reps_out = []
        for rep in range(reps):
            r = {"waited_s": C.wait_quiet(max_wait=10 if args.quick else 240)}
            with C.Foreign() as fg:
                for n in (1, 2):
                    r[f"ours{n}"] = ours(work, tables, n, settings, f"ours{n}")
                    if not args.no_baseline:
                        r[f"base{n}"] = baseline(work, tables, n)
                for n, tb in ({} if args.no_memory else subsets).items():
                    r[f"mem{n}"] = ours(work, tb, 1, settings, f"mem{n}")
            r["foreign_cpu_s"] = fg.seconds
            reps_out.append(r)
            print(
                f"rep {rep + 1}/{reps}: ours {r['ours1']['total']:.1f} / {r['ours2']['total']:.1f} s (verify "
                f"{r['ours1']['verify_s']:.1f} / {r['ours2']['verify_s']:.1f} s)"
                + (f", baseline {r['base1']['total']:.1f} / {r['base2']['total']:.1f} s" if "base1" in r else "")
                + f" (1 / 2 ranks), foreign CPU {fg.seconds:.0f} s",
                flush=True,
            )
    report(args, reps_out, settings, paired, len(patients))


def report(args, reps_out, settings, paired, n_patients) -> None:
    med = C.median
    rows = []
    for key, label in (
        ("ours1", "ours, 1 rank"),
        ("ours2", "ours, 2 ranks"),
        ("base1", "REFERENCE-STYLE baseline, 1 rank"),
        ("base2", "REFERENCE-STYLE baseline, 2 ranks"),
    ):
        if key not in reps_out[0]:
            continue
        rs = [r[key] for r in reps_out]
        rows.append(
            {
                "run": label,
                "pairs": rs[0]["pairs"],
                "patches": rs[0]["patches"],
                "total_s": med([x["total"] for x in rs]),
                "pairs_s": med([x["pairs"] / x["total"] for x in rs]),
                "patches_s": med([x["patches"] / x["total"] for x in rs]),
                "rss": med([max(x["max_rss_ranks"]) / 1e6 for x in rs]),
                "verify_s": med([x["verify_s"] for x in rs]) if "verify_s" in rs[0] else None,
                "rss_ranks": "/".join(f"{v / 1e6:.0f}" for v in rs[0]["max_rss_ranks"]),
            }
        )
    for k in sorted((k for k in reps_out[0] if k.startswith("mem")), key=lambda k: int(k[3:])):
        rs = [r[k] for r in reps_out]
        rows.append(
            {
                "run": f"ours, 1 rank, first {rs[0]['pairs']} pairs",
                "pairs": rs[0]["pairs"],
                "patches": rs[0]["patches"],
                "total_s": med([x["total"] for x in rs]),
                "pairs_s": med([x["pairs"] / x["total"] for x in rs]),
                "patches_s": med([x["patches"] / x["total"] for x in rs]),
                "rss": med([max(x["max_rss_ranks"]) / 1e6 for x in rs]),
            }
        )
    t1 = C.table(
        rows,
        [
            ("run", "run", ""),
            ("pairs", "pairs", "d"),
            ("patches", "patches", "d"),
            ("total_s", "total s", ".1f"),
            ("verify_s", "verify s", ".1f"),
            ("pairs_s", "pairs/s", ".2f"),
            ("patches_s", "patches/s", ".0f"),
            ("rss", "peak RSS/rank MB", ".0f"),
            ("rss_ranks", "per rank (rep 1)", ""),
        ],
        f"LDCT, demo options (medians of {len(reps_out)} repetitions; total = the extraction, writing the final file, "
        f"or the baseline's run; verify apart)",
    )

    def ratio(f):
        return med([f(r) for r in reps_out])

    pps = lambda x: x["pairs"] / x["total"]  # noqa: E731
    ratios = {
        "ours_2_over_1_ranks": ratio(lambda r: pps(r["ours2"]) / pps(r["ours1"])),
        "verify_over_extract_1rank": ratio(lambda r: r["ours1"]["verify_s"] / r["ours1"]["total"]),
        "verify_over_extract_2ranks": ratio(lambda r: r["ours2"]["verify_s"] / r["ours2"]["total"]),
    }
    if "base1" in reps_out[0]:
        ratios.update(
            {
                "ours_over_baseline_pairs_s_1rank": ratio(lambda r: pps(r["ours1"]) / pps(r["base1"])),
                "ours_over_baseline_pairs_s_2ranks": ratio(lambda r: pps(r["ours2"]) / pps(r["base2"])),
                "baseline_2_over_1_ranks": ratio(lambda r: pps(r["base2"]) / pps(r["base1"])),
            }
        )
    mems = sorted((k for k in reps_out[0] if k.startswith("mem")), key=lambda k: int(k[3:]))
    if mems:
        ratios[f"rss_all_over_{reps_out[0][mems[0]]['pairs']}_pairs"] = ratio(
            lambda r: max(r["ours1"]["max_rss_ranks"]) / max(r[mems[0]]["max_rss_ranks"])
        )
    targets = {
        "ours_over_baseline_pairs_s_1rank": (">=", 10.0),
        "ours_2_over_1_ranks": (">=", 1.8),
        "verify_over_extract_1rank": ("<=", 0.1),
        "verify_over_extract_2ranks": ("<=", 0.1),
    }
    rr = []
    for k, v in ratios.items():
        t = targets.get(k)
        rr.append(
            {
                "ratio": k,
                "value": v,
                "target": f"{t[0]} {t[1]}" if t else "",
                "met": "" if not t else ("yes" if (v >= t[1] if t[0] == ">=" else v <= t[1]) else "NO"),
            }
        )
    t2 = C.table(
        rr,
        [
            ("ratio", "ratio (median of per-repetition ratios)", ""),
            ("value", "value", ".2f"),
            ("target", "target", ""),
            ("met", "met", ""),
        ],
        "\nRatios",
    )
    C.table(
        [{"rep": i + 1, "foreign": r["foreign_cpu_s"], "waited": r["waited_s"]} for i, r in enumerate(reps_out)],
        [("rep", "rep", "d"), ("foreign", "foreign CPU s", ".0f"), ("waited", "waited for idle s", ".0f")],
        "\nRepetitions (CPU seconds used by other people's processes during each)",
    )
    C.write_results(
        "ldct",
        args,
        {
            "patients": n_patients,
            "pairing_seconds": paired["seconds"],
            "settings": settings,
            "summary": rows,
            "ratios": ratios,
            "tables": t1 + "\n\n" + t2,
            "repetitions": reps_out,
        },
    )


if __name__ == "__main__":
    main()

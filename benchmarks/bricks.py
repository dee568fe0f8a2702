"""The volumes layout's brick edge: file size, extraction time and read speed per edge, against the full layout.

    python benchmarks/bricks.py --out /tmp/bricks.json      # 1 full-size scan, edges 16 24 32 48 64, 3 reps
    python benchmarks/bricks.py --quick                      # 1 small scan, 2 reps

One generated scan (``FULL_DEMO`` sizes; ``--scans``) is converted and labelled once; then, per
repetition and interleaved, the extraction (1 rank, schema defaults but the layout) writes the
full layout and the volumes layout with each brick edge, and each file is read through
``ctpatch.readers`` (:func:`_common.read_rates`: random single patches, shuffled batches; one process,
page cache warm).  Printed: medians, and each volumes run's ratios to the full layout of the same
repetition (file size full / volumes, single and batch reads volumes / full), also with the brick
cache off (``cache_mb=0``: every brick decoded each time a patch needs it, the case of a training
set far larger than the cache).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def main() -> None:
    ap = C.arg_parser(__doc__)
    ap.add_argument("--scans", type=int, default=1)
    ap.add_argument("--edges", type=int, nargs="+", default=[16, 24, 32, 48, 64])
    ap.add_argument("--single", type=int, default=200, help="random single reads per measurement")
    args = ap.parse_args()
    reps = C.reps_of(args)
    demo = dict(C.QUICK_DEMO if args.quick else C.FULL_DEMO, scans_per_subset=args.scans)
    with C.Workdir(args.workdir) as work:
        root = work / "luna"
        C.make_data(root, demo)
        scans = sorted((root / "subset0").glob("*.mhd"))
        base = C.luna_settings(root)
        vol, lab = work / "volumes", work / "labels"
        C.convert_scans(scans, vol, base, workers=1)
        C.make_labels("subset0", vol, root / "CSVFILES" / "annotations.csv", lab)
        variants = [("full", None)] + [("volumes", e) for e in args.edges]
        runs: dict = {v: [] for v in variants}
        for rep in range(reps):
            C.wait_quiet(max_wait=10 if args.quick else 60)
            for layout, edge in variants:
                out_opts = {"layout": layout} if edge is None else {"layout": layout, "brick": edge}
                settings = C.luna_settings(root, output=out_opts)
                out = work / f"{layout}{edge or ''}" / "subset0.h5"
                shutil.rmtree(out.parent, ignore_errors=True)
                ext = C.extract(1, vol, lab, out, settings, out.parent / "stats")
                r = {
                    "extract_s": ext["seconds"],
                    "file_bytes": C.file_bytes(out),
                    **C.read_rates([out], single=args.single),
                }
                if edge is not None:  # the same reads with no brick cache: every brick decoded when needed
                    cold = C.read_rates([out], single=args.single, cache_mb=0)
                    r.update(single_cold_per_s=cold["single_per_s"], batch_cold_per_s=cold["batch_per_s"])
                runs[(layout, edge)].append(r)
                shutil.rmtree(out.parent)
                print(f"rep {rep + 1} {layout} {edge or ''}: {r}", flush=True)
        rows = []
        for (layout, edge), rs in runs.items():
            full = runs[("full", None)]
            rows.append(
                {
                    "layout": layout if edge is None else f"volumes, brick {edge}",
                    "file_mb": rs[0]["file_bytes"] / 1e6,
                    "extract_s": C.median([r["extract_s"] for r in rs]),
                    "single": C.median([r["single_per_s"] for r in rs]),
                    "batch": C.median([r["batch_per_s"] for r in rs]),
                    "size_ratio": full[0]["file_bytes"] / rs[0]["file_bytes"],
                    "single_ratio": C.median([r["single_per_s"] / f["single_per_s"] for r, f in zip(rs, full)]),
                    "batch_ratio": C.median([r["batch_per_s"] / f["batch_per_s"] for r, f in zip(rs, full)]),
                    "single_cold_ratio": C.median(
                        [r.get("single_cold_per_s", r["single_per_s"]) / f["single_per_s"] for r, f in zip(rs, full)]
                    ),
                    "batch_cold_ratio": C.median(
                        [r.get("batch_cold_per_s", r["batch_per_s"]) / f["batch_per_s"] for r, f in zip(rs, full)]
                    ),
                }
            )
        table = C.table(
            rows,
            [
                ("layout", "layout", ""),
                ("file_mb", "file MB", ".1f"),
                ("extract_s", "extract s", ".2f"),
                ("single", "single reads/s", ".0f"),
                ("batch", "batch reads/s", ".0f"),
                ("size_ratio", "full/this size", ".1f"),
                ("single_ratio", "single vs full", ".2f"),
                ("batch_ratio", "batch vs full", ".2f"),
                ("single_cold_ratio", "single, no cache", ".2f"),
                ("batch_cold_ratio", "batch, no cache", ".2f"),
            ],
            f"\nBrick edge of the volumes layout ({len(scans)} scan(s), {reps} reps, medians)",
        )
        C.write_results("bricks", args, {"demo": demo, "rows": rows, "table": table})


if __name__ == "__main__":
    main()

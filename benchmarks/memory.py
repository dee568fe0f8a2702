"""Peak RSS per extraction rank for 1, 2 and 4 scans: it must not grow with the number of scans.

    python benchmarks/memory.py          # 4 full-size scans of one geometry, 5 reps
    python benchmarks/memory.py --quick  # small scans, 2 reps

The scans all have the same geometry (512² x 220 slices, 0.7 x 0.7 x 1.25 mm) and nodule count, so any
growth from 1 to 4 scans comes from what a rank accumulates, not from a bigger scan.  Each run is
``mpiexec -n 1 python -m ctpatch.luna16.extract`` (through ``_rank.py``, which reports the rank's own
``ru_maxrss``) with the default settings; the volumes are converted once.
(LDCT: 16/64/160 pairs are to be added with the LDCT benchmark.)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

FULL = {
    "subsets": 1,
    "scans_per_subset": 4,
    "slices": [220, 220],
    "spacing_xy": [0.7, 0.7],
    "spacing_z": [1.25, 1.25],
    "nodules_per_scan": [5, 5],
    "edge_nodule_every": 0,
}
QUICK = {**FULL, "size_xy": 160, "slices": [60, 60], "nodules_per_scan": [2, 2]}
COUNTS = (1, 2, 4)


def main() -> None:
    ap = C.arg_parser(__doc__)
    ap.add_argument("--ranks", type=int, default=1, help="MPI ranks of each run (default 1)")
    args = ap.parse_args()
    reps = C.reps_of(args)
    demo = QUICK if args.quick else FULL
    with C.Workdir(args.workdir) as work:
        root = work / "luna"
        C.make_data(root, demo)
        scans = sorted((root / "subset0").glob("*.mhd"))
        settings = C.luna_settings(root)
        vol = work / "volumes"
        C.convert_scans(scans, vol, settings, workers=2)
        sidecars = sorted(vol.glob("*.json"))
        labs = {}
        for n in COUNTS:  # one label table per scan set: the extraction refuses nodules of scans it was not given
            labs[n] = work / f"labels{n}"
            C.make_labels("subset0", vol, root / "CSVFILES" / "annotations.csv", labs[n], sidecars=sidecars[:n])
        print(
            f"{len(scans)} scans of {demo.get('size_xy', 512)}² x {demo['slices'][0]}, {demo['nodules_per_scan'][0]} nodules each; "
            f"{args.ranks} rank(s); {reps} repetitions",
            flush=True,
        )
        res = {n: [] for n in COUNTS}
        for rep in range(reps):
            C.wait_quiet(max_wait=10 if args.quick else 120)
            for n in COUNTS:
                out = work / f"patches{n}.h5"
                r = C.extract(args.ranks, vol, labs[n], out, settings, work / f"stats{n}", sidecars=sidecars[:n])
                out.unlink()
                res[n].append(
                    {
                        "seconds": r["seconds"],
                        "max_rss_ranks": [x["max_rss"] for x in r["ranks"]],
                        "patches": sum(x["nodule_patches"] + x["negatives"] for x in r["ranks"]),
                    }
                )
            print(
                f"rep {rep + 1}/{reps}: "
                + ", ".join(f"{n} scans {max(res[n][-1]['max_rss_ranks']) / 1e6:.0f} MB" for n in COUNTS),
                flush=True,
            )
    rows = []
    for n in COUNTS:
        rows.append(
            {
                "scans": n,
                "patches": res[n][0]["patches"],
                "rss": C.median([max(r["max_rss_ranks"]) / 1e6 for r in res[n]]),
                "rss_min": min(max(r["max_rss_ranks"]) / 1e6 for r in res[n]),
                "rss_max": max(max(r["max_rss_ranks"]) / 1e6 for r in res[n]),
                "seconds": C.median([r["seconds"] for r in res[n]]),
            }
        )
    growth = C.median([max(res[4][i]["max_rss_ranks"]) / max(res[1][i]["max_rss_ranks"]) for i in range(reps)])
    for r in rows:
        r["vs_1"] = r["rss"] / rows[0]["rss"]
    t = C.table(
        rows,
        [
            ("scans", "scans", "d"),
            ("patches", "patches", "d"),
            ("rss", "peak RSS/rank MB (median)", ".0f"),
            ("rss_min", "min", ".0f"),
            ("rss_max", "max", ".0f"),
            ("vs_1", "vs 1 scan", ".3f"),
            ("seconds", "extract s", ".1f"),
        ],
        f"Peak RSS per rank, {args.ranks} rank(s), medians of {reps} repetitions",
    )
    print(
        f"\n4 scans / 1 scan (median of per-repetition ratios): {growth:.3f}  (target <= 1.10; "
        f"{'met' if growth <= 1.10 else 'MISSED'}); largest {max(r['rss'] for r in rows):.0f} MB (target <= 1500)"
    )
    C.write_results(
        "memory",
        args,
        {
            "demo": demo,
            "ranks": args.ranks,
            "summary": rows,
            "ratio_4_over_1": growth,
            "table": t,
            "repetitions": {str(k): v for k, v in res.items()},
        },
    )


if __name__ == "__main__":
    main()

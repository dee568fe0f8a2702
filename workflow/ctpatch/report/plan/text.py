"""The plan as the printed table (and as JSON-ready values)."""

from __future__ import annotations

import math

import numpy as np

from ctpatch.report.plan.measure import COMPRESSIONS


def _b(n) -> str:
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "n/a"
    for unit, f in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= f:
            return f"{n / f:.1f} {unit}"
    return f"{int(n)} B"


def _t(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 120:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s"


def format_plan(plan: dict) -> str:
    """The plan as the table ``python -m ctpatch.report.plan`` prints (and the report shows)."""
    lines = []
    st, tot = plan["settings"], plan["total"]
    if plan["mode"] == "luna16":
        demo = " (demo, planned without voxels)" if plan["demo"] else ""
        lines.append(f"ctpatch plan: LUNA16 nodule mode, root {plan['root']}{demo}")
        p, n, o, r = st["patch"], st["negatives"], st["output"], st["resample"]
        lines.append(
            f"  patch {p['size']}^3, {st['patches_per_nodule']} per nodule; negatives {n['ratio']}x "
            f"{n['strategy']}/{n['scans']}; output {o['dtype']} {o['compression']}; resample "
            + (f"{r['spacing_mm']} mm {r['interpolator']}" if r["enabled"] else "off")
        )
        head = ["subset", "scans", "nodules", "nodule p.", "negatives", "raw size", "file size"]
        rows = [
            [
                g,
                v["scans"],
                v["nodules"],
                v["patches"]["nodule"],
                v["patches"]["non_nodule"],
                _b(v["raw_bytes"]),
                _b(v["estimated_file_bytes"]),
            ]
            for g, v in plan["groups"].items()
        ]
        rows.append(
            [
                "total",
                tot["scans"],
                tot["nodules"],
                tot["patches"]["nodule"],
                tot["patches"]["non_nodule"],
                _b(tot["raw_bytes"]),
                _b(tot["estimated_file_bytes"]),
            ]
        )
    else:
        lines.append(f"ctpatch plan: LDCT input/target mode, root {plan['root']}")
        sr = (
            f" target, input {st['input_edge']}x{st['input_edge']} (super-resolution x{st['scale']})"
            if st["scale"] > 1 or st["input_edge"] != st["edge"]
            else ""
        )
        lines.append(
            f"  patch {st['edge']}x{st['edge']}{sr} (x{st['multiplier']} augmentation), output "
            f"{st['output']['dtype']} {st['output']['compression']} {st['output']['layout']}; air threshold "
            f"{'on: patch counts estimated from the sample' if st['air_threshold']['enabled'] else 'off'}"
        )
        head = ["patient", "pairs", "selected", "grid p.", "patches", "raw size", "file size"]
        rows = [
            [
                g,
                v["pairs"],
                v["selected_pairs"],
                v["patches_cut"],
                v["patches"]["patch"],
                _b(v["raw_bytes"]),
                _b(v["estimated_file_bytes"]),
            ]
            for g, v in plan["groups"].items()
        ]
        rows.append(
            [
                "total",
                tot["pairs"],
                tot["selected_pairs"],
                tot["patches_cut"],
                tot["patches"]["patch"],
                _b(tot["raw_bytes"]),
                _b(tot["estimated_file_bytes"]),
            ]
        )
    from ctpatch.store.reading import reader_needs

    lines.append(f"  reading the files outside ctpatch: {reader_needs([st['output']['compression']])}")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]

    def fmt(r):
        cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        return "  " + "  ".join(cells)

    rule = "  " + "-" * (sum(widths) + 2 * len(widths) - 2)
    lines += ["", fmt(head)] + [fmt(r) for r in rows[:-1]] + [rule, fmt(rows[-1])]

    smp = plan["sample"]
    lines.append("")
    if smp:
        if plan["mode"] == "luna16":
            k = smp["patches"]
            lines.append(
                f"measured on {sum(k.values())} sample patches ({k['nodule']} nodule, {k['non_nodule']} "
                f"negative) of scan {smp['scan']} ({smp['subset']}, {smp['source']}):"
            )
        else:
            lines.append(
                f"measured on {len(smp['pairs'])} sample pair(s) ({smp['written']} patches; kept "
                f"{smp['kept']} of {smp['cut']} grid patches): {', '.join(smp['pairs'])}"
            )
    else:
        lines.append("no sample measured (--no-sample): compressed sizes and times unknown")
    combos = sorted(tot["file_bytes"])
    dts = list(dict.fromkeys(c.split("/")[0] for c in combos))
    lines.append("  output size per dtype and compression (all groups):")
    lines.append("    " + "dtype".ljust(9) + "".join(c.rjust(12) for c in COMPRESSIONS))
    for d in dts:
        sizes = "".join(_b(tot["file_bytes"].get(f"{d}/{c}")).rjust(12) for c in COMPRESSIONS)
        lines.append("    " + d.ljust(9) + sizes)
    raw = tot["raw_bytes"]
    if smp and tot["estimated_file_bytes"]:
        lines.append(f"  compression ratio of the configured output: {raw / tot['estimated_file_bytes']:.2f}x")
    inter = plan["intermediate_bytes"]
    lines.append(
        "  other disk: "
        + (", ".join(f"{k} {_b(v)}" for k, v in inter.items()) or "none")
        + " (the patches are written once: no shards, no second copy)"
    )
    lines.append(f"  peak disk: {_b(plan['peak_disk_bytes'])} (one copy of the patches + other disk)")

    mem = plan["memory"]
    lines.append("")
    if plan["mode"] == "luna16":
        ls = plan["largest_scan"]
        lines.append(
            f"peak memory per process (largest scan {ls['uid']} {ls['subset']}: {ls['size']} -> "
            f"{ls['converted_size']} voxels, x y z):"
        )
        coef = mem["bspline_coefficients"]
        lines.append(
            f"  convert_mhd            {_b(mem['convert_mhd'])}"
            + (f"  (of which B-spline coefficients {_b(coef)})" if coef else "")
        )
        lines.append(f"  make_labels            {_b(mem['make_labels'])}")
        lines.append(
            f"  extract_patches rank   {_b(mem['extract_patches_rank'])}  (buffers "
            f"{_b(mem['extract_patches_rank_buffers'])} + the scan's volume and mask "
            f"{_b(mem['extract_patches_rank_volume'])})"
        )
        lines.append(f"  verify_patches         {_b(mem['verify_patches'])}")
    else:
        lines.append(
            f"peak memory per extraction rank: {_b(mem['extract_patches_rank'])} (one slice pair and its "
            f"copies {_b(mem['pair_bytes'])})"
        )
    lines.append(
        "  (of which the measured start-up of the step's Python process: "
        + ", ".join(f"{k} {_b(v)}" for k, v in mem["startup"].items())
        + ")"
    )
    tm = plan["time"]
    lines.append("")
    if tm:
        lines.append(
            f"estimated time on {tm['cores']} cores, {tm['tasks']} MPI ranks per extraction "
            "(from the sample; Snakemake's own scheduling not included):"
        )
        lines.append("    step               CPU        wall")
        for k, v in tm["cpu_seconds"].items():
            lines.append(f"    {k:<16} {_t(v):>8} {_t(tm['wall_seconds'][k]):>10}")
        lines.append(f"    {'total':<16} {_t(sum(tm['cpu_seconds'].values())):>8} {_t(tm['total_wall_seconds']):>10}")
    if plan["warnings"]:
        lines.append("")
        lines.append(f"warnings ({len(plan['warnings'])}):")
        lines += [f"  - {w}" for w in plan["warnings"][:10]]
        if len(plan["warnings"]) > 10:
            lines.append(f"  ... and {len(plan['warnings']) - 10} more (see --json)")
    lines.append("")
    sec = plan["seconds"]
    lines.append(f"plan took {sec['plan']:.1f} s (headers and tables {sec['headers']:.2f} s)")
    return "\n".join(lines)


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v

# LUNA16 nodule mode: pre-flight check, .mhd -> .npy conversion, labels per subset.


rule check_luna_inputs:
    """LUNA16: reads every header and CSV before any work (missing or truncated .raw, unreadable header, empty subset, unknown series, nodule outside its volume, malformed CSV: one error listing every problem); results/luna16/checks/."""
    input:
        scans=get_luna_scan_files(),
        annotations=luna_table("annotations"),
    output:
        scans=f"{RES}/luna16/checks/scans.tsv",
        report=f"{RES}/luna16/checks/inputs.json",
    conda:
        "../../envs/ctpatch.yaml"
    log:
        "logs/luna16/check_luna_inputs.log",
    params:
        root=lambda wc, input: str(Path(input.scans[0]).parents[1]),
        subsets=" ".join(get_luna_subsets()),
        unknown=LUNA["unknown_series"],
        candidates=(
            f"--candidates {q(luna_table('candidates'))}" if LUNA["negatives"]["strategy"] == "candidates" else ""
        ),
    shell:
        "python -m ctpatch.check_luna --root {params.root:q} --subsets {params.subsets} "
        "--annotations {input.annotations:q} {params.candidates} --unknown-series {params.unknown} "
        "--scans-out {output.scans} --report-out {output.report} > {log} 2>&1"


rule convert_mhd:
    """LUNA16, one scan: resample (isotropic 1.25 mm), HU window, .npy (z, y, x) + JSON sidecar (grid, source, settings); results/luna16/volumes/SUBSET/."""
    input:
        mhd=lambda wc: f"{luna_root()}/{wc.subset}/{wc.uid}.mhd",
        raw=lambda wc: f"{luna_root()}/{wc.subset}/{wc.uid}.raw",
        checked=f"{RES}/luna16/checks/scans.tsv",
    output:
        npy=f"{RES}/luna16/volumes/{{subset}}/{{uid}}.npy",
        json=f"{RES}/luna16/volumes/{{subset}}/{{uid}}.json",
    conda:
        "../../envs/ctpatch.yaml"
    log:
        "logs/luna16/convert_mhd/{subset}/{uid}.log",
    benchmark:
        f"{RES}/benchmarks/convert_mhd/{{subset}}/{{uid}}.tsv"
    # one scan per core: SimpleITK gets as many threads (a profile may raise it with set-threads)
    threads: 1
    params:
        settings=q({"resample": LUNA["resample"], "normalize": LUNA["normalize"]}),
    shell:
        "python -m ctpatch.convert --scan {input.mhd:q} --npy-out {output.npy} --json-out {output.json} "
        "--settings {params.settings} --threads {threads} > {log} 2>&1"


rule make_labels:
    """LUNA16, one subset: annotation spheres via the direction cosines, nodule table; results/luna16/labels/SUBSET/."""
    input:
        sidecars=get_sidecars,
        annotations=luna_table("annotations"),
        checked=f"{RES}/luna16/checks/scans.tsv",
    output:
        masks=directory(f"{RES}/luna16/labels/{{group}}/masks"),
        table=f"{RES}/luna16/labels/{{group}}/nodules.tsv",
    conda:
        "../../envs/ctpatch.yaml"
    log:
        "logs/luna16/make_labels/{group}.log",
    shell:
        "python -m ctpatch.make_labels --subset {wildcards.group} --sidecars {input.sidecars} "
        "--annotations {input.annotations:q} --masks-dir {output.masks} --table-out {output.table} > {log} 2>&1"

# LUNA16 nodule mode: pre-flight check, .mhd -> .npy conversion, labels per subset.


rule check_luna_inputs:
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
        subsets=get_luna_subsets(),
        unknown=LUNA["unknown_series"],
        duplicates=LUNA["duplicate_annotations"],
        candidates=(
            f"--candidates {q(luna_table('candidates'))}" if LUNA["negatives"]["strategy"] == "candidates" else ""
        ),
    shell:
        "{PYTHON} -m ctpatch.check_luna --root {params.root:q} --subsets {params.subsets:q} "
        "--annotations {input.annotations:q} {params.candidates} --unknown-series {params.unknown:q} "
        "--duplicates {params.duplicates:q} --scans-out {output.scans:q} --report-out {output.report:q} > {log:q} 2>&1"


rule convert_mhd:
    input:
        mhd=lambda wc: f"{luna_root()}/{wc.subset}/{wc.uid}.mhd",
        data=lambda wc: get_scan_data_file(f"{luna_root()}/{wc.subset}/{wc.uid}.mhd"),  # as its header names it
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
        settings=q({k: LUNA[k] for k in ("resample", "normalize", "plausibility")}),
    shell:
        "{PYTHON} -m ctpatch.convert --scan {input.mhd:q} --npy-out {output.npy:q} --json-out {output.json:q} "
        "--settings {params.settings} --threads {threads:q} > {log:q} 2>&1"


rule make_labels:
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
    params:
        duplicates=LUNA["duplicate_annotations"],
    shell:
        "{PYTHON} -m ctpatch.make_labels --subset {wildcards.group:q} --sidecars {input.sidecars:q} "
        "--annotations {input.annotations:q} --duplicates {params.duplicates:q} --masks-dir {output.masks:q} "
        "--table-out {output.table:q} > {log:q} 2>&1"

# LUNA16 nodule mode: pre-flight check, .mhd -> .npy conversion, labels per subset.


rule check_luna_inputs:
    """LUNA16: reads every header and CSV before any work (missing or truncated .raw, unreadable header, empty subset, unknown series, nodule outside its volume, malformed CSV: one error listing every problem); results/luna16/checks/."""
    input:
        scans=get_luna_scan_files(),
        annotations=luna_table("annotations"),
        settings=get_settings_file("check"),
    output:
        scans=f"{RES}/luna16/checks/scans.tsv",
        report=f"{RES}/luna16/checks/inputs.json",
    log:
        "logs/luna16/check_luna_inputs.log",
    conda:
        "../../envs/ctpatch.yaml"
    params:
        subsets=get_luna_subsets(),
    shell:
        '"$CTPATCH_PYTHON" -m ctpatch.luna16.check --settings-file {input.settings:q} --subsets {params.subsets:q} '
        "--scans-out {output.scans:q} --report-out {output.report:q} > {log:q} 2>&1"


rule convert_mhd:
    """LUNA16, one scan: resample (isotropic 1.25 mm), HU window, .npy (z, y, x) + JSON sidecar (grid, source, settings); results/luna16/volumes/SUBSET/."""
    input:
        unpack(get_scan_files),
        checked=f"{RES}/luna16/checks/scans.tsv",
        settings=get_settings_file("convert"),
    output:
        npy=f"{RES}/luna16/volumes/{{subset}}/{{uid}}.npy",
        json=f"{RES}/luna16/volumes/{{subset}}/{{uid}}.json",
    log:
        "logs/luna16/convert_mhd/{subset}/{uid}.log",
    benchmark:
        f"{RES}/benchmarks/convert_mhd/{{subset}}/{{uid}}.tsv"
    conda:
        "../../envs/ctpatch.yaml"
    # one scan per core: SimpleITK gets as many threads (a profile may raise it with set-threads)
    threads: 1
    shell:
        '"$CTPATCH_PYTHON" -m ctpatch.luna16.convert --scan {input.mhd:q} --npy-out {output.npy:q} --json-out {output.json:q} '
        "--settings-file {input.settings:q} --threads {threads:q} > {log:q} 2>&1"


rule make_labels:
    """LUNA16, one subset: annotation spheres via the direction cosines, nodule table; results/luna16/labels/SUBSET/."""
    input:
        sidecars=get_sidecars,
        annotations=luna_table("annotations"),
        checked=f"{RES}/luna16/checks/scans.tsv",
        settings=get_settings_file("check"),  # duplicate_annotations
    output:
        masks=directory(f"{RES}/luna16/labels/{{group}}/masks"),
        table=f"{RES}/luna16/labels/{{group}}/nodules.tsv",
    log:
        "logs/luna16/make_labels/{group}.log",
    conda:
        "../../envs/ctpatch.yaml"
    shell:
        '"$CTPATCH_PYTHON" -m ctpatch.luna16.labels --subset {wildcards.group:q} --sidecars {input.sidecars:q} '
        "--annotations {input.annotations:q} --settings-file {input.settings:q} --masks-dir {output.masks:q} --table-out {output.table:q} > {log:q} 2>&1"

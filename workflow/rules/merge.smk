# Merge the ranks' shards into the final patch file(s), then verify them.


rule merge_patches:
    input:
        f"{RES}/{MODE}/shards/{{group}}",
    output:
        f"{RES}/{MODE}/patches/{{group}}.h5",
    conda:
        "../../envs/ctpatch.yaml"
    log:
        f"logs/{MODE}/merge_patches/{{group}}.log",
    benchmark:
        f"{RES}/benchmarks/merge_patches/{MODE}/{{group}}.tsv"
    params:
        mode=MODE,
        seed=config["seed"],
        shuffle="yes" if LUNA["output"]["shuffle"] else "no",
        settings=lambda wc: q(luna_settings()),
    shell:
        "python -m ctpatch.merge --mode {params.mode} --shards-dir {input} --out {output} --seed {params.seed} "
        "--shuffle {params.shuffle} --settings {params.settings} > {log} 2>&1"


rule verify_patches:
    input:
        patches=lambda wc: get_patch_files(wc.group),
        nodules=f"{RES}/luna16/labels/{{group}}/nodules.tsv",
    output:
        f"{RES}/{MODE}/reports/{{group}}.verify.json",
    conda:
        "../../envs/ctpatch.yaml"
    log:
        f"logs/{MODE}/verify_patches/{{group}}.log",
    params:
        mode=MODE,
        settings=lambda wc: q(luna_settings()),
        scans=lambda wc: " ".join(LUNA_SCANS[wc.group]),
    shell:
        "python -m ctpatch.verify --mode {params.mode} --patches {input.patches} --nodules {input.nodules} "
        "--scans {params.scans} --settings {params.settings} --report-out {output} > {log} 2>&1"

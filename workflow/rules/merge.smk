# Merge the ranks' shards into the final patch file(s), verify them, draw sanity pictures.


rule merge_patches:
    """One group: canonical order, seeded shuffle, chunks copied compressed; results/MODE/patches/GROUP.h5."""
    input:
        f"{RES}/{MODE}/shards/{{group}}",
    output:
        [f"{RES}/{MODE}/patches/{{group}}{sfx}.h5" for sfx in PART_SUFFIXES],
    conda:
        "../../envs/ctpatch.yaml"
    log:
        f"logs/{MODE}/merge_patches/{{group}}.log",
    benchmark:
        f"{RES}/benchmarks/merge_patches/{MODE}/{{group}}.tsv"
    params:
        mode=MODE,
        seed=config["seed"],
        shuffle="yes" if output_settings()["shuffle"] else "no",
        settings=lambda wc: q(mode_settings()),
    shell:
        "python -m ctpatch.merge --mode {params.mode} --group {wildcards.group} --shards-dir {input} --out {output} "
        "--seed {params.seed} "
        "--shuffle {params.shuffle} --settings {params.settings} > {log} 2>&1"


rule verify_patches:
    """One group: counts, shapes, dtypes, NaN, labels; fails the job when wrong; results/MODE/report/GROUP.verify.json."""
    input:
        unpack(get_verify_inputs),
        patches=lambda wc: get_patch_files(wc.group),
    output:
        f"{RES}/{MODE}/report/{{group}}.verify.json",
    conda:
        "../../envs/ctpatch.yaml"
    log:
        f"logs/{MODE}/verify_patches/{{group}}.log",
    params:
        mode=MODE,
        settings=lambda wc: q(mode_settings()),
        args=get_verify_args,
    shell:
        "python -m ctpatch.verify --mode {params.mode} --patches {input.patches} {params.args} "
        "--settings {params.settings} --report-out {output} > {log} 2>&1"


rule sanity_pictures:
    """One group: a PNG of random patches with their provenance (LUNA16: three planes, label in red); results/MODE/sanity/GROUP.png."""
    input:
        lambda wc: get_patch_files(wc.group),
    output:
        report(
            f"{RES}/{MODE}/sanity/{{group}}.png",
            caption="../report/sanity.rst",
            category="Patch pictures",
            subcategory="{group}",
        ),
    conda:
        "../../envs/ctpatch.yaml"
    log:
        f"logs/{MODE}/sanity_pictures/{{group}}.log",
    params:
        seed=config["seed"],
    shell:
        "python -m ctpatch.sanity --patches {input} --out {output} --n 8 --seed {params.seed} > {log} 2>&1"

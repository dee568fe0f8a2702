# Merge the ranks' shards into the final patch file(s), verify them, draw sanity pictures.


rule merge_patches:
    """One group: canonical order, seeded shuffle, chunks copied compressed; results/MODE/patches/GROUP.h5."""
    input:
        shards=f"{RES}/{MODE}/shards/{{group}}",
        settings=get_settings_file("patches"),
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
    shell:
        "\"$CTPATCH_PYTHON\" -m ctpatch.merge --mode {params.mode:q} --group {wildcards.group:q} --shards-dir {input.shards:q} "
        "--out {output:q} --settings-file {input.settings:q} > {log:q} 2>&1"


rule verify_patches:
    """One group: counts, shapes, dtypes, NaN, labels; fails the job when wrong; results/MODE/report/GROUP.verify.json."""
    input:
        unpack(get_verify_inputs),
    output:
        f"{RES}/{MODE}/report/{{group}}.verify.json",
    conda:
        "../../envs/ctpatch.yaml"
    log:
        f"logs/{MODE}/verify_patches/{{group}}.log",
    params:
        mode=MODE,
        args=get_verify_args,
    shell:
        "\"$CTPATCH_PYTHON\" -m ctpatch.verify --mode {params.mode:q} --patches {input.patches:q} {params.args} "
        "--settings-file {input.settings:q} --report-out {output:q} > {log:q} 2>&1"


rule sanity_pictures:
    """One group: a PNG of random patches with their provenance (LUNA16: three planes, label in red); results/MODE/sanity/GROUP.png."""
    input:
        get_group_patch_files,
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
        "\"$CTPATCH_PYTHON\" -m ctpatch.sanity --patches {input:q} --out {output:q} --n 8 --seed {params.seed:q} > {log:q} 2>&1"

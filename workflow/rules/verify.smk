# Verify the patch files (checksums of every chunk, counts, provenance, a regenerated sample) and
# draw sanity pictures.


rule verify_patches:
    """One group: Fletcher32 of every chunk, counts, shapes, dtypes, provenance, labels, a seeded sample of patches regenerated from the inputs; fails the job when wrong; results/MODE/report/GROUP.verify.json."""
    input:
        unpack(get_verify_inputs),
    output:
        f"{RES}/{MODE}/report/{{group}}.verify.json",
    log:
        f"logs/{MODE}/verify_patches/{{group}}.log",
    conda:
        "../../envs/ctpatch.yaml"
    params:
        mode=MODE,
        args=get_verify_args,
        p=get_extract_params,
    shell:
        '"$CTPATCH_PYTHON" -m ctpatch.verify --mode {params.mode:q} --patches {input.patches:q} {params.args} '
        "--settings-file {input.settings:q} --inputs {params.p[inputs]} --report-out {output:q} > {log:q} 2>&1"


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
    log:
        f"logs/{MODE}/sanity_pictures/{{group}}.log",
    conda:
        "../../envs/ctpatch.yaml"
    params:
        seed=config["seed"],
    shell:
        '"$CTPATCH_PYTHON" -m ctpatch.sanity --patches {input:q} --out {output:q} --n 8 --seed {params.seed:q} > {log:q} 2>&1'

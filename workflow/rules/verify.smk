# Verify the patch files (checksums of every chunk, counts, provenance, a regenerated sample) and
# draw sanity pictures.


rule verify_patches:
    input:
        get_extract_inputs,
        unpack(get_verify_inputs),
        patches=lambda wc: get_patch_files(wc.group),
    output:
        f"{RES}/{MODE}/reports/{{group}}.verify.json",
    conda:
        "../../envs/ctpatch.yaml"
    log:
        f"logs/{MODE}/verify_patches/{{group}}.log",
    params:
        mode=MODE,
        p=get_extract_params,
        args=get_verify_args,
    shell:
        "python -m ctpatch.verify --mode {params.mode} --patches {input.patches:q} {params.args} "
        "--settings {params.p[settings]} --inputs {params.p[inputs]} --report-out {output:q} > {log:q} 2>&1"


rule sanity_pictures:
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

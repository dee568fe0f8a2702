# Verify the patch files (one job per subset, or one over all patients) (checksums of every chunk, counts, provenance, a regenerated sample) and
# draw sanity pictures.


rule verify_patches:
    """LUNA16, one subset (LDCT, all patients in one job): Fletcher32 of every chunk, counts, shapes, dtypes, provenance, labels, a seeded sample of patches regenerated from the inputs; fails the job when wrong; results/MODE/report/GROUP.verify.json."""
    input:
        unpack(get_verify_inputs),
    output:
        per_group(f"{RES}/{MODE}/report/{{group}}.verify.json"),
    log:
        get_log("verify_patches"),
    conda:
        "../../envs/ctpatch.yaml"
    params:
        module=f"ctpatch.{MODE}.verify",
        # pre-quoted: the subset's (LUNA16), or --groups and every patient, then with {group} (LDCT): --patches, --nodules, --scans, --inputs, --report-out
        args=get_group_args("verify_patches"),
    shell:
        '"$CTPATCH_PYTHON" -m {params.module:q} --settings-file {input.settings:q} {params.args} '
        "> {log:q} 2>&1"


rule sanity_pictures:
    """LUNA16, one subset (LDCT, all patients in one job): a PNG of random patches with their provenance (LUNA16: three planes, label in red); results/MODE/sanity/GROUP.png."""
    input:
        patches=get_job_patch_files,
    output:
        get_sanity_outputs(),
    log:
        get_log("sanity_pictures"),
    conda:
        "../../envs/ctpatch.yaml"
    params:
        seed=config["seed"],
        # pre-quoted: the subset's (LUNA16), or --groups and every patient, then with {group} (LDCT): --patches, --out
        args=get_group_args("sanity_pictures"),
    shell:
        '"$CTPATCH_PYTHON" -m ctpatch.report.sanity --n 8 --seed {params.seed:q} {params.args} > {log:q} 2>&1'

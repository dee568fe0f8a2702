# LDCT output.combined: every patient's patches in one file (or nsplit files), as the reference
# wrote them: HDF5 virtual datasets over the per-patient files, or copies of their chunks (ctpatch.combine).

if LDCT_COMBINED:

    rule combine_patches:
        input:
            [get_patch_files(p)[0] for p in get_ldct_patients()],
        output:
            parts=get_combined_files(),
            report=f"{RES}/ldct/reports/combined.json",
        conda:
            "../../envs/ctpatch.yaml"
        log:
            "logs/ldct/combine_patches.log",
        params:
            seed=config["seed"],
            shuffle="yes" if LDCT["output"]["shuffle"] else "no",
            how=LDCT["output"]["combined"],
        shell:
            "python -m ctpatch.combine --sources {input:q} --out {output.parts:q} --seed {params.seed} "
            "--shuffle {params.shuffle} --how {params.how} --report-out {output.report:q} > {log} 2>&1"

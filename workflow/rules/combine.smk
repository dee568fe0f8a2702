# LDCT output.combined: every patient's patches in one file (or nsplit files), as the reference
# wrote them: HDF5 virtual datasets over the per-patient files, or copies of their chunks (ctpatch.ldct.combine).

if LDCT_COMBINED:

    rule combine_patches:
        """All patients: results/ldct/combined/all.h5 (all.partK.h5 with nsplit) over the per-patient files."""
        input:
            [get_patch_files(p)[0] for p in get_ldct_patients()],
        output:
            parts=get_combined_files(),
            report=f"{RES}/ldct/report/combined.json",
        log:
            "logs/ldct/combine_patches.log",
        conda:
            "../../envs/ctpatch.yaml"
        params:
            seed=config["seed"],
            shuffle="yes" if LDCT["output"]["shuffle"] else "no",
            how=LDCT["output"]["combined"],
        shell:
            '"$CTPATCH_PYTHON" -m ctpatch.ldct.combine --sources {input:q} --out {output.parts:q} --seed {params.seed:q} '
            "--shuffle {params.shuffle:q} --how {params.how:q} --report-out {output.report:q} > {log:q} 2>&1"

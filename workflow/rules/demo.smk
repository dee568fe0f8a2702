# The built-in LUNA16-like demo data set (used when luna16.root is "demo").

if LUNA["root"] == "demo" and MODE == "luna16":

    rule make_demo_luna16:
        """LUNA16, only with luna16.root: demo: generates LUNA-like scans, annotations.csv, candidates.csv; results/demo/luna16/."""
        input:
            settings=get_settings_file("demo"),
        output:
            scans=get_luna_scan_files(),
            annotations=f"{DEMO_ROOT}/CSVFILES/annotations.csv",
            candidates=f"{DEMO_ROOT}/CSVFILES/candidates.csv",
        log:
            f"{LOGS}/demo/make_demo_luna16.log",
        conda:
            "../../envs/ctpatch.yaml"
        params:
            out=get_demo_folder,
        shell:
            '"$CTPATCH_PYTHON" -m ctpatch.luna16.demo --out {params.out:q} --settings-file {input.settings:q} > {log:q} 2>&1'

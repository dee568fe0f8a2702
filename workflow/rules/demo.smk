# The built-in LUNA16-like demo data set (used when luna16.root is "demo").

if LUNA["root"] == "demo" and MODE == "luna16":

    rule make_demo_luna16:
        """LUNA16, only with luna16.root: demo: generates LUNA-like scans, annotations.csv, candidates.csv; results/demo/luna16/."""
        output:
            scans=get_luna_scan_files(),
            annotations=f"{DEMO_ROOT}/CSVFILES/annotations.csv",
            candidates=f"{DEMO_ROOT}/CSVFILES/candidates.csv",
        conda:
            "../../envs/ctpatch.yaml"
        log:
            "logs/demo/make_demo_luna16.log",
        params:
            out=lambda wc, output: str(Path(output.annotations).parents[1]),
            settings=q(config["demo"]),
            seed=config["seed"],
        shell:
            "python -m ctpatch.demo --out {params.out} --settings {params.settings} --seed {params.seed} > {log} 2>&1"

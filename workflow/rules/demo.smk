# The built-in LUNA16-like demo data set (used when luna16.root is "demo").

if LUNA["root"] == "demo" and MODE == "luna16":

    rule make_demo_luna16:
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
            "{PYTHON} -m ctpatch.demo --out {params.out:q} --settings {params.settings} --seed {params.seed:q} > {log:q} 2>&1"

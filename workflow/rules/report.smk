# Tables and pictures for `snakemake --report report.html`, and the pre-flight plan.


rule plan:
    """The pre-flight plan from headers and tables (patches, sizes, memory, time); results/MODE/report/plan.txt."""
    input:
        # LUNA16: after the pre-flight check, so a bad input is reported by it, naming the file
        lambda wc: [f"{RES}/luna16/checks/scans.tsv"] if MODE == "luna16" else [],
    output:
        json=f"{RES}/{MODE}/report/plan.json",
        text=report(f"{RES}/{MODE}/report/plan.txt", caption="../report/plan.rst", category="Plan"),
    conda:
        "../../envs/ctpatch.yaml"
    log:
        f"logs/{MODE}/plan.log",
    params:
        cfg=q(config),
    shell:
        "python -m ctpatch.plan --config-json {params.cfg} --json {output.json} "
        "--text {output.text} > {log} 2>&1"


rule verification_table:
    """One table of every group's verification, for the report; results/MODE/report/verification.tsv."""
    input:
        lambda wc: [f"{RES}/{MODE}/report/{g}.verify.json" for g in get_groups()],
    output:
        report(
            f"{RES}/{MODE}/report/verification.tsv",
            caption="../report/verification.rst",
            category="Verification",
        ),
    conda:
        "../../envs/ctpatch.yaml"
    log:
        f"logs/{MODE}/verification_table.log",
    shell:
        "python -m ctpatch.summarize verification --reports {input} --out {output} > {log} 2>&1"


rule report_config:
    """The validated config (defaults filled in), for the report; results/MODE/report/config.yaml."""
    output:
        report(f"{RES}/{MODE}/report/config.yaml", caption="../report/config.rst", category="Config"),
    conda:
        "../../envs/ctpatch.yaml"
    log:
        f"logs/{MODE}/report_config.log",
    params:
        cfg=q(config),
    shell:
        "python -m ctpatch.summarize config --json {params.cfg} --out {output} > {log} 2>&1"


rule nodule_accounting:
    """LUNA16: every row of annotations.csv and its patches, or why it has none; results/luna16/report/nodule_accounting.tsv."""
    input:
        annotations=luna_table("annotations"),
        nodules=lambda wc: [f"{RES}/luna16/labels/{g}/nodules.tsv" for g in get_luna_subsets()],
        patches=lambda wc: [f"{RES}/luna16/patches/{g}.h5" for g in get_luna_subsets()],
    output:
        table=report(
            f"{RES}/luna16/report/nodule_accounting.tsv",
            caption="../report/nodule_accounting.rst",
            category="Nodule accounting",
        ),
        summary=f"{RES}/luna16/report/nodule_accounting.json",
    conda:
        "../../envs/ctpatch.yaml"
    log:
        "logs/luna16/nodule_accounting.log",
    params:
        root=lambda wc, input: str(Path(luna_root())),
        per_nodule=1 + 2 * LUNA["patch"]["shifts_per_side"] * len(LUNA["patch"]["directions"]),
    shell:
        "python -m ctpatch.accounting --annotations {input.annotations:q} --root {params.root:q} "
        "--nodules {input.nodules} --patches {input.patches} --per-nodule {params.per_nodule} "
        "--out {output.table} --summary-out {output.summary} > {log} 2>&1"


rule nodule_pictures:
    """LUNA16, one subset: unshifted nodule patches in three planes and a grid of negatives, for the report; results/luna16/report/SUBSET.*.png."""
    input:
        f"{RES}/luna16/patches/{{group}}.h5",
    output:
        nodules=report(
            f"{RES}/luna16/report/{{group}}.nodules.png",
            caption="../report/nodules.rst",
            category="LUNA16 patches",
            subcategory="{group}",
        ),
        negatives=report(
            f"{RES}/luna16/report/{{group}}.negatives.png",
            caption="../report/negatives.rst",
            category="LUNA16 patches",
            subcategory="{group}",
        ),
    conda:
        "../../envs/ctpatch.yaml"
    log:
        "logs/luna16/nodule_pictures/{group}.log",
    params:
        seed=config["seed"],
    shell:
        "(python -m ctpatch.sanity --patches {input} --out {output.nodules} --n 6 --seed {params.seed} "
        "--kind nodule --centre-only && python -m ctpatch.sanity --patches {input} --out {output.negatives} "
        "--n 24 --seed {params.seed} --kind non_nodule --grid) > {log} 2>&1"

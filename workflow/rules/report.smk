# Tables and pictures for `snakemake --report report.html`, and the pre-flight plan.


rule plan:
    """The pre-flight plan from headers and tables (patches, sizes, memory, time); results/MODE/report/plan.txt."""
    input:
        unpack(get_plan_inputs),
    output:
        json=f"{RES}/{MODE}/report/plan.json",
        text=report(f"{RES}/{MODE}/report/plan.txt", caption="../report/plan.rst", category="Plan"),
    log:
        f"logs/{MODE}/plan.log",
    conda:
        "../../envs/ctpatch.yaml"
    shell:
        '"$CTPATCH_PYTHON" -m ctpatch.report.plan --settings-file {input.settings:q} --json {output.json:q} '
        "--text {output.text:q} > {log:q} 2>&1"


rule verification_table:
    """One table of every group's verification, for the report; results/MODE/report/verification.tsv."""
    input:
        get_verify_reports,
    output:
        report(
            f"{RES}/{MODE}/report/verification.tsv",
            caption="../report/verification.rst",
            category="Verification",
        ),
    log:
        f"logs/{MODE}/verification_table.log",
    conda:
        "../../envs/ctpatch.yaml"
    shell:
        '"$CTPATCH_PYTHON" -m ctpatch.report.summarize verification --reports {input:q} --out {output:q} > {log:q} 2>&1'


rule report_config:
    """The validated config (defaults filled in), for the report; results/MODE/report/config.yaml."""
    input:
        get_settings_file("plan"),
    output:
        report(f"{RES}/{MODE}/report/config.yaml", caption="../report/config.rst", category="Config"),
    log:
        f"logs/{MODE}/report_config.log",
    conda:
        "../../envs/ctpatch.yaml"
    shell:
        '"$CTPATCH_PYTHON" -m ctpatch.report.summarize config --settings-file {input:q} --out {output:q} > {log:q} 2>&1'


rule nodule_accounting:
    """LUNA16: every row of annotations.csv and its patches, or why it has none; results/luna16/report/nodule_accounting.tsv."""
    input:
        unpack(get_accounting_inputs),
    output:
        table=report(
            f"{RES}/luna16/report/nodule_accounting.tsv",
            caption="../report/nodule_accounting.rst",
            category="Nodule accounting",
        ),
        summary=f"{RES}/luna16/report/nodule_accounting.json",
    log:
        "logs/luna16/nodule_accounting.log",
    conda:
        "../../envs/ctpatch.yaml"
    shell:
        '"$CTPATCH_PYTHON" -m ctpatch.luna16.accounting --annotations {input.annotations:q} --settings-file {input.settings:q} '
        "--nodules {input.nodules:q} --patches {input.patches:q} "
        "--out {output.table:q} --summary-out {output.summary:q} > {log:q} 2>&1"


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
    log:
        "logs/luna16/nodule_pictures/{group}.log",
    conda:
        "../../envs/ctpatch.yaml"
    params:
        seed=config["seed"],
    shell:
        '("$CTPATCH_PYTHON" -m ctpatch.report.sanity --patches {input:q} --out {output.nodules:q} --n 6 --seed {params.seed:q} '
        '--kind nodule --centre-only && "$CTPATCH_PYTHON" -m ctpatch.report.sanity --patches {input:q} --out {output.negatives:q} '
        "--n 24 --seed {params.seed:q} --kind non_nodule --grid) > {log:q} 2>&1"

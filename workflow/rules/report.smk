# Tables for `snakemake --report report.html`, and the pre-flight plan (both modes; LUNA16's nodule
# accounting and pictures are in luna16.smk).


rule plan:
    """The pre-flight plan from headers and tables (patches, sizes, memory, time); results/MODE/report/plan.txt."""
    input:
        unpack(get_plan_inputs),
    output:
        json=f"{RES}/{MODE}/report/plan.json",
        text=report(f"{RES}/{MODE}/report/plan.txt", caption="../report/plan.rst", category="Plan"),
    log:
        f"{LOGS}/{MODE}/plan.log",
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
        f"{LOGS}/{MODE}/verification_table.log",
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
        f"{LOGS}/{MODE}/report_config.log",
    conda:
        "../../envs/ctpatch.yaml"
    shell:
        '"$CTPATCH_PYTHON" -m ctpatch.report.summarize config --settings-file {input:q} --out {output:q} > {log:q} 2>&1'

# One settings file per step scope (ctpatch.settings.SCOPES): the only way settings reach the steps.
# A scope's file is rewritten only when its own settings change (Snakemake's params trigger), so a
# changed key reruns exactly the steps that depend on it.


localrules:
    write_settings,


rule write_settings:
    """One settings file per scope (the steps read their settings from it); results/MODE/settings/SCOPE.json."""
    output:
        f"{RES}/{MODE}/settings/{{scope}}.json",
    log:
        f"logs/{MODE}/write_settings/{{scope}}.log",
    conda:
        "../../envs/ctpatch.yaml"
    params:
        # the file's text (ctpatch.settings.settings_text).  A shell rule, not run: -- Snakemake runs a run:
        # job by starting a second Snakemake that parses the whole workflow again (seconds per file)
        text=get_scope_settings_text,
    shell:
        "(printf '%s\\n' {params.text:q} > {output:q}.tmp && mv {output:q}.tmp {output:q}) 2> {log:q}"

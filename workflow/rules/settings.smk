# One settings file per step scope (ctpatch.config.SCOPES): the only way settings reach the steps.
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
    params:
        settings=get_scope_settings,
    run:
        cfg.write_settings(params.settings, output[0], wildcards.scope)

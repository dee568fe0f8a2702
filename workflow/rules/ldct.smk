# LDCT input/target mode: slice pairing per patient (DICOM headers only).


rule pair_slices:
    """LDCT, one patient: DICOM headers only, pairs by slice position (or by name), fails naming both files on an unpaired, duplicate or mismatched slice; results/ldct/pairs/PATIENT.tsv."""
    input:
        inputs=lambda wc: f"{LDCT['root']}/{wc.group}/{LDCT['input_dir']}",
        targets=lambda wc: f"{LDCT['root']}/{wc.group}/{LDCT['target_dir']}",
    output:
        table=f"{RES}/ldct/pairs/{{group}}.tsv",
        report=f"{RES}/ldct/pairs/{{group}}.json",
    conda:
        "../../envs/ctpatch.yaml"
    log:
        "logs/ldct/pair_slices/{group}.log",
    params:
        patient_dir=lambda wc, input: str(Path(input.inputs).parent),
        input_dir=LDCT["input_dir"],
        target_dir=LDCT["target_dir"],
        by=LDCT["pair_by"],
        on_error=LDCT["on_error"],
        random_n=LDCT["random_n"],
        seed=config["seed"],
    shell:
        "python -m ctpatch.pair_ldct --patient-dir {params.patient_dir:q} --input-dir {params.input_dir:q} "
        "--target-dir {params.target_dir:q} --by {params.by} --on-error {params.on_error} "
        "--random-n {params.random_n} --seed {params.seed} --table-out {output.table} "
        "--report-out {output.report} > {log} 2>&1"

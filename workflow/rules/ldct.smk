# LDCT input/target mode: slice pairing per patient (DICOM headers only).


rule pair_slices:
    input:
        inputs=lambda wc: f"{LDCT['root']}/{wc.group}/{LDCT['input_dir']}",
        targets=lambda wc: f"{LDCT['root']}/{wc.group}/{LDCT['target_dir']}",
        settings=get_settings_file("pairs"),
    output:
        table=f"{RES}/ldct/pairs/{{group}}.tsv",
        report=f"{RES}/ldct/pairs/{{group}}.json",
    conda:
        "../../envs/ctpatch.yaml"
    log:
        "logs/ldct/pair_slices/{group}.log",
    params:
        patient_dir=lambda wc, input: str(Path(input.inputs).parent),
    shell:
        "{PYTHON} -m ctpatch.pair_ldct --patient-dir {params.patient_dir:q} --settings-file {input.settings:q} "
        "--table-out {output.table:q} --report-out {output.report:q} > {log:q} 2>&1"

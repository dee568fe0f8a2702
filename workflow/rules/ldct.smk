# LDCT input/target mode: slice pairing per patient (DICOM headers only).


rule pair_slices:
    """LDCT, one patient: DICOM headers only, pairs by slice position (or by name), fails naming both files on an unpaired, duplicate or mismatched slice; results/ldct/pairs/PATIENT.tsv."""
    input:
        unpack(get_patient_folders),
        settings=get_settings_file("pairs"),
    output:
        table=f"{RES}/ldct/pairs/{{group}}.tsv",
        report=f"{RES}/ldct/pairs/{{group}}.json",
    log:
        "logs/ldct/pair_slices/{group}.log",
    conda:
        "../../envs/ctpatch.yaml"
    params:
        patient_dir=get_patient_dir,
    shell:
        '"$CTPATCH_PYTHON" -m ctpatch.pair_ldct --patient-dir {params.patient_dir:q} --settings-file {input.settings:q} '
        "--table-out {output.table:q} --report-out {output.report:q} > {log:q} 2>&1"

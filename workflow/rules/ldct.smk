# LDCT input/target mode: slice pairing (DICOM headers only), one job over all patients.

if MODE == "ldct":

    rule pair_slices:
        """LDCT, all patients in one job: DICOM headers only, pairs by slice position (or by name), fails naming both files on an unpaired, duplicate or mismatched slice (every bad patient reported); results/ldct/pairs/PATIENT.tsv."""
        input:
            folders=get_all_patient_folders,
            settings=get_settings_file("pairs"),
        output:
            table=per_group(f"{RES}/ldct/pairs/{{group}}.tsv"),
            report=per_group(f"{RES}/ldct/pairs/{{group}}.json"),
        log:
            "logs/ldct/pair_slices.log",
        conda:
            "../../envs/ctpatch.yaml"
        params:
            # pre-quoted: --groups and the patients, then --patient-dir, --table-out, --report-out with {group}
            args=get_group_args("pair_slices"),
        shell:
            '"$CTPATCH_PYTHON" -m ctpatch.ldct.pairing --settings-file {input.settings:q} {params.args} > {log:q} 2>&1'

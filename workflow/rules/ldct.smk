# LDCT input/target mode: slice pairing (DICOM headers only), the MPI extraction, its verification
# and the sanity pictures, each ONE job over all patients with the same per-patient files (a patient
# is a few slices: one job each spent more time starting Python and MPI than working).  Each job's
# command names every patient's files, in patient order (each patient's nsplit parts together); the
# programs split them per patient and check that every file is named after its patient.  Then, with
# output.combined, every patient's patches in one file (or nsplit files).
# `resources.mpi` is the launcher (mpiexec here; profiles/slurm sets an srun command, see there) and
# `resources.tasks` the number of ranks; the program checks that it got one world of that size.

if MODE == "ldct":

    rule pair_slices:
        """LDCT, all patients in one job: DICOM headers only, pairs by slice position (or by name), fails naming both files on an unpaired, duplicate or mismatched slice (every bad patient reported); results/ldct/pairs/PATIENT.tsv."""
        input:
            folders=get_patient_folders,
            settings=get_settings_file("pairs"),
        output:
            tables=get_pair_tables(),
            reports=[f"{RES}/ldct/pairs/{p}.json" for p in GROUPS],
        log:
            f"{LOGS}/ldct/pair_slices.log",
        conda:
            "../../envs/ctpatch.yaml"
        params:
            patients=get_patient_dirs(),
        shell:
            '"$CTPATCH_PYTHON" -m ctpatch.ldct.pairing --settings-file {input.settings:q} --patient-dir {params.patients:q} '
            "--table-out {output.tables:q} --report-out {output.reports:q} > {log:q} 2>&1"

    rule extract_patches:
        """LDCT, all patients in one MPI world: extract.tasks ranks cut and compress the patches; rank 0 writes each chunk once at its final (seeded-shuffle) row, one patient's file(s) after the other; results/ldct/patches/PATIENT.h5."""
        input:
            settings=get_settings_file("patches"),
            pairs=get_pair_tables(),
        output:
            get_all_patch_files(),
        log:
            f"{LOGS}/ldct/extract_patches.log",
        benchmark:
            f"{RES}/benchmarks/extract_patches/ldct/all.tsv"
        conda:
            "../../envs/ctpatch.yaml"
        # extract.tasks ranks, never more than --cores: Snakemake caps the threads at --cores, the ranks are
        # the threads (--cores 1: one rank; the files are the same for any number of ranks)
        threads: config["extract"]["tasks"]
        resources:
            mpi=config["extract"]["mpi"],
            tasks=get_extract_tasks,
            # patches a rank compresses at a time: memory, not bytes (a resource: changing it reruns nothing)
            buffer_patches=config["extract"]["buffer_patches"],
            nodes=config["extract"]["nodes"],
        shell:
            # --set-resources extract_patches:tasks=0 (or "x") must be named as such, not left to the launcher
            "if ! [ {resources.tasks:q} -ge 1 ] 2>/dev/null; then echo 'error: extract_patches: resources.tasks "
            "must be a whole number >= 1 (config extract.tasks, or --set-resources extract_patches:tasks=N), got' "
            "{resources.tasks:q} | tee {log:q} >&2; exit 1; fi; "
            "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "  # one core per rank: BLAS threads would fight the other ranks
            # resources.mpi is a command with its own words (e.g. "srun --mpi=pmi2"): deliberately not quoted
            '{resources.mpi} -n {resources.tasks:q} "$CTPATCH_PYTHON" -m ctpatch.ldct.extract --ranks {resources.tasks:q} '
            "--settings-file {input.settings:q} --buffer-patches {resources.buffer_patches:q} --pairs {input.pairs:q} --out {output:q} "
            # its output to its log and to the terminal (rank 0's progress lines, errors)
            "2>&1 | tee {log:q}"

    rule verify_patches:
        """LDCT, all patients in one job: Fletcher32 of every chunk, counts, shapes, dtypes, provenance, value statistics, a seeded sample of patches regenerated from the pair tables; fails the job when wrong; results/ldct/report/PATIENT.verify.json."""
        input:
            settings=get_settings_file("patches"),
            pairs=get_pair_tables(),
            patches=get_all_patch_files(),
        output:
            [f"{RES}/ldct/report/{p}.verify.json" for p in GROUPS],
        log:
            f"{LOGS}/ldct/verify_patches.log",
        conda:
            "../../envs/ctpatch.yaml"
        shell:
            '"$CTPATCH_PYTHON" -m ctpatch.ldct.verify --settings-file {input.settings:q} --pairs {input.pairs:q} '
            "--patches {input.patches:q} --report-out {output:q} > {log:q} 2>&1"

    rule sanity_pictures:
        """LDCT, all patients in one job: a PNG per patient of random patches with their provenance (input, target, difference); results/ldct/sanity/PATIENT.png."""
        input:
            get_all_patch_files(),
        output:
            [
                report(
                    f"{RES}/ldct/sanity/{p}.png",
                    caption="../report/sanity.rst",
                    category="Patch pictures",
                    subcategory=p,
                )
                for p in GROUPS
            ],
        log:
            f"{LOGS}/ldct/sanity_pictures.log",
        conda:
            "../../envs/ctpatch.yaml"
        params:
            seed=config["seed"],
        shell:
            '"$CTPATCH_PYTHON" -m ctpatch.report.sanity --n 8 --seed {params.seed:q} --patches {input:q} --out {output:q} '
            "> {log:q} 2>&1"

    if LDCT_COMBINED:

        rule combine_patches:
            """LDCT, all patients: results/ldct/combined/all.h5 (all.partK.h5 with nsplit) over the per-patient files (virtual datasets, or copies of their chunks)."""
            input:
                get_all_patch_files(),
            output:
                parts=COMBINED_FILES,
                report=f"{RES}/ldct/report/combined.json",
            log:
                f"{LOGS}/ldct/combine_patches.log",
            conda:
                "../../envs/ctpatch.yaml"
            params:
                seed=config["seed"],
                shuffle="yes" if LDCT["output"]["shuffle"] else "no",
                how=LDCT["output"]["combined"],
            shell:
                '"$CTPATCH_PYTHON" -m ctpatch.ldct.combine --sources {input:q} --out {output.parts:q} --seed {params.seed:q} '
                "--shuffle {params.shuffle:q} --how {params.how:q} --report-out {output.report:q} > {log:q} 2>&1"

# LUNA16 nodule mode: pre-flight check, .mhd -> .npy conversion, labels, then per subset the MPI
# extraction, its verification, the sanity and nodule pictures, and the nodule accounting.
# The extraction writes the final patch file once, in canonical (shuffled, rank-independent) order:
# ranks cut and compress, rank 0 writes (ctpatch.engine.mpi, ctpatch.store.writer); no shards, no
# merge: peak disk is one copy.  `resources.mpi` is the launcher (mpiexec here; profiles/slurm sets an
# srun command, see there) and `resources.tasks` the number of ranks; the program checks that it got
# one world of that size.

if MODE == "luna16":

    rule check_luna_inputs:
        """LUNA16: reads every header and CSV before any work (missing or truncated .raw, unreadable header, empty subset, unknown series, nodule outside its volume, malformed CSV: one error listing every problem); results/luna16/checks/."""
        input:
            scans=get_luna_scan_files(),
            annotations=luna_table("annotations"),
            settings=get_settings_file("check"),
        output:
            scans=f"{RES}/luna16/checks/scans.tsv",
            report=f"{RES}/luna16/checks/inputs.json",
        log:
            f"{LOGS}/luna16/check_luna_inputs.log",
        conda:
            "../../envs/ctpatch.yaml"
        params:
            subsets=GROUPS,
            run=get_settings_file("run"),  # not an input: its policies rerun nothing (ctpatch.settings.UNTRACKED)
        shell:
            '"$CTPATCH_PYTHON" -m ctpatch.luna16.check --settings-file {input.settings:q} --run-settings-file {params.run:q} '
            "--subsets {params.subsets:q} "
            "--scans-out {output.scans:q} --report-out {output.report:q} > {log:q} 2>&1"

    rule convert_mhd:
        """LUNA16, one scan: resample (isotropic 1.25 mm), HU window, .npy (z, y, x) + JSON sidecar (grid, source, settings); results/luna16/volumes/SUBSET/."""
        input:
            unpack(get_scan_files),
            checked=f"{RES}/luna16/checks/scans.tsv",  # the pre-flight check first
            settings=get_settings_file("convert"),
        output:
            npy=f"{RES}/luna16/volumes/{{subset}}/{{uid}}.npy",
            json=f"{RES}/luna16/volumes/{{subset}}/{{uid}}.json",
        log:
            f"{LOGS}/luna16/convert_mhd/{{subset}}/{{uid}}.log",
        benchmark:
            f"{RES}/benchmarks/convert_mhd/{{subset}}/{{uid}}.tsv"
        conda:
            "../../envs/ctpatch.yaml"
        # one scan per core: SimpleITK gets as many threads (a profile may raise it with set-threads)
        threads: 1
        params:
            run=get_settings_file("run"),  # the plausibility check: not an input (ctpatch.settings.UNTRACKED)
        shell:
            '"$CTPATCH_PYTHON" -m ctpatch.luna16.convert --scan {input.mhd:q} --npy-out {output.npy:q} --json-out {output.json:q} '
            "--settings-file {input.settings:q} --run-settings-file {params.run:q} --threads {threads:q} > {log:q} 2>&1"

    rule make_labels:
        """LUNA16, one subset: annotation spheres via the direction cosines, nodule table; results/luna16/labels/SUBSET/."""
        input:
            sidecars=get_sidecars,
            annotations=luna_table("annotations"),
            checked=f"{RES}/luna16/checks/scans.tsv",  # the pre-flight check first
            settings=get_settings_file("check"),  # duplicate_annotations
        output:
            masks=directory(f"{RES}/luna16/labels/{{subset}}/masks"),
            table=f"{RES}/luna16/labels/{{subset}}/nodules.tsv",
        log:
            f"{LOGS}/luna16/make_labels/{{subset}}.log",
        conda:
            "../../envs/ctpatch.yaml"
        shell:
            '"$CTPATCH_PYTHON" -m ctpatch.luna16.labels --subset {wildcards.subset:q} --sidecars {input.sidecars:q} '
            "--annotations {input.annotations:q} --settings-file {input.settings:q} --masks-dir {output.masks:q} --table-out {output.table:q} > {log:q} 2>&1"

    rule extract_patches:
        """LUNA16, one subset: extract.tasks MPI ranks cut and compress the patches; rank 0 writes each chunk once at its final (seeded-shuffle) row; results/luna16/patches/SUBSET.h5."""
        input:
            settings=get_settings_file("patches"),
            sidecars=get_sidecars,
            volumes=get_volume_arrays,  # read through their sidecars
            masks=f"{RES}/luna16/labels/{{subset}}/masks",
            nodules=f"{RES}/luna16/labels/{{subset}}/nodules.tsv",
            candidates=get_candidates_table,
        output:
            f"{RES}/luna16/patches/{{subset}}.h5",
        log:
            f"{LOGS}/luna16/extract_patches/{{subset}}.log",
        benchmark:
            f"{RES}/benchmarks/extract_patches/luna16/{{subset}}.tsv"
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
        params:
            candidates=get_candidates_args,  # ["--candidates", candidates.csv] or nothing
        shell:
            # --set-resources extract_patches:tasks=0 (or "x") must be named as such, not left to the launcher
            "if ! [ {resources.tasks:q} -ge 1 ] 2>/dev/null; then echo 'error: extract_patches: resources.tasks "
            "must be a whole number >= 1 (config extract.tasks, or --set-resources extract_patches:tasks=N), got' "
            "{resources.tasks:q} | tee {log:q} >&2; exit 1; fi; "
            "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "  # one core per rank: BLAS threads would fight the other ranks
            # resources.mpi is a command with its own words (e.g. "srun --mpi=pmi2"): deliberately not quoted
            '{resources.mpi} -n {resources.tasks:q} "$CTPATCH_PYTHON" -m ctpatch.luna16.extract --ranks {resources.tasks:q} '
            "--settings-file {input.settings:q} --buffer-patches {resources.buffer_patches:q} --group {wildcards.subset:q} --out {output:q} "
            "--sidecars {input.sidecars:q} --masks-dir {input.masks:q} --nodules {input.nodules:q} {params.candidates:q} "
            # its output to its log and to the terminal (rank 0's progress lines, errors)
            "2>&1 | tee {log:q}"

    rule verify_patches:
        """LUNA16, one subset: Fletcher32 of every chunk, counts, shapes, dtypes, provenance, labels, a seeded sample of patches regenerated from the extraction's inputs; fails the job when wrong; results/luna16/report/SUBSET.verify.json."""
        input:
            settings=get_settings_file("patches"),
            patches=f"{RES}/luna16/patches/{{subset}}.h5",
            sidecars=get_sidecars,
            volumes=get_volume_arrays,
            masks=f"{RES}/luna16/labels/{{subset}}/masks",
            nodules=f"{RES}/luna16/labels/{{subset}}/nodules.tsv",
            candidates=get_candidates_table,
        output:
            f"{RES}/luna16/report/{{subset}}.verify.json",
        log:
            f"{LOGS}/luna16/verify_patches/{{subset}}.log",
        conda:
            "../../envs/ctpatch.yaml"
        params:
            candidates=get_candidates_args,
        shell:
            '"$CTPATCH_PYTHON" -m ctpatch.luna16.verify --settings-file {input.settings:q} --patches {input.patches:q} '
            "--nodules {input.nodules:q} --sidecars {input.sidecars:q} --masks-dir {input.masks:q} {params.candidates:q} "
            "--report-out {output:q} > {log:q} 2>&1"

    rule sanity_pictures:
        """LUNA16, one subset: a PNG of random patches with their provenance (three planes, label in red); results/luna16/sanity/SUBSET.png."""
        input:
            f"{RES}/luna16/patches/{{subset}}.h5",
        output:
            report(
                f"{RES}/luna16/sanity/{{subset}}.png",
                caption="../report/sanity.rst",
                category="Patch pictures",
                subcategory="{subset}",
            ),
        log:
            f"{LOGS}/luna16/sanity_pictures/{{subset}}.log",
        conda:
            "../../envs/ctpatch.yaml"
        params:
            seed=config["seed"],
        shell:
            '"$CTPATCH_PYTHON" -m ctpatch.report.sanity --n 8 --seed {params.seed:q} --patches {input:q} --out {output:q} '
            "> {log:q} 2>&1"

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
            f"{LOGS}/luna16/nodule_accounting.log",
        conda:
            "../../envs/ctpatch.yaml"
        shell:
            '"$CTPATCH_PYTHON" -m ctpatch.luna16.accounting --annotations {input.annotations:q} --settings-file {input.settings:q} '
            "--check-settings-file {input.check:q} --nodules {input.nodules:q} --patches {input.patches:q} "
            "--out {output.table:q} --summary-out {output.summary:q} > {log:q} 2>&1"

    rule nodule_pictures:
        """LUNA16, one subset: unshifted nodule patches in three planes and a grid of negatives, for the report; results/luna16/report/SUBSET.*.png."""
        input:
            f"{RES}/luna16/patches/{{subset}}.h5",
        output:
            nodules=report(
                f"{RES}/luna16/report/{{subset}}.nodules.png",
                caption="../report/nodules.rst",
                category="LUNA16 patches",
                subcategory="{subset}",
            ),
            negatives=report(
                f"{RES}/luna16/report/{{subset}}.negatives.png",
                caption="../report/negatives.rst",
                category="LUNA16 patches",
                subcategory="{subset}",
            ),
        log:
            f"{LOGS}/luna16/nodule_pictures/{{subset}}.log",
        conda:
            "../../envs/ctpatch.yaml"
        params:
            seed=config["seed"],
        shell:
            '("$CTPATCH_PYTHON" -m ctpatch.report.sanity --patches {input:q} --out {output.nodules:q} --n 6 --seed {params.seed:q} '
            '--kind nodule --centre-only && "$CTPATCH_PYTHON" -m ctpatch.report.sanity --patches {input:q} --out {output.negatives:q} '
            "--n 24 --seed {params.seed:q} --kind non_nodule --grid) > {log:q} 2>&1"

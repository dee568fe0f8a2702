# The patch extraction: one MPI job per subset (LUNA16), or one over all patients (LDCT), writing the final
# patch file(s) once, in canonical (shuffled, rank-independent) order: ranks cut and compress,
# rank 0 writes (ctpatch.engine.mpi, ctpatch.store.writer).  No shards, no merge: peak disk is one copy.
# `resources.mpi` is the launcher (mpiexec here; profiles/slurm sets an srun command, see there) and
# `resources.tasks` the number of ranks; the program checks that it got one world of that size.


rule extract_patches:
    """LUNA16, one subset (LDCT, all patients in one MPI world): extract.tasks ranks cut and compress the patches; rank 0 writes each chunk once at its final (seeded-shuffle) row; results/MODE/patches/GROUP.h5."""
    input:
        unpack(get_extract_inputs),
    output:
        per_group([f"{RES}/{MODE}/patches/{{group}}{sfx}.h5" for sfx in PART_SUFFIXES]),
    log:
        get_log("extract_patches"),
    benchmark:
        f"{RES}/benchmarks/extract_patches/{MODE}/" + ("all.tsv" if BATCHED else "{group}.tsv")
    conda:
        "../../envs/ctpatch.yaml"
    threads: config["extract"]["tasks"]
    resources:
        mpi=config["extract"]["mpi"],
        tasks=config["extract"]["tasks"],
    params:
        module=f"ctpatch.{MODE}.extract",
        # pre-quoted: the subset's (LUNA16), or --groups and every patient, then with {group} (LDCT): --group, --out, --inputs
        args=get_group_args("extract_patches"),
    shell:
        # --set-resources extract_patches:tasks=0 (or "x") must be named as such, not left to the launcher
        "if ! [ {resources.tasks:q} -ge 1 ] 2>/dev/null; then echo 'error: extract_patches: resources.tasks "
        "must be a whole number >= 1 (config extract.tasks, or --set-resources extract_patches:tasks=N), got' "
        "{resources.tasks:q} | tee {log:q} >&2; exit 1; fi; "
        "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "  # one core per rank: BLAS threads would fight the other ranks
        # resources.mpi is a command with its own words (e.g. "srun --mpi=pmi2"): deliberately not quoted
        '{resources.mpi} -n {resources.tasks:q} "$CTPATCH_PYTHON" -m {params.module:q} '
        "--ranks {resources.tasks:q} --settings-file {input.settings:q} --plan {input.plan:q} {params.args} "
        "> {log:q} 2>&1"

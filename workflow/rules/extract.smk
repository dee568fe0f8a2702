# The patch extraction: one MPI job per subset (LUNA16) or patient (LDCT).
# `resources.mpi` is the launcher (mpiexec here; profiles/slurm sets an srun command, see there) and
# `resources.tasks` the number of ranks; the program checks that it got one world of that size.


rule extract_patches:
    input:
        get_extract_inputs,
    output:
        directory(f"{RES}/{MODE}/shards/{{group}}"),
    conda:
        "../../envs/ctpatch.yaml"
    log:
        f"logs/{MODE}/extract_patches/{{group}}.log",
    benchmark:
        f"{RES}/benchmarks/extract_patches/{MODE}/{{group}}.tsv"
    threads: config["extract"]["tasks"]
    resources:
        mpi=config["extract"]["mpi"],
        tasks=config["extract"]["tasks"],
    params:
        mode=MODE,
        p=get_extract_params,
    shell:
        "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "  # one core per rank: BLAS threads would fight the other ranks
        "{resources.mpi} -n {resources.tasks} python -m ctpatch.extract --mode {params.mode} --ranks {resources.tasks} "
        "--out-dir {output} --settings {params.p[settings]} --inputs {params.p[inputs]} > {log} 2>&1"

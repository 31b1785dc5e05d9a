# One job per parameter point; all seeds of the point run vectorized in it. Paths, arguments
# and resource estimates come from mecmodel.sweep (the run-path template is sweep.RUN).


rule simulate:
    output:
        sweep.RUN_FILE,
    log:
        sweep.RUN_LOG,
    benchmark:
        sweep.RUN_BENCHMARK
    # Ignored when running locally; on SLURM, profiles/slurm bundles simulate jobs
    # into one submission each (group-components) to spare the per-job start-up.
    group:
        "simulate"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=SWEEP.simulate_mem_mb,
        runtime=SWEEP.simulate_runtime,
    params:
        args=simulate_args,
        # Not used by the command: a new mecmodel version (or a changed scheme module)
        # reruns the simulations (Snakemake does not see the package's code by itself).
        version=SWEEP.code_version,
    shell:
        "mecmodel simulate {params.args} --progress off -o {output} > {log} 2>&1"

# One job per parameter point; all seeds of the point run vectorized in it. The output
# path is the one mecmodel.results.run_path builds (canonical numbers, see common.smk).


rule simulate:
    output:
        "results/runs/{model}/K{K}/lam{arrival_prob}/gamma{gamma}/{scheme}/s{seeds}-b{blocks}.nc",
    log:
        "results/logs/simulate/{model}/K{K}/lam{arrival_prob}/gamma{gamma}/{scheme}/s{seeds}-b{blocks}.log",
    benchmark:
        "results/benchmarks/simulate/{model}/K{K}/lam{arrival_prob}/gamma{gamma}/{scheme}/s{seeds}-b{blocks}.tsv"
    # Ignored when running locally; on SLURM, profiles/slurm bundles simulate jobs
    # into one submission each (group-components) to spare the per-job start-up.
    group:
        "simulate"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=simulate_mem_mb,
        runtime=simulate_runtime,
    params:
        model=model_args,
        # Not used by the command: a new mecmodel version reruns every simulation
        # (Snakemake does not see changes to the package's code by itself).
        version=MECMODEL_VERSION,
    shell:
        "mecmodel simulate --K {wildcards.K} --arrival-prob {wildcards.arrival_prob}"
        " --gamma {wildcards.gamma} --scheme {wildcards.scheme}"
        " --seeds {wildcards.seeds} --blocks {wildcards.blocks} {params.model}"
        " --progress off -o {output} > {log} 2>&1"

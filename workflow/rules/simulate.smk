# The simulations: one job per batch of runs (mecmodel.sweep.Sweep.batches: a model's runs, cut
# where their paths' hashes say), each run still its own file at its own path (the run-path
# template is mecmodel.vocabulary.RUN). A job runs its batch in one process, so the start-up is paid once.


for batch in SWEEP.batches():

    rule:
        name:
            f"simulate_{batch['id']}"
        output:
            batch["runs"],
        log:
            f"results/logs/simulate/{batch['name']}.log",
        benchmark:
            f"results/benchmarks/simulate/{batch['name']}.tsv"
        priority: batch["priority"]
        # Ignored when running locally; on SLURM, profiles/slurm bundles simulate jobs
        # into submissions (group-components) to spare the per-job start-up.
        group:
            "simulate"
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=batch["mem_mb"],
            runtime=batch["runtime"],
        params:
            runs=batch["json"],
            modules=batch["modules"],
            # Not used by the command: a new mecmodel version (or a changed scheme module)
            # reruns the simulations (Snakemake does not see the package's code by itself).
            version=batch["version"],
        shell:
            "mecmodel simulate-batch {params.modules} --runs {params.runs:q} --progress off > {log} 2>&1"

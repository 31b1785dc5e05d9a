# One dataset per experiment: its runs combined along K, arrival_prob, gamma and scheme.


rule aggregate:
    input:
        SWEEP.experiment_runs,
    output:
        "results/{experiment}.nc",
    log:
        "results/logs/aggregate/{experiment}.log",
    benchmark:
        "results/benchmarks/aggregate/{experiment}.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=SWEEP.aggregate_mem_mb,
    params:
        # The resolved experiment config, stored in the aggregate's attrs; a change
        # to it reruns this aggregate (and its figure) only.
        config_json=lambda wildcards: SWEEP.experiments[wildcards.experiment]["json"],
        modules=SWEEP.module_args(),
    shell:
        "mecmodel aggregate {params.modules} {input} -o {output}"
        " --experiment {wildcards.experiment}"
        " --config-json {params.config_json:q} > {log} 2>&1"

# One job per experiment: its runs combined into one dataset (along K, arrival_prob, gamma, scheme
# and any other swept parameter), and its figure drawn from it, PNG and PDF, captioned in the
# report. One process for both: the imports are most of such a job.


rule aggregate:
    input:
        SWEEP.experiment_runs,
    output:
        nc="results/{experiment}.nc",
        png=report(
            "results/figures/{experiment}.png",
            caption="../report/figure.rst",
            category="{experiment}",
            labels={"experiment": "{experiment}", "format": "PNG"},
        ),
        pdf=report(
            "results/figures/{experiment}.pdf",
            caption="../report/figure.rst",
            category="{experiment}",
            labels={"experiment": "{experiment}", "format": "PDF"},
        ),
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
        # to it reruns this aggregate and its figure only.
        config_json=lambda wildcards: SWEEP.experiments[wildcards.experiment]["json"],
        figure=lambda wildcards: SWEEP.experiments[wildcards.experiment]["figure"],
        caption=SWEEP.caption_params,
        modules=SWEEP.module_args(),
    shell:
        "mecmodel aggregate {params.modules} {input} -o {output.nc}"
        " --experiment {wildcards.experiment}"
        " --config-json {params.config_json:q}"
        " --figure {params.figure} --png {output.png} --pdf {output.pdf} > {log} 2>&1"

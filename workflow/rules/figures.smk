# One figure per experiment, PNG and PDF, captioned in the report.


rule plot:
    input:
        "results/{experiment}.nc",
    output:
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
        "results/logs/plot/{experiment}.log",
    benchmark:
        "results/benchmarks/plot/{experiment}.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
    params:
        figure=lambda wildcards: SWEEP.experiments[wildcards.experiment]["figure"],
        caption=SWEEP.caption_params,
        modules=SWEEP.module_args(),
    shell:
        "mecmodel plot {params.modules} {params.figure} {input}"
        " --png {output.png} --pdf {output.pdf} > {log} 2>&1"

"""Parameter sweep of mecmodel: config -> one run per point -> one aggregate and one figure per experiment.

    snakemake                                  # the paper's figures (config/config.yaml)
    snakemake --configfile config/smoke.yaml   # the same pipeline in seconds
    snakemake --report results/report.html     # browsable figures with captions

A config file given with --configfile replaces config/config.yaml (it is not merged with it).
"""

import os

from snakemake.utils import min_version

min_version("9.0")


# Only when no config file is given on the command line, so that a user's file with fewer
# experiments is not merged with the default ones.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# Strict re-read of the config files, the schema, and the results/ folder (see config.smk).
include: "workflow/rules/config.smk"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"


localrules:
    all,
    aggregate,
    plot,


rule all:
    default_target: True
    input:
        # The runs themselves too: a deleted run file is otherwise an intermediate that
        # Snakemake leaves missing while the aggregate built from it looks up to date.
        sorted({run for exp in EXPERIMENTS.values() for run in exp["runs"]}),
        expand("results/{experiment}.nc", experiment=EXPERIMENTS),
        expand(
            "results/figures/{experiment}.{ext}",
            experiment=EXPERIMENTS,
            ext=("png", "pdf"),
        ),

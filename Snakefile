"""Parameter sweep of mecmodel: config -> batches of runs -> one aggregate and its figure per experiment.

    snakemake                                  # the paper's figures (config/config.yaml) and its scenarios
    snakemake --configfile config/smoke.yaml   # the same pipeline in seconds
    snakemake --configfile config/stable.yaml  # a scenario: config.yaml with the stable preset
    snakemake --configfile config/paper.yaml   # a scenario: config.yaml with the paper preset
    snakemake --report results/report.html     # browsable figures with captions

config.yaml lists stable.yaml under `scenarios`: both build in one plan (`./run reproduce`). A
config file given with --configfile replaces config/config.yaml; a file may extend another
(`extends:`) and list scenarios of its own (config/README.md). The logic lives in mecmodel.sweep
and mecmodel.config; the rules call them.
"""

import os

from snakemake.utils import min_version

min_version("9.0")


# Only when no config file is given on the command line, so that a user's file with fewer
# experiments is not merged with the default ones.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# Config layers, schema, strict re-read of the files, results/ checks, experiment resolution.
include: "workflow/rules/common.smk"


report: "workflow/report/workflow.rst"


include: "workflow/rules/simulate.smk"
include: "workflow/rules/aggregate.smk"


localrules:
    all,
    aggregate,


rule all:
    default_target: True
    input:
        # The runs themselves too: a deleted run file is otherwise an intermediate that
        # Snakemake leaves missing while the aggregate built from it looks up to date.
        SWEEP.all_runs(),
        expand("results/{experiment}.nc", experiment=SWEEP.experiments),
        expand(
            "results/figures/{experiment}.{ext}",
            experiment=SWEEP.experiments,
            ext=("png", "pdf"),
        ),

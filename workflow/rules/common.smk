# Parse time, before any job: mecmodel.sweep.prepare re-reads the config files strictly,
# resolves layers (extends, prefix), validates against workflow/schemas/config.schema.yaml,
# checks results/ and resolves the experiments. Each problem stops Snakemake with one message
# that starts with "config" (or "results") and names the field; nothing is written.

import os

from snakemake.exceptions import WorkflowError

from mecmodel import sweep
from mecmodel.params import ParamError

# The rules' software, for `--sdm conda` (relative to workflow/rules/). Without it every
# rule runs in the current environment, where `./run` installed mecmodel.
CONDA_ENV = "../envs/mecmodel.yaml"


def checked(func, *args):
    """Call a mecmodel.sweep function; its ParamError becomes Snakemake's one-line WorkflowError."""
    try:
        return func(*args)
    except ParamError as err:
        raise WorkflowError(str(err)) from None


SWEEP = checked(
    sweep.prepare,
    config,
    workflow.configfiles,
    os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"),
)


wildcard_constraints:
    **SWEEP.wildcard_constraints(),

# Parse time, before any job: the config is layered, validated and resolved by mecmodel.sweep.
# Each problem stops Snakemake with one message that starts with "config" (or "results") and
# names the field and what it allows; nothing is written.

import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

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


for _path in workflow.configfiles:
    checked(sweep.read_config_file, _path)
_layered = checked(sweep.apply_layers, dict(config), workflow.configfiles)
config.clear()
config.update(_layered)
try:
    validate(config, "../schemas/config.schema.yaml")
except WorkflowError as err:
    # Lead with the offending field (jsonschema's own report quotes the schema).
    if not isinstance(err.__context__, jsonschema.ValidationError):
        raise
    raise WorkflowError(sweep.schema_error_message(err.__context__)) from None
checked(sweep.check_results_dir)
SWEEP = checked(sweep.Sweep, config)


wildcard_constraints:
    **SWEEP.wildcard_constraints(),


def simulate_args(wildcards):
    return checked(SWEEP.simulate_args, wildcards)

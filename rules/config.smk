# The config, validated against config/schema.yaml before any other file reads it: the schema also fills in
# its defaults, the only place they are written. Kept apart from the Snakefile: snakemake --lint wants functions
# and rules in separate files.
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The checkout this file (rules/config.smk) belongs to, for every rules file. Not workflow.basedir: that is the folder
# of the *main* Snakefile, another workflow's when trtverify is a module of it. Not workflow.source_path: it answers
# with a copy in Snakemake's source cache, and the rules need the checkout's own files (scripts, cpp/, envs/).
REPO = Path(workflow.current_basedir.get_path_or_uri(secret_free=True)).parent


def config_error(error):
    """The schema's complaint in one paragraph: where, what, and for a missing section what to start from
    (Snakemake's own message prints the whole schema and the whole config after it, 350 lines).
    """
    from jsonschema.exceptions import ValidationError

    # validate raises its WorkflowError while handling jsonschema's error
    found = error.__cause__ or error.__context__
    if not isinstance(found, ValidationError):
        return None
    where = ".".join(map(str, found.absolute_path)) or "the top level"
    hint = "config/schema.yaml says what each key takes"
    if found.validator == "required" and not found.absolute_path:
        hint = (
            f"trtverify's own config.yaml ({REPO / 'config.yaml'}) sets every section: start from a"
            " copy of it and put your models under `models:` (README.md, 'Your own model')"
        )
    return f"the config (config.yaml and any --configfile) is not valid at {where}: {found.message}. {hint}"


try:
    validate(config, "../config/schema.yaml")  # relative to this file
except WorkflowError as error:
    message = config_error(error)
    if message is None:
        raise
    raise WorkflowError(message) from None

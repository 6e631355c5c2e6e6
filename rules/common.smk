# Configuration checks and input functions shared by every rule.
import sys

from snakemake.utils import validate

from neurodict.config import ConfigError, load_session

validate(config, schema="../config/schemas/config.schema.yaml", set_default=True)

RESULTS = config["results_dir"]
SESSIONS = list(config["sessions"])
# The configuration file the steps read (parameters are not passed on the command line).
CONFIGFILE = workflow.configfiles[-1]

# Every session file is checked before any job starts; problems name the file and key.
try:
    for _name, _path in config["sessions"].items():
        load_session(_path, config=config, name=_name)
except ConfigError as exc:
    sys.exit(f"neurodict: invalid configuration:\n{exc}")


wildcard_constraints:
    session="|".join(SESSIONS),


def session_file(wildcards):
    return config["sessions"][wildcards.session]

# neurodict workflow: one raw recording session -> validated recording, spike band, region LFPs,
# detected spikes, dictionaries, clusters, an HTML report and NWB / phy exports. Run `snakemake --profile profiles/default`.
from snakemake.utils import min_version

min_version("9.0")


# The defaults, unless a configuration is given with --configfile: that one replaces them (a
# copy of config/config.yaml must not be merged into this one, which lists the demo session).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/ingest.smk"
include: "rules/preprocess.smk"
include: "rules/detect.smk"
include: "rules/sort.smk"
include: "rules/lfpdict.smk"
include: "rules/clusters.smk"
include: "rules/report.smk"
include: "rules/export.smk"


# One run per results folder, whatever its working directory (rules/common.smk).
onstart:
    take_results_lock()


onsuccess:
    release_results_lock()


onerror:
    release_results_lock()


rule all:
    input:
        expand(f"{RESULTS}/{{session}}/report.html", session=SESSIONS),
        summary_outputs(),
        export_outputs(),

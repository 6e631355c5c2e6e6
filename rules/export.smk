rule export:
    input:
        sorting=spike_source,
        probabilities=spike_probabilities,
        spikeband=f"{RESULTS}/{{session}}/spikeband",
        region_lfp=f"{RESULTS}/{{session}}/region_lfp",
        counts=f"{RESULTS}/{{session}}/detection.tsv",
        info=f"{RESULTS}/{{session}}/session.json",
        dictionaries=dictionary_outputs,
    output:
        nwb=f"{RESULTS}/{{session}}/session.nwb",
        phy=directory(f"{RESULTS}/{{session}}/phy"),
    log:
        f"{RESULTS}/logs/{{session}}/export.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{session}}/export.tsv"
    conda:
        "../environment.yml"
    threads: 2
    params:
        results=lambda wildcards: f"{RESULTS}/{wildcards.session}",
        probabilities=lambda wildcards, input: (
            f"--probabilities {input.probabilities}" if input.probabilities else ""
        ),
    shell:
        "neurodict export --results {params.results} --sorting {input.sorting} "
        "{params.probabilities} "
        "--threads {threads} > {log} 2>&1"

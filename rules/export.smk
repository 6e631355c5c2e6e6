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
            ["--probabilities", input.probabilities] if input.probabilities else []
        ),
    shell:
        "neurodict export --results {params.results:q} --sorting {input.sorting:q} "
        "{params.probabilities:q} --threads {threads} > {log:q} 2>&1"

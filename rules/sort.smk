rule sort:
    input:
        spikeband=f"{RESULTS}/{{session}}/spikeband",
        peaks=f"{RESULTS}/{{session}}/peaks.npy",
        info=f"{RESULTS}/{{session}}/session.json",
    output:
        npz=f"{RESULTS}/{{session}}/sort/{{group}}.npz",
    log:
        f"{RESULTS}/logs/{{session}}/sort_{{group}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{session}}/sort_{{group}}.tsv"
    conda:
        "../environment.yml"
    threads: 1
    params:
        results=lambda wildcards: f"{RESULTS}/{wildcards.session}",
    shell:
        "neurodict sort --results {params.results:q} --group={wildcards.group:q} "
        "--threads {threads} > {log:q} 2>&1"


rule merge_sorting:
    input:
        groups=group_sortings,
        spikeband=f"{RESULTS}/{{session}}/spikeband",
        info=f"{RESULTS}/{{session}}/session.json",
    output:
        sorting=directory(f"{RESULTS}/{{session}}/sorting"),
        spikes=f"{RESULTS}/{{session}}/spikes.npz",
        units=report(
            f"{RESULTS}/{{session}}/units.tsv",
            category="Sorting",
            labels={"session": "{session}", "table": "units"},
        ),
        metrics=f"{RESULTS}/{{session}}/metrics.tsv",
        model=f"{RESULTS}/{{session}}/sorter.npz",
    log:
        f"{RESULTS}/logs/{{session}}/merge_sorting.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{session}}/merge_sorting.tsv"
    conda:
        "../environment.yml"
    threads: 2
    params:
        results=lambda wildcards: f"{RESULTS}/{wildcards.session}",
    shell:
        "neurodict merge-sorting --results {params.results:q} "
        "--threads {threads} > {log:q} 2>&1"

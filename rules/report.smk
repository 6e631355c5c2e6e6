rule report:
    input:
        info=f"{RESULTS}/{{session}}/session.json",
        spikeband=f"{RESULTS}/{{session}}/spikeband",
        region_lfp=f"{RESULTS}/{{session}}/region_lfp",
        counts=f"{RESULTS}/{{session}}/detection.tsv",
        artefacts=f"{RESULTS}/{{session}}/artefacts.tsv",
        motion=f"{RESULTS}/{{session}}/motion.npz",
        units=f"{RESULTS}/{{session}}/units.tsv",
        model=f"{RESULTS}/{{session}}/sorter.npz",
        dictionaries=dictionary_outputs,
    output:
        html=report(
            f"{RESULTS}/{{session}}/report.html",
            category="Sessions",
            labels={"session": "{session}", "content": "report"},
        ),
    log:
        f"{RESULTS}/logs/{{session}}/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{session}}/report.tsv"
    conda:
        "../environment.yml"
    threads: 1
    params:
        results=lambda wildcards: f"{RESULTS}/{wildcards.session}",
        benchmarks=lambda wildcards: f"{RESULTS}/benchmarks/{wildcards.session}",
    shell:
        "neurodict report --results {params.results:q} "
        "--benchmarks {params.benchmarks:q} > {log:q} 2>&1"

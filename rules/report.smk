rule report:
    input:
        info=f"{RESULTS}/{{session}}/session.json",
        spikeband=f"{RESULTS}/{{session}}/spikeband",
        region_lfp=f"{RESULTS}/{{session}}/region_lfp",
        counts=f"{RESULTS}/{{session}}/detection.tsv",
        dictionaries=dictionary_outputs,
    output:
        html=f"{RESULTS}/{{session}}/report.html",
    log:
        f"{RESULTS}/logs/{{session}}/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{session}}/report.tsv"
    conda:
        "../environment.yml"
    threads: 1
    params:
        results=lambda wildcards: f"{RESULTS}/{wildcards.session}",
    shell:
        "neurodict report --results {params.results} --out {output.html} "
        "> {log} 2>&1"

rule detect:
    input:
        spikeband=f"{RESULTS}/{{session}}/spikeband",
        info=f"{RESULTS}/{{session}}/session.json",
    output:
        peaks=f"{RESULTS}/{{session}}/peaks.npy",
        counts=f"{RESULTS}/{{session}}/detection.tsv",
    log:
        f"{RESULTS}/logs/{{session}}/detect.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{session}}/detect.tsv"
    conda:
        "../environment.yml"
    threads: 2
    params:
        results=lambda wildcards: f"{RESULTS}/{wildcards.session}",
    shell:
        "neurodict detect --results {params.results:q} "
        "--threads {threads} > {log:q} 2>&1"

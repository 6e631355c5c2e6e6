rule preprocess:
    input:
        recording=f"{RESULTS}/{{session}}/recording.json",
        info=f"{RESULTS}/{{session}}/session.json",
    output:
        spikeband=directory(f"{RESULTS}/{{session}}/spikeband"),
        lfp=directory(f"{RESULTS}/{{session}}/lfp"),
        region_lfp=directory(f"{RESULTS}/{{session}}/region_lfp"),
        region_lfp_clean=directory(f"{RESULTS}/{{session}}/region_lfp_clean"),
        artefacts=f"{RESULTS}/{{session}}/artefacts.tsv",
        motion=f"{RESULTS}/{{session}}/motion.npz",
    log:
        f"{RESULTS}/logs/{{session}}/preprocess.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{session}}/preprocess.tsv"
    conda:
        "../environment.yml"
    threads: 2
    params:
        results=lambda wildcards: f"{RESULTS}/{wildcards.session}",
    shell:
        "neurodict preprocess --results {params.results:q} "
        "--threads {threads} > {log:q} 2>&1"

rule lfpdict:
    input:
        sorting=spike_source,
        lfp=f"{RESULTS}/{{session}}/region_lfp",
        info=f"{RESULTS}/{{session}}/session.json",
    output:
        npz=f"{RESULTS}/{{session}}/lfp_dict.npz",
        scores=report(
            f"{RESULTS}/{{session}}/lfp_scores.tsv",
            category="Sessions",
            labels={
                "session": "{session}",
                "content": "held-out R2 per region and model",
            },
        ),
        bands=f"{RESULTS}/{{session}}/lfp_bands.tsv",
        coherence=f"{RESULTS}/{{session}}/lfp_coherence.tsv",
    log:
        f"{RESULTS}/logs/{{session}}/lfpdict.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{session}}/lfpdict.tsv"
    conda:
        "../environment.yml"
    threads: 2
    resources:
        gpu=lambda wildcards: int(
            session_params(wildcards)["lfpdict"]["backend"] == "gpu"
        ),
    params:
        results=lambda wildcards: f"{RESULTS}/{wildcards.session}",
    shell:
        "neurodict lfpdict --results {params.results:q} --sorting {input.sorting:q} "
        "> {log:q} 2>&1"

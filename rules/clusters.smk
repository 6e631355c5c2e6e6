rule clusters:
    input:
        sorting=spike_source,
        lfp=f"{RESULTS}/{{session}}/region_lfp",
        clean=f"{RESULTS}/{{session}}/region_lfp_clean",
        dictionaries=f"{RESULTS}/{{session}}/lfp_dict.npz",
        info=f"{RESULTS}/{{session}}/session.json",
    output:
        clusters=f"{RESULTS}/{{session}}/clusters.tsv",
        summary=report(
            f"{RESULTS}/{{session}}/clusters_summary.tsv",
            category="Sessions",
            labels={"session": "{session}", "content": "clusters"},
        ),
        phase=f"{RESULTS}/{{session}}/phase.tsv",
        importance=f"{RESULTS}/{{session}}/importance.tsv",
    log:
        f"{RESULTS}/logs/{{session}}/clusters.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{session}}/clusters.tsv"
    conda:
        "../environment.yml"
    threads: 2
    params:
        results=lambda wildcards: f"{RESULTS}/{wildcards.session}",
    shell:
        "neurodict clusters --results {params.results:q} --sorting {input.sorting:q} "
        "> {log:q} 2>&1"


rule summary:
    input:
        dictionaries=expand(
            f"{RESULTS}/{{session}}/lfp_dict.npz", session=DICT_SESSIONS
        ),
        reports=expand(f"{RESULTS}/{{session}}/report.html", session=SESSIONS),
    output:
        clusters=f"{RESULTS}/summary/clusters.tsv",
        sessions=f"{RESULTS}/summary/sessions.tsv",
        summary=report(
            f"{RESULTS}/summary/clusters_summary.tsv",
            category="All sessions",
            labels={"content": "pooled clusters"},
        ),
        html=report(
            f"{RESULTS}/summary/report.html",
            category="All sessions",
            labels={"content": "summary report"},
        ),
    log:
        f"{RESULTS}/logs/summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/summary.tsv"
    conda:
        "../environment.yml"
    threads: 1
    params:
        results=lambda wildcards, output: os.path.dirname(os.path.dirname(output.html)),
        sessions=SESSIONS,
        config=CONFIGFILE,
    shell:
        "neurodict summary --results {params.results:q} --sessions {params.sessions:q} "
        "--config {params.config:q} > {log:q} 2>&1"

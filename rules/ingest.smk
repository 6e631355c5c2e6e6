rule ingest:
    input:
        session=session_file,
        config=CONFIGFILE,
    output:
        recording=f"{RESULTS}/{{session}}/recording.json",
        info=f"{RESULTS}/{{session}}/session.json",
        bad_channels=f"{RESULTS}/{{session}}/bad_channels.tsv",
    log:
        f"{RESULTS}/logs/{{session}}/ingest.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{session}}/ingest.tsv"
    conda:
        "../environment.yml"
    threads: 1
    params:
        results=lambda wildcards: f"{RESULTS}/{wildcards.session}",
    shell:
        "neurodict ingest --results {params.results:q} --session {input.session:q} "
        "--config {input.config:q} --name {wildcards.session:q} > {log:q} 2>&1"
